package audit

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/trail"
)

// Publication is an event a workflow history shows published: a publishing
// activity (PublishCrisisEvent, or DisburseFunds for its FundsDisbursed)
// scheduled at HistoryEventID and completed. Its audit record carries the
// same event id, workflow and history event.
type Publication struct {
	Workflow string
	// RunID is the run that made it (in reconcile; PublicationsOf leaves the
	// History's RunID, empty for the latest run).
	RunID          string
	HistoryEventID int64
	EventID        string
	// EventType is the ce-type ("" when the input could not be read).
	EventType string
	Activity  string
}

func (p Publication) String() string {
	run := ""
	if p.RunID != "" {
		run = " run " + p.RunID
	}
	return fmt.Sprintf("event %s (%s, %s%s history event %d, activity %s)", p.EventID, p.EventType, p.Workflow, run, p.HistoryEventID, p.Activity)
}

var fundsDisbursedType = ceTypeOf(&demarchev1.FundsDisbursed{})

// PublicationsOf lists the events a workflow history shows published.
func PublicationsOf(h History) []Publication {
	completed := map[int64]bool{}
	for _, ev := range h.History.GetEvents() {
		if ev.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED {
			completed[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()] = true
		}
	}
	var out []Publication
	for _, ev := range h.History.GetEvents() {
		a := ev.GetActivityTaskScheduledEventAttributes()
		if a == nil || !completed[ev.GetEventId()] || len(a.GetInput().GetPayloads()) == 0 {
			continue
		}
		p := Publication{Workflow: h.WorkflowID, RunID: h.RunID, HistoryEventID: ev.GetEventId(), Activity: a.GetActivityType().GetName()}
		switch p.Activity {
		case crisis.ActivityPublishEvents, crisis.ActivityPublishEvent:
			reqs := trail.PublishedRequests(ev)
			if len(reqs) == 0 {
				out = append(out, p) // unreadable input: reported as an event without id
			}
			for _, req := range reqs {
				p.EventID, p.EventType = req.GetEventId(), ceTypeOfRequest(req)
				out = append(out, p)
			}
		case crisis.ActivityDisburse:
			var req demarchev1.DisburseRequest
			if dataConverter.FromPayload(a.GetInput().GetPayloads()[0], &req) == nil {
				p.EventID, p.EventType = req.GetDisbursementKey(), fundsDisbursedType
			}
			out = append(out, p)
		}
	}
	return out
}

// ceTypeOfRequest is the ce-type of a published event ("" when its data
// cannot be read).
func ceTypeOfRequest(req *demarchev1.PublishEventRequest) string {
	data, err := req.GetData().UnmarshalNew()
	if err != nil {
		return ""
	}
	et, err := eventbus.TypeOf(data)
	if err != nil {
		return ""
	}
	return et.CEType
}

// isWorkflowEvent reports whether a record is of an event the workflow published.
func isWorkflowEvent(r *demarchev1.AuditRecord) bool {
	return r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT && r.GetEventSource() == crisis.EventSource
}

// Absorbed is a publication the stream took for an event already published
// under the same id by another run of the workflow (the run a reset replaced):
// the stream keeps the first, so the chain holds that run's record. A
// disbursement's FundsDisbursed after a reset is one (its id is the payment's
// key, so the payment is made once); events of the workflow carry their run
// in their id (crisis's emitter) and are never absorbed across runs.
type Absorbed struct {
	Publication Publication
	Record      *demarchev1.AuditRecord
}

func (a Absorbed) String() string {
	return fmt.Sprintf("%s was absorbed by the stream as the event already published by run %s (audit record %d of %s, history event %d)",
		a.Publication, a.Record.GetRunId(), a.Record.GetSequence(), a.Record.GetChain(), a.Record.GetHistoryEventId())
}

// reconcileEvents checks every publication against the records and back.
// Each history is one run's; a publication is counted in the run that made
// it (a reset's copy of the base run's events is the base run's), and its
// record must name that workflow run and history event.
func reconcileEvents(rep *ReconcileReport, histories []History, records []*demarchev1.AuditRecord) {
	byEvent := map[string]*demarchev1.AuditRecord{}
	historyEvents := map[string]map[int64]enumspb.EventType{} // workflow -> event id -> type
	for _, r := range records {
		switch {
		case isWorkflowEvent(r):
			rep.EventRecords++
			if byEvent[r.GetEventId()] == nil {
				byEvent[r.GetEventId()] = r
			}
		case r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT:
			rep.OutsideWorkflows++
		case r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION:
			rep.Operations++
		}
	}
	runs, have := runsOf(histories)
	// A publication is one event of one history event (a batch publishes
	// several under one).
	type at struct {
		runKey
		event int64
		id    string
	}
	var pubs []Publication
	pubAt := map[at]Publication{}
	published := map[string]bool{}
	for _, r := range runs {
		if historyEvents[r.WorkflowID] == nil {
			historyEvents[r.WorkflowID] = map[int64]enumspb.EventType{}
		}
		for _, ev := range r.History.History.GetEvents() {
			historyEvents[r.WorkflowID][ev.GetEventId()] = ev.GetEventType()
		}
		for _, p := range PublicationsOf(r.History) {
			if r.copied(p.HistoryEventID, have) {
				continue
			}
			p.RunID = r.writtenBy(p.HistoryEventID)
			pubs = append(pubs, p)
			pubAt[at{runKey{p.Workflow, p.RunID}, p.HistoryEventID, p.EventID}] = p
			published[p.EventID] = true
		}
	}
	// made reports whether a record is of publication p: same event, type,
	// workflow, run and history event. Records from before events carried
	// their origin have none to compare; those from before they carried the
	// run, no run.
	made := func(rec *demarchev1.AuditRecord, p Publication) bool {
		return rec.GetWorkflowId() == "" ||
			rec.GetEventId() == p.EventID && rec.GetWorkflowId() == p.Workflow && rec.GetHistoryEventId() == p.HistoryEventID &&
				(rec.GetRunId() == "" || rec.GetRunId() == p.RunID) && (p.EventType == "" || rec.GetEventType() == p.EventType)
	}
	for _, p := range pubs {
		rep.Events++
		rec, ok := byEvent[p.EventID]
		if p.EventID == "" || !ok {
			rep.MissingEvents = append(rep.MissingEvents, p)
			continue
		}
		if made(rec, p) {
			rep.EventsMatched++
			continue
		}
		// Published again by another run under the id of an event the
		// record shows that run made: the stream kept the first.
		if first, ok := pubAt[at{runKey{rec.GetWorkflowId(), rec.GetRunId()}, rec.GetHistoryEventId(), rec.GetEventId()}]; ok && first.RunID != p.RunID &&
			first.Workflow == p.Workflow && made(rec, first) && p.EventType == first.EventType {
			rep.Absorbed = append(rep.Absorbed, Absorbed{Publication: p, Record: rec})
			continue
		}
		rep.Mismatched = append(rep.Mismatched, fmt.Sprintf("audit record %d of %s says event %s (%s) comes from %s run %s history event %d, the history says %s",
			rec.GetSequence(), rec.GetChain(), rec.GetEventId(), rec.GetEventType(), rec.GetWorkflowId(), rec.GetRunId(), rec.GetHistoryEventId(), p))
	}
	for _, r := range records {
		if isWorkflowEvent(r) && !published[r.GetEventId()] {
			rep.UnknownEvents = append(rep.UnknownEvents, r)
		}
		if r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION {
			evs, known := historyEvents[r.GetWorkflowId()]
			if known && evs[r.GetHistoryEventId()] == enumspb.EVENT_TYPE_UNSPECIFIED {
				rep.Mismatched = append(rep.Mismatched, fmt.Sprintf("audit record %d of %s records %q at %s history event %d, which that history does not hold",
					r.GetSequence(), r.GetChain(), r.GetDetail(), r.GetWorkflowId(), r.GetHistoryEventId()))
			}
		}
	}
}
