package audit

import (
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

const (
	resetCrisis = "NE-20261128-RSET1"
	runA        = "0193a000-0000-7000-8000-00000000000a"
	runB        = "0193a000-0000-7000-8000-00000000000b"
)

// historyBuilder writes a synthetic crisis run history, event by event.
type historyBuilder struct {
	t *testing.T
	h *historypb.History
}

func newRun(t *testing.T, originalRun string) *historyBuilder {
	b := &historyBuilder{t: t, h: &historypb.History{}}
	b.add(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{
		WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
			WorkflowType: &commonpb.WorkflowType{Name: crisis.WorkflowName}, OriginalExecutionRunId: originalRun}})
	return b
}

func (b *historyBuilder) add(typ enumspb.EventType, attrs any) int64 {
	id := int64(len(b.h.Events) + 1)
	ev := &historypb.HistoryEvent{EventId: id, EventType: typ, EventTime: timestamppb.New(time.Date(2026, 11, 28, 10, 0, int(id), 0, time.UTC))}
	switch a := attrs.(type) {
	case *historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes:
		ev.Attributes = a
	case *historypb.HistoryEvent_ActivityTaskScheduledEventAttributes:
		ev.Attributes = a
	case *historypb.HistoryEvent_ActivityTaskCompletedEventAttributes:
		ev.Attributes = a
	case *historypb.HistoryEvent_WorkflowTaskFailedEventAttributes:
		ev.Attributes = a
	case *historypb.HistoryEvent_WorkflowExecutionTerminatedEventAttributes:
		ev.Attributes = a
	}
	b.h.Events = append(b.h.Events, ev)
	return id
}

// task adds a workflow task (scheduled, started, completed).
func (b *historyBuilder) task() {
	b.add(enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, nil)
	b.add(enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, nil)
	b.add(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, nil)
}

// publish adds a completed PublishCrisisEvent activity for event id and
// returns its scheduled event.
func (b *historyBuilder) publish(eventID string) int64 {
	data, err := anypb.New(&demarchev1.StageEntered{CrisisId: resetCrisis, Stage: demarchev1.Stage_STAGE_GOOD_OFFICES})
	if err != nil {
		b.t.Fatal(err)
	}
	in, err := dataConverter.ToPayloads(&demarchev1.PublishEventRequest{EventId: eventID, CrisisId: resetCrisis, Data: data})
	if err != nil {
		b.t.Fatal(err)
	}
	at := b.add(enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{
		ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
			ActivityType: &commonpb.ActivityType{Name: crisis.ActivityPublishEvent}, Input: in}})
	b.add(enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{
		ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{ScheduledEventId: at}})
	return at
}

// resetRuns are the two runs of a crisis reset from the end of its second
// workflow task: run A published e1, then e2; the reset replaced it by run
// B, whose history copies A's first eight events (e1's publication among
// them), and B published e2 again under its own id, e2-B.
func resetRuns(t *testing.T, e2B string) (a, b History) {
	ra := newRun(t, runA)
	ra.task()
	ra.publish("e1") // 5
	ra.task()        // 7, 8, 9
	ra.publish("e2") // 10
	ra.add(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, &historypb.HistoryEvent_WorkflowExecutionTerminatedEventAttributes{
		WorkflowExecutionTerminatedEventAttributes: &historypb.WorkflowExecutionTerminatedEventAttributes{Reason: "resetting workflow", Identity: crisis.ResetterIdentity}})

	rb := &historyBuilder{t: t, h: &historypb.History{}}
	for _, ev := range ra.h.Events[:8] {
		rb.h.Events = append(rb.h.Events, proto.Clone(ev).(*historypb.HistoryEvent))
	}
	rb.add(enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED, &historypb.HistoryEvent_WorkflowTaskFailedEventAttributes{
		WorkflowTaskFailedEventAttributes: &historypb.WorkflowTaskFailedEventAttributes{
			Cause: enumspb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW, BaseRunId: runA, NewRunId: runB,
			Failure: &failurepb.Failure{Message: "retry from the start"}}})
	rb.task()
	rb.publish(e2B) // 13
	wf := crisis.WorkflowID(resetCrisis)
	return History{WorkflowID: wf, RunID: runA, History: ra.h}, History{WorkflowID: wf, History: rb.h}
}

func eventRecord(seq uint64, id, run string, historyEvent int64) *demarchev1.AuditRecord {
	return &demarchev1.AuditRecord{Chain: ChainOf(resetCrisis), Sequence: seq, Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT,
		EventId: id, EventType: ceTypeOf(&demarchev1.StageEntered{}), EventSource: crisis.EventSource,
		WorkflowId: crisis.WorkflowID(resetCrisis), RunId: run, HistoryEventId: historyEvent}
}

// After a reset the chain holds the replaced run's records, the reset, and
// the new run's records; reconcile reads both runs' histories and reports
// the reset, not a mismatch. A record forged or missing after the reset is
// still reported.
func TestReconcileAfterReset(t *testing.T) {
	a, b := resetRuns(t, "e2-B")
	outside := &demarchev1.AuditRecord{Chain: ChainOf(resetCrisis), Sequence: 3, Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT,
		EventId: crisis.OutsideEventID(resetCrisis, runA), EventType: outsideType, EventSource: crisis.OutsideWatchSource}
	chain := []*demarchev1.AuditRecord{eventRecord(1, "e1", runA, 5), eventRecord(2, "e2", runA, 10), outside, eventRecord(4, "e2-B", runB, 13)}
	hs := []History{b, a} // as FetchHistories reads them: the latest run first

	rep, err := Reconcile(hs, chain)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Events != 3 || rep.EventsMatched != 3 || rep.EventRecords != 3 || len(rep.Absorbed) != 0 {
		t.Fatalf("chain after a reset: %+v\n%v", rep, rep.Error())
	}
	if len(rep.Outside) != 1 || rep.Outside[0].GetKind() != demarchev1.OutsideOperationKind_OUTSIDE_OPERATION_KIND_RESET ||
		rep.Outside[0].GetRunId() != runA || rep.Outside[0].GetNewRunId() != runB || rep.Outside[0].GetReason() != "retry from the start" {
		t.Fatalf("the reset, listed once: %v", rep.Outside)
	}

	// The reset must have its record.
	if rep, _ := Reconcile(hs, []*demarchev1.AuditRecord{chain[0], chain[1], chain[3]}); rep.OK() || len(rep.OutsideUnrecorded) != 1 {
		t.Fatalf("unrecorded reset: %+v", rep)
	}
	// The new run's event missing from the chain.
	rep, _ = Reconcile(hs, chain[:3])
	if rep.OK() || len(rep.MissingEvents) != 1 || !strings.Contains(rep.Error().Error(), "no audit record for event e2-B (org.demarche.crisis.stage_entered.v1, "+b.WorkflowID+" run "+runB+" history event 13") {
		t.Fatalf("missing record after the reset: %v", rep.Error())
	}
	// A record forged after the reset: an event no run published, and the
	// new run's event claimed for the replaced run.
	forged := append(append([]*demarchev1.AuditRecord(nil), chain...), eventRecord(5, "e3-B", runB, 13))
	rep, _ = Reconcile(hs, forged)
	if rep.OK() || len(rep.UnknownEvents) != 1 || rep.UnknownEvents[0].GetEventId() != "e3-B" {
		t.Fatalf("forged record after the reset: %+v %v", rep, rep.Error())
	}
	moved := append(append([]*demarchev1.AuditRecord(nil), chain[:3]...), eventRecord(4, "e2-B", runA, 13))
	rep, _ = Reconcile(hs, moved)
	if rep.OK() || len(rep.Mismatched) != 1 || !strings.Contains(rep.Mismatched[0], "run "+runA+" history event 13") {
		t.Fatalf("record naming the wrong run: %+v %v", rep, rep.Error())
	}
	// Without the replaced run's history, its own event has none: the
	// auditor needs every run (FetchHistories reads them).
	rep, _ = Reconcile([]History{b}, chain)
	if rep.OK() || len(rep.UnknownEvents) != 1 || rep.UnknownEvents[0].GetEventId() != "e2" || rep.EventsMatched != 2 {
		t.Fatalf("without the replaced run: %+v %v", rep, rep.Error())
	}
}

// A publication of the new run under the replaced run's event id (a
// disbursement's key, or an event id from before ids carried the run) is
// absorbed by the stream: reconcile says so, and it is no mismatch; without
// the replaced run's record, both are missing.
func TestReconcileAbsorbedAfterReset(t *testing.T) {
	a, b := resetRuns(t, "e2")
	outside := &demarchev1.AuditRecord{Chain: ChainOf(resetCrisis), Sequence: 3, Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT,
		EventId: crisis.OutsideEventID(resetCrisis, runA), EventType: outsideType, EventSource: crisis.OutsideWatchSource}
	chain := []*demarchev1.AuditRecord{eventRecord(1, "e1", runA, 5), eventRecord(2, "e2", runA, 10), outside}
	hs := []History{b, a}
	rep, err := Reconcile(hs, chain)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Events != 3 || rep.EventsMatched != 2 || len(rep.Absorbed) != 1 || rep.Absorbed[0].Publication.RunID != runB ||
		!strings.Contains(rep.Absorbed[0].String(), "absorbed by the stream as the event already published by run "+runA) {
		t.Fatalf("absorbed after a reset: %+v %v", rep, rep.Error())
	}
	rep, _ = Reconcile(hs, []*demarchev1.AuditRecord{chain[0], outside})
	if rep.OK() || len(rep.MissingEvents) != 2 {
		t.Fatalf("absorbed event without its record: %+v %v", rep, rep.Error())
	}
}
