package app

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/authn"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// PartnerView is what a partner liaison (PartnerOnly) may read of a crisis
// shared with its organisation: the crisis's public face and the partner
// roles that concern its organisation, nothing of how the crisis is run
// inside (¶59 "fairly opaque when necessary", ¶61 "confidentiality": a
// partner is told only what it is meant to know).
//
// It copies a whitelist of fields into a new state rather than clearing a
// list of internal ones from the original: a field added to CrisisState (or
// to Crisis, StageRecord, PartnerRoleAck) later is hidden from partners
// until someone decides here that partners may see it. So it leaves out the
// decisions (their rationale, amounts, fund ids, roster and envoy ids), the
// pending decisions, deadlines and follow-up (internal work), the warnings
// and refused signals (sources' texts), the figures (amounts disbursed) and
// lessons, the comments, the playbook, operations made outside Démarche, who opened the
// crisis, the other organisations it is shared with, the reasons a stage
// was skipped or reopened, and who recorded a partner's role.
//
// The sharing (SharingControl, Crisis.shared_with) has no option today to
// share more with a partner than this, so the view is always this narrow;
// an option to share rationale or amounts would be read here.
func PartnerView(st *demarchev1.CrisisState, partner string) *demarchev1.CrisisState {
	c := st.GetCrisis()
	out := &demarchev1.CrisisState{
		Crisis: &demarchev1.Crisis{
			Id: c.GetId(), Title: c.GetTitle(), CountryCode: c.GetCountryCode(), Region: c.GetRegion(),
			CrisisType: c.GetCrisisType(), Severity: c.GetSeverity(), Confidentiality: c.GetConfidentiality(),
			OpenedAt: c.GetOpenedAt(), Drill: c.GetDrill(),
		},
		CurrentStage: st.GetCurrentStage(),
		ActiveStages: slices.Clone(st.GetActiveStages()),
		ClosedAt:     st.GetClosedAt(),
		Outcome:      st.GetOutcome(),
		// Public engagements are public by definition; the others are not
		// counted for partners.
		PublicEngagements: st.GetPublicEngagements(),
	}
	if slices.Contains(c.GetSharedWith(), partner) {
		// Only its own organisation: whom else the crisis is shared with
		// is not this partner's to know.
		out.Crisis.SharedWith = []string{partner}
	}
	for _, s := range st.GetTimeline() {
		// Where the crisis stands and since when; not why a stage was
		// skipped or reopened (the reason is an operator's internal text).
		out.Timeline = append(out.Timeline, &demarchev1.StageRecord{
			Stage: s.GetStage(), EnteredAt: s.GetEnteredAt(), CompletedAt: s.GetCompletedAt(),
			Duration: s.GetDuration(), Status: s.GetStatus(), Run: s.GetRun(),
		})
	}
	for _, a := range st.GetPartners() {
		if a.GetPartner() != partner {
			continue
		}
		// Its own organisation's role and when it was recorded; not who
		// recorded it (an operator's id) nor with which roles.
		out.Partners = append(out.Partners, &demarchev1.PartnerRoleAck{
			Partner: a.GetPartner(), Role: a.GetRole(), AcknowledgedAt: a.GetAcknowledgedAt(),
		})
	}
	// The timestamps and durations above are shared with st: a deep copy
	// keeps the caller's state and the view apart.
	return proto.Clone(out).(*demarchev1.CrisisState)
}

// forPrincipal is st as p may read it: the partner's view for a partner
// liaison who is nothing else, the whole state otherwise.
func forPrincipal(st *demarchev1.CrisisState, p *authn.Principal) *demarchev1.CrisisState {
	if st != nil && PartnerOnly(p) {
		return PartnerView(st, p.Partner)
	}
	return st
}
