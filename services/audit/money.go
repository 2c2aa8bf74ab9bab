package audit

import (
	"fmt"
	"sort"

	enumspb "go.temporal.io/api/enums/v1"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/trail"
)

// Money and people against the histories. Every disbursement line of a fund's
// ledger and every roster booking names the decision it carries out
// (DecisionRef); reconcile matches each with the decisions the crisis's
// histories published (DecisionRecorded, by decision id): a disbursement
// needs an approval of its very request, a booking an envoy-appointment that
// books that expert in that role; and every approval needs exactly one
// disbursement. Anything else is named: money or people moved without a
// decision (a forged ledger line, a booking made by hand), or a decision not
// carried out (or carried out twice).

// RecordedDecisions lists the decisions the histories show published (every
// DecisionRecorded of every run), by decision id; decisions recorded before
// decisions had ids are left out.
func RecordedDecisions(histories []History) map[string]*demarchev1.DecisionRecord {
	out := map[string]*demarchev1.DecisionRecord{}
	for _, h := range histories {
		for _, ev := range h.History.GetEvents() {
			if ev.GetEventType() != enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
				continue
			}
			for _, req := range trail.PublishedRequests(ev) {
				data, err := req.GetData().UnmarshalNew()
				if err != nil {
					continue
				}
				if d, ok := data.(*demarchev1.DecisionRecorded); ok && d.GetDecision().GetDecisionId() != "" {
					out[d.GetDecision().GetDecisionId()] = d.GetDecision()
				}
			}
		}
	}
	return out
}

// ReconcileMoney adds to the report the crisis's disbursement lines (lines of
// any fund; those of other crises are ignored) and bookings (real and drill),
// matched with the decisions of its histories.
func (r *ReconcileReport) ReconcileMoney(crisisID string, histories []History, lines []*demarchev1.LedgerEntry, bookings []*demarchev1.Assignment) {
	decisions := RecordedDecisions(histories)
	paid := map[string]int{} // approval decision id -> disbursement lines
	for _, l := range lines {
		if l.GetKind() != demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT || l.GetCrisisId() != crisisID {
			continue
		}
		r.Disbursements++
		ref := l.GetDecision()
		d := decisions[ref.GetDecisionId()]
		fd := d.GetRequest().GetFundingDecision()
		switch {
		case ref.GetDecisionId() == "":
			r.PaymentsWithoutDecision = append(r.PaymentsWithoutDecision, fmt.Sprintf("disbursement without decision: line %d of fund %s (USD %d, request %s, key %s) names no decision",
				l.GetLine(), l.GetFund(), l.GetAmountUsd(), l.GetRequestId(), l.GetKey()))
		case d == nil || d.GetKind() != "funding-decision" || !fd.GetApprove() || fd.GetRequestId() != l.GetRequestId() || ref.GetCrisisId() != crisisID:
			r.PaymentsWithoutDecision = append(r.PaymentsWithoutDecision, fmt.Sprintf("disbursement without decision: line %d of fund %s (USD %d, request %s, key %s) names decision %q, which the histories of %s do not hold as an approval of request %s",
				l.GetLine(), l.GetFund(), l.GetAmountUsd(), l.GetRequestId(), l.GetKey(), ref.GetDecisionId(), crisisID, l.GetRequestId()))
		default:
			paid[ref.GetDecisionId()]++
		}
	}
	ids := make([]string, 0, len(decisions))
	for id := range decisions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		d := decisions[id]
		if d.GetKind() != "funding-decision" || !d.GetRequest().GetFundingDecision().GetApprove() {
			continue
		}
		r.Approvals++
		if n := paid[id]; n != 1 {
			r.ApprovalsNotPaidOnce = append(r.ApprovalsNotPaidOnce, fmt.Sprintf("approved decision %d (%s, request %s, by %s) has %d disbursement(s), not exactly one",
				d.GetNumber(), id, d.GetRequest().GetFundingDecision().GetRequestId(), d.GetPrincipal(), n))
		}
	}
	for _, b := range bookings {
		if b.GetCrisisId() != crisisID {
			continue
		}
		r.Bookings++
		ref := b.GetDecision()
		d := decisions[ref.GetDecisionId()]
		if ref.GetDecisionId() == "" || d.GetKind() != "envoy-appointment" || ref.GetCrisisId() != crisisID || !books(d.GetRequest().GetEnvoyAppointment(), b) {
			r.BookingsWithoutDecision = append(r.BookingsWithoutDecision, fmt.Sprintf("booking without decision: %s as %s (reserved by %s%s) names decision %q, which the histories of %s do not hold as an appointment of that expert in that role",
				b.GetExpertId(), b.GetRole(), b.GetReservedBy(), map[bool]string{true: ", drill", false: ""}[b.GetDrill()], ref.GetDecisionId(), crisisID))
		}
	}
}

// books reports whether an appointment books the booking's expert in its role.
func books(a *demarchev1.EnvoyAppointment, b *demarchev1.Assignment) bool {
	if b.GetRole() == "envoy" {
		return a.GetEnvoy() == b.GetExpertId()
	}
	for i, e := range a.GetStandbyTeam() {
		if b.GetRole() == fmt.Sprintf("standby-%d", i+1) {
			return e == b.GetExpertId()
		}
	}
	return false
}
