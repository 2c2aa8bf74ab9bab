package crisis

import (
	"strings"
	"testing"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestHandOverFollowsTheDivisionOfLabour: a regional organisation takes a
// crisis over at its closure only when its acknowledged role is lead, joint
// or sequential (the other recipients need no partner role); a joint
// inquiry is conducted with a partner in a lead or joint role.
func TestHandOverFollowsTheDivisionOfLabour(t *testing.T) {
	ack := func(org string, role demarchev1.PartnerRoleKind) *demarchev1.PartnerRoleAck {
		return &demarchev1.PartnerRoleAck{Partner: org, Role: role}
	}
	l := &lifecycle{partners: []*demarchev1.PartnerRoleAck{
		ack("ECOWAS", demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_SEQUENTIAL),
		ack("AU", demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_SUPPORT),
		ack("SADC", demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD),
		ack("ICGLR", demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_JOINT),
		ack("EU", demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_BURDEN_SHARING),
	}}
	regional := demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_REGIONAL_ORGANISATION
	for _, tc := range []struct {
		to   demarchev1.HandOverRecipient
		org  string
		says string // "" when allowed
	}{
		{regional, "ECOWAS", ""},
		{regional, "ecowas", ""}, // names are matched case-insensitively, as sharing does
		{regional, "SADC", ""},
		{regional, "ICGLR", ""},
		{regional, "AU", "rule hand-over-recipient: AU's role in this crisis is support"},
		{regional, "EU", "rule hand-over-recipient: EU's role in this crisis is burden-sharing"},
		{regional, "OIC", "rule hand-over-recipient: OIC has no role in this crisis (partners' roles: ECOWAS sequential, AU support"},
		{demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_PEACEBUILDING_COMMISSION, "", ""},
		{demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_UN_COUNTRY_TEAM, "", ""},
		{demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_PEACE_OPERATION, "", ""},
		{demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_UNSPECIFIED, "", ""},
	} {
		err := l.checkHandOver(&demarchev1.ClosureDecision{HandOverTo: tc.to, HandOverPartner: tc.org})
		if (tc.says == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("%s %s: %v, want %q", tc.to.Slug(), tc.org, err, tc.says)
		}
	}
	// The description names the recipient in words, and says nothing of a
	// closure without hand-over (closures recorded before read as they did).
	for _, tc := range []struct {
		c    *demarchev1.ClosureDecision
		want string
	}{
		{&demarchev1.ClosureDecision{HandOverTo: demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_PEACEBUILDING_COMMISSION}, "; handed over to the Peacebuilding Commission"},
		{&demarchev1.ClosureDecision{HandOverTo: demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_UN_COUNTRY_TEAM}, "; handed over to the UN country team"},
		{&demarchev1.ClosureDecision{HandOverTo: regional, HandOverPartner: "ECOWAS"}, "; handed over to ECOWAS (regional organisation)"},
		{&demarchev1.ClosureDecision{}, ""},
	} {
		if got := handOverWords(tc.c); got != tc.want {
			t.Errorf("handOverWords(%v) = %q, want %q", tc.c, got, tc.want)
		}
	}
	// A joint inquiry is conducted with a partner in a lead or joint role.
	for _, tc := range []struct {
		org, says string
	}{
		{"SADC", ""}, {"ICGLR", ""}, {"", ""}, {"OIC", ""}, // no role recorded yet: its own to say
		{"AU", "rule joint-inquiry-partner: AU's role in this crisis is support"},
		{"ECOWAS", "rule joint-inquiry-partner: ECOWAS's role in this crisis is sequential"},
		{"eu", "rule joint-inquiry-partner: eu's role in this crisis is burden-sharing"},
	} {
		err := l.checkJointInquiry(tc.org)
		if (tc.says == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("joint inquiry with %q: %v, want %q", tc.org, err, tc.says)
		}
	}
}
