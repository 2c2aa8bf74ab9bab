package audit

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/funding"
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

// ContributionReport is the reconciliation of the funds' voluntary
// contributions with the global audit chain.
type ContributionReport struct {
	// Contributions is the number of contribution lines read; CreditedUSD
	// what they credited, per fund.
	Contributions int
	CreditedUSD   map[string]int64
	// Records is the number of fund-contribution records on the global chain.
	Records int
	// Problems names each line without its record (money in that nobody
	// answers for), each record without its line (a contribution the ledger
	// does not hold), and each record that says otherwise than its line.
	Problems []string
}

// OK reports whether every contribution line has its record and back.
func (r *ContributionReport) OK() bool { return len(r.Problems) == 0 }

// ReconcileContributions matches every contribution line of the funds'
// ledgers (lines of any kind may be given; only contributions are looked at)
// with the fund-contribution records of the global chain: the same event id
// (fund and line hash), the principal who credited it, the line's hash in
// the record's detail; and every fund-contribution record with a line. Funds
// whose ledgers were not read (skippedFunds) have their records left alone.
func ReconcileContributions(lines []*demarchev1.LedgerEntry, global []*demarchev1.AuditRecord, skippedFunds []string) *ContributionReport {
	r := &ContributionReport{CreditedUSD: map[string]int64{}}
	records := map[string]*demarchev1.AuditRecord{}
	for _, rec := range global {
		if rec.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION && rec.GetEventType() == funding.FundContributionEventType {
			r.Records++
			records[rec.GetEventId()] = rec
		}
	}
	matched := map[string]bool{}
	for _, l := range lines {
		if l.GetKind() != demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_CONTRIBUTION {
			continue
		}
		r.Contributions++
		r.CreditedUSD[l.GetFund()] += l.GetAmountUsd()
		id := funding.ContributionEventID(l)
		rec := records[id]
		k := l.GetContribution()
		switch {
		case rec == nil:
			r.Problems = append(r.Problems, fmt.Sprintf("contribution without audit record: line %d of fund %s (%d %s from %s, reference %q, by %s) has no %s record on the global chain",
				l.GetLine(), l.GetFund(), k.GetAmount(), k.GetCurrency(), k.GetDonor(), k.GetReference(), k.GetContributedBy(), funding.FundContributionEventType))
		case rec.GetPrincipal() != k.GetContributedBy() || !strings.Contains(rec.GetDetail(), hex.EncodeToString(l.GetHash())):
			r.Problems = append(r.Problems, fmt.Sprintf("contribution record %d (%s) says otherwise than line %d of fund %s: principal %s (line: %s), or not the line's hash",
				rec.GetSequence(), id, l.GetLine(), l.GetFund(), rec.GetPrincipal(), k.GetContributedBy()))
			matched[id] = true
		default:
			matched[id] = true
		}
	}
	ids := make([]string, 0, len(records))
	for id := range records {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if matched[id] || skippedOf(id, skippedFunds) {
			continue
		}
		rec := records[id]
		r.Problems = append(r.Problems, fmt.Sprintf("contribution record %d (%s, by %s) has no line in the funds' ledgers: %s",
			rec.GetSequence(), id, rec.GetPrincipal(), rec.GetDetail()))
	}
	return r
}

// skippedOf reports whether a contribution record's event id is of a fund
// whose ledger was not read.
func skippedOf(eventID string, funds []string) bool {
	for _, f := range funds {
		prefix := funding.FundContributionEventType + "-" + f + "-"
		if rest, ok := strings.CutPrefix(eventID, prefix); ok && !strings.Contains(rest, "-") { // the rest is the line's hash
			return true
		}
	}
	return false
}
