// Package partnerview is what a partner organisation may know of a crisis
// shared with it, in one place for every way a partner learns of one: the
// gateway's crisis state for a partner liaison (State) and the events the
// partners service delivers to the partner's NATS stream and webhook
// (Event). The crisis's public face and the partner roles that concern the
// organisation itself, nothing of how the crisis is run inside:
// ¶59 "fairly opaque when necessary", ¶61 "confidentiality" (a partner is
// told only what it is meant to know).
//
// Every function copies an allow-list of fields into a new message rather
// than clearing a list of internal ones from the original: a field added
// later to a crisis, its state or an event is hidden from partners until
// someone decides here that partners may see it, and an event type added
// later is not delivered to partners at all until it has a case in Event.
//
// Left out everywhere: decisions (their rationale, amounts, fund ids, roster
// and envoy ids), pending decisions, deadlines and follow-up (internal work),
// warnings and signals (sources' texts, scores), figures (amounts disbursed)
// and lessons, the playbook, operations made outside Démarche, who opened
// the crisis and when its first signal came, the other organisations it is
// shared with or that took a role, the reasons and authors of a severity
// change, a skipped or reopened stage or a sharing change, and who recorded a
// partner's role.
//
// The sharing (SharingControl, Crisis.shared_with) has no option today to
// share more with a partner than this, so the view is always this narrow; an
// option to share rationale or amounts would be read here.
package partnerview

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Concerns reports whether a partner name in a crisis (shared_with, a
// sharing change, a role) is the partner's own organisation: the partners
// registry's rule (case and surrounding spaces aside).
func Concerns(name, partner string) bool {
	return partner != "" && strings.EqualFold(strings.TrimSpace(name), strings.TrimSpace(partner))
}

// own is the partner's own organisation if names holds it: whom else a
// crisis is shared with is not this partner's to know.
func own(names []string, partner string) []string {
	if slices.ContainsFunc(names, func(n string) bool { return Concerns(n, partner) }) {
		return []string{partner}
	}
	return nil
}

// Crisis is the crisis's public face: its identity, type, severity,
// confidentiality, when it opened, whether it is a drill, and whether it is
// shared with this partner. Not who opened it, when its first warning signal
// came (the warning-to-action clock is internal), its previous episode, nor
// anyone else it is shared with.
func Crisis(c *demarchev1.Crisis, partner string) *demarchev1.Crisis {
	if c == nil {
		return nil
	}
	out := &demarchev1.Crisis{
		Id: c.GetId(), Title: c.GetTitle(), CountryCode: c.GetCountryCode(), Region: c.GetRegion(),
		CrisisType: c.GetCrisisType(), Severity: c.GetSeverity(), Confidentiality: c.GetConfidentiality(),
		OpenedAt: c.GetOpenedAt(), Drill: c.GetDrill(),
		SharedWith: own(c.GetSharedWith(), partner),
	}
	return proto.Clone(out).(*demarchev1.Crisis)
}

// stageRecord is where the crisis stands and since when; not why a stage
// was skipped or reopened (the reason is an operator's internal text).
func stageRecord(s *demarchev1.StageRecord) *demarchev1.StageRecord {
	return &demarchev1.StageRecord{
		Stage: s.GetStage(), EnteredAt: s.GetEnteredAt(), CompletedAt: s.GetCompletedAt(),
		Duration: s.GetDuration(), Status: s.GetStatus(), Run: s.GetRun(),
	}
}

// roleAck is the partner's own role and when it was recorded; not who
// recorded it (an operator's or a liaison's id) nor with which roles.
func roleAck(a *demarchev1.PartnerRoleAck) *demarchev1.PartnerRoleAck {
	return &demarchev1.PartnerRoleAck{Partner: a.GetPartner(), Role: a.GetRole(), AcknowledgedAt: a.GetAcknowledgedAt()}
}

// State is what a partner liaison may read of a crisis's state: the crisis
// (Crisis), its stages and their times, its closure and outcome, the count
// of its public engagements (public by definition; the others are not
// counted for partners), and the partner's own role.
func State(st *demarchev1.CrisisState, partner string) *demarchev1.CrisisState {
	if st == nil {
		return nil
	}
	out := &demarchev1.CrisisState{
		Crisis:            Crisis(st.GetCrisis(), partner),
		CurrentStage:      st.GetCurrentStage(),
		ActiveStages:      slices.Clone(st.GetActiveStages()),
		ClosedAt:          st.GetClosedAt(),
		Outcome:           st.GetOutcome(),
		PublicEngagements: st.GetPublicEngagements(),
	}
	if out.Crisis == nil {
		out.Crisis = &demarchev1.Crisis{}
	}
	for _, s := range st.GetTimeline() {
		out.Timeline = append(out.Timeline, stageRecord(s))
	}
	for _, a := range st.GetPartners() {
		if Concerns(a.GetPartner(), partner) {
			out.Partners = append(out.Partners, roleAck(a))
		}
	}
	// The timestamps and durations above are shared with st: a deep copy
	// keeps the caller's state and the view apart.
	return proto.Clone(out).(*demarchev1.CrisisState)
}

// Event is a crisis event as the partner receives it, or nil when the
// partner receives nothing of it (an event type with nothing a partner may
// see is not delivered at all: no notice, so not even its timing tells of
// internal work). The copy still passes the event's rules (Validate), so
// decoders that check them, the platform's own included, accept it.
//
// Delivered, allow-listed:
//   - CrisisOpened: the crisis (Crisis).
//   - StageEntered, StageCompleted: crisis id, stage, times, duration.
//   - StageSkipped, StageReopened: crisis id and stage; not who nor why.
//   - SeverityChanged: crisis id, from, to; not who nor why.
//   - CrisisClosed: crisis id, time and outcome; not the figures nor lessons.
//   - SharingChanged: only a change that adds or removes the partner itself,
//     and only that (shared_with, added, removed name it alone); not who nor why.
//   - PartnerRoleAcknowledged: only the partner's own role (partner, role,
//     time); its principal is the partner organisation's name, not who
//     recorded it (the event's rules require one).
//
// Not delivered: DecisionRecorded (rationale, amounts, fund, roster and envoy
// ids; public engagements are counted in State instead), FundsDisbursed,
// DeadlineAtRisk, DeadlineBreached, FollowUpCheckInDue,
// FollowUpCheckInRecorded, CrisisRelapsed (its effect reaches partners as a
// severity change and a reopened stage), WarningAttached, WarningRaised,
// CrisisAlteredOutside, and any type added later.
func Event(m proto.Message, partner string) proto.Message {
	var out proto.Message
	switch e := m.(type) {
	case *demarchev1.CrisisOpened:
		out = &demarchev1.CrisisOpened{Crisis: Crisis(e.GetCrisis(), partner)}
	case *demarchev1.StageEntered:
		out = &demarchev1.StageEntered{CrisisId: e.GetCrisisId(), Stage: e.GetStage(), EnteredAt: e.GetEnteredAt()}
	case *demarchev1.StageCompleted:
		out = &demarchev1.StageCompleted{CrisisId: e.GetCrisisId(), Stage: e.GetStage(), CompletedAt: e.GetCompletedAt(), Duration: e.GetDuration()}
	case *demarchev1.StageSkipped:
		out = &demarchev1.StageSkipped{CrisisId: e.GetCrisisId(), Stage: e.GetStage()}
	case *demarchev1.StageReopened:
		out = &demarchev1.StageReopened{CrisisId: e.GetCrisisId(), Stage: e.GetStage()}
	case *demarchev1.SeverityChanged:
		out = &demarchev1.SeverityChanged{CrisisId: e.GetCrisisId(), From: e.GetFrom(), To: e.GetTo()}
	case *demarchev1.CrisisClosed:
		c := &demarchev1.CrisisClosed{CrisisId: e.GetCrisisId(), ClosedAt: e.GetClosedAt(), Outcome: e.GetOutcome()}
		if Concerns(e.GetHandOverPartner(), partner) { // the organisation taking the engagement over learns it does
			c.HandOverTo, c.HandOverPartner = e.GetHandOverTo(), partner
		}
		out = c
	case *demarchev1.SharingChanged:
		added, removed := own(e.GetAdded(), partner), own(e.GetRemoved(), partner)
		if added == nil && removed == nil {
			return nil // a change among other organisations: not this partner's to know
		}
		out = &demarchev1.SharingChanged{CrisisId: e.GetCrisisId(), SharedWith: own(e.GetSharedWith(), partner), Added: added, Removed: removed}
	case *demarchev1.PartnerRoleAcknowledged:
		a := e.GetAck()
		if !Concerns(a.GetPartner(), partner) {
			return nil // another organisation's role
		}
		ack := roleAck(a)
		ack.Principal = partner
		out = &demarchev1.PartnerRoleAcknowledged{CrisisId: e.GetCrisisId(), Ack: ack}
	default:
		return nil
	}
	// Timestamps and durations are shared with m: a deep copy keeps them apart.
	return proto.Clone(out)
}
