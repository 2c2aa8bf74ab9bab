package demarchev1

// Input rules of the partners service's messages (partners.proto).

// Validate checks a role acknowledgement sent to the partners service.
func (x *AckRoleRequest) Validate() error {
	c := newChecker("ack-role request")
	c.id("crisis_id", x.GetCrisisId())
	c.nested("ack", x.GetAck() != nil, func(c *checker) {
		a := x.GetAck()
		c.text("partner", a.GetPartner(), true)
		c.enumSet("role", int32(a.GetRole()), PartnerRoleKind_name, enumSlugs(PartnerRoleKind(0).Descriptor()))
		c.principal("principal", a.GetPrincipal())
		if t := a.GetAcknowledgedAt(); t != nil {
			c.timestamp("acknowledged_at", t)
		}
	})
	return c.err()
}

// Validate checks a registry listing request (it has no fields).
func (x *ListPartnersRequest) Validate() error { return nil }
