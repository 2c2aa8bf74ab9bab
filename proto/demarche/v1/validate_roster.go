package demarchev1

import "strings"

var rolePattern = idPattern

// Validate checks an expert record.
func (x *Expert) Validate() error {
	c := newChecker("expert")
	c.id("id", x.GetId())
	c.text("name", x.GetName(), true)
	c.enumSet("kind", int32(x.GetKind()), ExpertKind_name, enumSlugs(ExpertKind(0).Descriptor()))
	for _, r := range x.GetRegions() {
		if r == Region_REGION_UNSPECIFIED || Region_name[int32(r)] == "" {
			c.fail("regions", "%d is not a region (allowed: %s)", r, strings.Join(enumSlugs(Region(0).Descriptor()), ", "))
		}
	}
	for _, e := range x.GetExpertise() {
		if e == Expertise_EXPERTISE_UNSPECIFIED || Expertise_name[int32(e)] == "" {
			c.fail("expertise", "%d is not an expertise (allowed: %s)", e, strings.Join(enumSlugs(Expertise(0).Descriptor()), ", "))
		}
	}
	return c.err()
}

// Validate checks a reservation.
func (x *ReserveRequest) Validate() error {
	c := newChecker("reservation")
	c.id("crisis_id", x.GetCrisisId())
	if !rolePattern.MatchString(x.GetRole()) {
		c.fail("role", "%q must be 3-100 letters, digits, '-' or '_' (e.g. envoy, standby-1)", x.GetRole())
	}
	c.id("expert_id", x.GetExpertId())
	c.principal("reserved_by", x.GetReservedBy())
	return c.err()
}

// Validate checks a release.
func (x *ReleaseRequest) Validate() error {
	c := newChecker("release")
	c.id("crisis_id", x.GetCrisisId())
	if !rolePattern.MatchString(x.GetRole()) {
		c.fail("role", "%q must be 3-100 letters, digits, '-' or '_'", x.GetRole())
	}
	return c.err()
}

// Validate checks a search.
func (x *RosterSearchRequest) Validate() error {
	c := newChecker("roster search")
	if x.GetLimit() < 0 || x.GetLimit() > 100 {
		c.fail("limit", "%d is out of range (allowed: 0 to 100; 0 means 10)", x.GetLimit())
	}
	return c.err()
}

// Slug returns the kind's slug, e.g. "senior-envoy".
func (x ExpertKind) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the expertise's slug, e.g. "constitution-making".
func (x Expertise) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// ParseExpertKind reads a kind from its slug or enum name.
func ParseExpertKind(s string) (ExpertKind, error) {
	n, err := parseEnum(ExpertKind(0).Descriptor(), "kind", s)
	return ExpertKind(n), err
}

// ParseExpertise reads an expertise from its slug or enum name.
func ParseExpertise(s string) (Expertise, error) {
	n, err := parseEnum(Expertise(0).Descriptor(), "expertise", s)
	return Expertise(n), err
}
