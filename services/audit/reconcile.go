package audit

import (
	"fmt"
	"strings"
	"time"

	historypb "go.temporal.io/api/history/v1"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/trail"
)

// TrailOf rebuilds a workflow's decision trail from its history alone.
var TrailOf = trail.FromHistory

// Decision is a decision found in a workflow history.
type Decision struct {
	Workflow string
	// HistoryEventID is the history event the decision was read from.
	HistoryEventID int64
	// EventID is the id of the DecisionRecorded event the workflow published
	// (the audit record's event_id); empty when the history holds none.
	EventID   string
	Number    int32
	Kind      string
	Principal string
	Time      time.Time
}

func (d Decision) String() string {
	if d.EventID == "" {
		return fmt.Sprintf("%s history event %d: decision without a published DecisionRecorded event", d.Workflow, d.HistoryEventID)
	}
	return fmt.Sprintf("decision %d (%s by %s, event %s, %s history event %d)", d.Number, d.Kind, d.Principal, d.EventID, d.Workflow, d.HistoryEventID)
}

// DecisionsOf lists the decisions of a workflow history: the decision entries
// of its trail (trail.FromHistory), each resolved to the DecisionRecorded
// event the workflow published for it.
func DecisionsOf(workflowID string, h *historypb.History) ([]Decision, error) {
	entries, err := TrailOf(workflowID, h)
	if err != nil {
		return nil, fmt.Errorf("decision trail of %s: %w", workflowID, err)
	}
	byID := map[int64]*historypb.HistoryEvent{}
	for _, ev := range h.GetEvents() {
		byID[ev.GetEventId()] = ev
	}
	var out []Decision
	for _, e := range entries {
		if e.Kind != "decision" {
			continue
		}
		d := Decision{Workflow: workflowID, HistoryEventID: e.EventID, Kind: e.Rule, Principal: e.Principal, Time: e.Time}
		if rec, id, ok := publishedDecision(byID[e.EventID], e.PublishedEventID); ok {
			d.EventID, d.Number, d.Kind, d.Principal = id, rec.GetNumber(), rec.GetKind(), rec.GetPrincipal()
		}
		out = append(out, d)
	}
	return out, nil
}

// publishedDecision reads the DecisionRecorded event with id eventID that a
// publishing activity published (its input, or its local activity's marker).
func publishedDecision(ev *historypb.HistoryEvent, eventID string) (*demarchev1.DecisionRecord, string, bool) {
	for _, req := range trail.PublishedRequests(ev) {
		if req.GetEventId() != eventID {
			continue
		}
		data, err := req.GetData().UnmarshalNew()
		if err != nil {
			return nil, "", false
		}
		d, ok := data.(*demarchev1.DecisionRecorded)
		if !ok {
			return nil, "", false
		}
		return d.GetDecision(), req.GetEventId(), true
	}
	return nil, "", false
}

// decisionType is the ce-type of DecisionRecorded events.
var decisionType = func() string {
	et, err := eventbus.TypeOf(&demarchev1.DecisionRecorded{})
	if err != nil {
		panic(err)
	}
	return et.CEType
}()

// IsDecision reports whether an audit record records a DecisionRecorded event.
func IsDecision(r *demarchev1.AuditRecord) bool {
	return r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT && r.GetEventType() == decisionType
}

// ReconcileReport is the cross-check of workflow histories against an audit chain.
type ReconcileReport struct {
	// Decisions in the histories, and decision records in the chain.
	Decisions, Records, Matched int
	// In a history, with no audit record.
	MissingInAudit []Decision
	// Audit records of decisions no history holds.
	MissingInHistory []*demarchev1.AuditRecord
	// Same event, but the record says otherwise than the history.
	Mismatched []string

	// Every event the workflows published (any type), and the records of
	// events from the workflow: Events in the histories, EventRecords in the
	// chain, EventsMatched both ways with the same workflow and history event.
	Events, EventRecords, EventsMatched int
	// Published in a history, with no audit record.
	MissingEvents []Publication
	// Records of workflow events that no history shows published.
	UnknownEvents []*demarchev1.AuditRecord
	// Publications after a reset the stream absorbed as the same event of
	// the replaced run (by id): reported, not a mismatch.
	Absorbed []Absorbed
	// Records of events from outside the workflows (early warning's
	// WarningRaised), and of operations done to the workflows (terminate,
	// cancel, reset).
	OutsideWorkflows, Operations int

	// Outside lists the operations outside Démarche (terminate, cancel,
	// reset) the histories record; OutsideUnrecorded those of a crisis
	// workflow that have no CrisisAlteredOutside record in the chain.
	Outside           []*demarchev1.OutsideOperation
	OutsideUnrecorded []*demarchev1.OutsideOperation

	// Money and people (money.go, when ReconcileMoney ran): the crisis's
	// disbursement lines, bookings and approvals; lines and bookings whose
	// decision the histories do not hold; approvals not paid exactly once.
	Disbursements, Bookings, Approvals int
	PaymentsWithoutDecision            []string
	BookingsWithoutDecision            []string
	ApprovalsNotPaidOnce               []string
}

// OK is true when every decision has its record and every record its decision.
func (r *ReconcileReport) OK() bool {
	return len(r.MissingInAudit) == 0 && len(r.MissingInHistory) == 0 && len(r.Mismatched) == 0 && len(r.MissingEvents) == 0 && len(r.UnknownEvents) == 0 && len(r.OutsideUnrecorded) == 0 &&
		len(r.PaymentsWithoutDecision) == 0 && len(r.BookingsWithoutDecision) == 0 && len(r.ApprovalsNotPaidOnce) == 0
}

// Problems lists what does not match, one line each.
func (r *ReconcileReport) Problems() []string {
	var out []string
	for _, d := range r.MissingInAudit {
		out = append(out, "no audit record for "+d.String())
	}
	for _, rec := range r.MissingInHistory {
		out = append(out, fmt.Sprintf("no history entry for audit record %d of %s: decision %d (%s by %s, event %s)",
			rec.GetSequence(), rec.GetChain(), rec.GetDecisionNumber(), rec.GetDecisionKind(), rec.GetPrincipal(), rec.GetEventId()))
	}
	for _, p := range r.MissingEvents {
		if !decisionIn(r.MissingInAudit, p.EventID) {
			out = append(out, "no audit record for "+p.String())
		}
	}
	for _, rec := range r.UnknownEvents {
		if !IsDecision(rec) {
			out = append(out, fmt.Sprintf("no history entry for audit record %d of %s: event %s (%s, said to come from %s history event %d)",
				rec.GetSequence(), rec.GetChain(), rec.GetEventId(), rec.GetEventType(), rec.GetWorkflowId(), rec.GetHistoryEventId()))
		}
	}
	for _, op := range r.OutsideUnrecorded {
		out = append(out, "no audit record for the operation outside Démarche: "+op.GetWorkflowId()+" "+crisis.DescribeOutside(op))
	}
	out = append(out, r.PaymentsWithoutDecision...)
	out = append(out, r.BookingsWithoutDecision...)
	out = append(out, r.ApprovalsNotPaidOnce...)
	return append(out, r.Mismatched...)
}

// decisionIn reports whether a decision of ds was published as event id.
func decisionIn(ds []Decision, id string) bool {
	for _, d := range ds {
		if d.EventID == id {
			return true
		}
	}
	return false
}

// Error summarises a failed reconciliation (nil when OK).
func (r *ReconcileReport) Error() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("reconcile: %d event(s) without an audit record (%d of them decisions), %d audit record(s) without a history entry, %d mismatch(es), %d outside operation(s) without an audit record, %d disbursement(s) and %d booking(s) without a decision, %d approval(s) not paid exactly once:\n  %s",
		max(len(r.MissingEvents), len(r.MissingInAudit)), len(r.MissingInAudit), max(len(r.MissingInHistory), len(r.UnknownEvents)), len(r.Mismatched), len(r.OutsideUnrecorded),
		len(r.PaymentsWithoutDecision), len(r.BookingsWithoutDecision), len(r.ApprovalsNotPaidOnce), strings.Join(r.Problems(), "\n  "))
}

// Reconcile checks that every decision in the histories has a matching audit
// record (same DecisionRecorded event id, number, kind and principal) and that
// every decision record of the chain has a matching decision in a history;
// then the same for every event of any type the workflows published (same
// event id, type, workflow and history event), and that each operation record
// names a history event its workflow's history holds.
func Reconcile(histories []History, records []*demarchev1.AuditRecord) (*ReconcileReport, error) {
	rep := &ReconcileReport{}
	byEvent := map[string]*demarchev1.AuditRecord{}
	for _, r := range records {
		if IsDecision(r) {
			rep.Records++
			byEvent[r.GetEventId()] = r
		}
	}
	inHistory := map[string]bool{}
	runs, have := runsOf(histories)
	for _, h := range runs {
		ds, err := DecisionsOf(h.WorkflowID, h.History.History)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if h.copied(d.HistoryEventID, have) {
				continue // the base run's decision, counted in its history
			}
			rep.Decisions++
			rec, ok := byEvent[d.EventID]
			if d.EventID == "" || !ok {
				rep.MissingInAudit = append(rep.MissingInAudit, d)
				continue
			}
			inHistory[d.EventID] = true
			if rec.GetDecisionNumber() != d.Number || rec.GetDecisionKind() != d.Kind || rec.GetPrincipal() != d.Principal {
				rep.Mismatched = append(rep.Mismatched, fmt.Sprintf("audit record %d of %s says decision %d (%s by %s), the history says %s",
					rec.GetSequence(), rec.GetChain(), rec.GetDecisionNumber(), rec.GetDecisionKind(), rec.GetPrincipal(), d))
				continue
			}
			rep.Matched++
		}
	}
	for _, r := range records {
		if IsDecision(r) && !inHistory[r.GetEventId()] {
			rep.MissingInHistory = append(rep.MissingInHistory, r)
		}
	}
	reconcileEvents(rep, histories, records)
	reconcileOutside(rep, histories, records)
	return rep, nil
}

// outsideType is the ce-type of CrisisAlteredOutside events.
var outsideType = func() string {
	et, err := eventbus.TypeOf(&demarchev1.CrisisAlteredOutside{})
	if err != nil {
		panic(err)
	}
	return et.CEType
}()

// reconcileOutside lists the operations outside Démarche the histories
// record, and those of a crisis workflow the chain has no record of (the
// worker's watcher records each with the event id crisis.OutsideEventID).
// A reset is in two histories (the replaced run ends terminated by the
// history resetter; the new run's, and those reset from it, hold the reset
// event): it is listed once.
func reconcileOutside(rep *ReconcileReport, histories []History, records []*demarchev1.AuditRecord) {
	recorded := map[string]bool{}
	for _, r := range records {
		if r.GetEventType() == outsideType {
			recorded[r.GetEventId()] = true
		}
	}
	type opKey struct {
		workflow, run string
		kind          demarchev1.OutsideOperationKind
	}
	listed := map[opKey]*demarchev1.OutsideOperation{}
	runs, _ := runsOf(histories) // the second result is the set of runs seen, not an error
	for _, h := range runs {
		started := h.History.History.GetEvents()
		isCrisis := len(started) > 0 && started[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName() == crisis.WorkflowName
		for _, op := range crisis.OutsideOperationsIn(h.WorkflowID, h.run, h.History.History) {
			k := opKey{op.GetWorkflowId(), op.GetRunId(), op.GetKind()}
			if seen := listed[k]; seen != nil {
				if seen.GetNewRunId() == "" && op.GetNewRunId() != "" { // the reset event says why and at what time
					seen.Reason, seen.NewRunId, seen.At = op.GetReason(), op.GetNewRunId(), op.GetAt()
				}
				continue
			}
			listed[k] = op
			rep.Outside = append(rep.Outside, op)
			id := crisis.CrisisIDOf(h.WorkflowID)
			if !isCrisis || id == "" { // the watcher records crisis workflows' operations
				continue
			}
			if !recorded[crisis.OutsideEventID(id, op.GetRunId())] {
				rep.OutsideUnrecorded = append(rep.OutsideUnrecorded, op)
			}
		}
	}
}
