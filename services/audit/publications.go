package audit

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// Publication is an event a workflow history shows published: a publishing
// activity (PublishCrisisEvent, or DisburseFunds for its FundsDisbursed)
// scheduled at HistoryEventID and completed. Its audit record carries the
// same event id, workflow and history event.
type Publication struct {
	Workflow       string
	RunID          string
	HistoryEventID int64
	EventID        string
	// EventType is the ce-type ("" when the input could not be read).
	EventType string
	Activity  string
}

func (p Publication) String() string {
	return fmt.Sprintf("event %s (%s, %s history event %d, activity %s)", p.EventID, p.EventType, p.Workflow, p.HistoryEventID, p.Activity)
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
		case crisis.ActivityPublishEvent:
			p.EventID, p.EventType = publishedEvent(ev)
		case crisis.ActivityDisburse:
			var req demarchev1.DisburseRequest
			if dataConverter.FromPayload(a.GetInput().GetPayloads()[0], &req) == nil {
				p.EventID, p.EventType = req.GetDisbursementKey(), fundsDisbursedType
			}
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

// publishedEvent reads the event id and ce-type a PublishCrisisEvent activity was scheduled with.
func publishedEvent(ev *historypb.HistoryEvent) (id, ceType string) {
	var req demarchev1.PublishEventRequest
	if err := dataConverter.FromPayload(ev.GetActivityTaskScheduledEventAttributes().GetInput().GetPayloads()[0], &req); err != nil {
		return "", ""
	}
	if data, err := req.GetData().UnmarshalNew(); err == nil {
		if et, err := eventbus.TypeOf(data); err == nil {
			ceType = et.CEType
		}
	}
	return req.GetEventId(), ceType
}

// isWorkflowEvent reports whether a record is of an event the workflow published.
func isWorkflowEvent(r *demarchev1.AuditRecord) bool {
	return r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT && r.GetEventSource() == crisis.EventSource
}

// reconcileEvents checks every publication against the records and back.
func reconcileEvents(rep *ReconcileReport, histories []History, records []*demarchev1.AuditRecord) {
	byEvent := map[string]*demarchev1.AuditRecord{}
	historyEvents := map[string]map[int64]enumspb.EventType{} // workflow -> event id -> type
	for _, r := range records {
		switch {
		case isWorkflowEvent(r):
			rep.EventRecords++
			byEvent[r.GetEventId()] = r
		case r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT:
			rep.OutsideWorkflows++
		case r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION:
			rep.Operations++
		}
	}
	published := map[string]bool{}
	for _, h := range histories {
		if historyEvents[h.WorkflowID] == nil {
			historyEvents[h.WorkflowID] = map[int64]enumspb.EventType{}
		}
		for _, ev := range h.History.GetEvents() {
			historyEvents[h.WorkflowID][ev.GetEventId()] = ev.GetEventType()
		}
		for _, p := range PublicationsOf(h) {
			rep.Events++
			rec, ok := byEvent[p.EventID]
			if p.EventID == "" || !ok {
				rep.MissingEvents = append(rep.MissingEvents, p)
				continue
			}
			published[p.EventID] = true
			// Records from before events carried their origin have none to compare.
			if rec.GetWorkflowId() != "" && (rec.GetWorkflowId() != p.Workflow || rec.GetHistoryEventId() != p.HistoryEventID || (p.EventType != "" && rec.GetEventType() != p.EventType)) {
				rep.Mismatched = append(rep.Mismatched, fmt.Sprintf("audit record %d of %s says event %s (%s) comes from %s history event %d, the history says %s",
					rec.GetSequence(), rec.GetChain(), rec.GetEventId(), rec.GetEventType(), rec.GetWorkflowId(), rec.GetHistoryEventId(), p))
				continue
			}
			rep.EventsMatched++
		}
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
