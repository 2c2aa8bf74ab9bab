package audit

import (
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/trail"
)

// A crisis terminated with the temporal CLI: reconcile names the operation,
// and fails until the chain holds the watcher's CrisisAlteredOutside record.
func TestReconcileReportsOutsideOperations(t *testing.T) {
	hs := loadHistories(t)
	evs := hs[0].History.GetEvents()
	cut := &historypb.History{Events: append([]*historypb.HistoryEvent(nil), evs[:20]...)}
	cut.Events = append(cut.Events, &historypb.HistoryEvent{
		EventId: 21, EventTime: timestamppb.Now(), EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionTerminatedEventAttributes{WorkflowExecutionTerminatedEventAttributes: &historypb.WorkflowExecutionTerminatedEventAttributes{
			Reason: "cleaning up", Identity: "mallory@ops-laptop"}},
	})
	hs[0].History = cut
	chain := chainFor(t, hs, nil)

	rep, err := Reconcile(hs, chain.Records)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Outside) != 1 || len(rep.OutsideUnrecorded) != 1 ||
		!strings.Contains(rep.Error().Error(), "terminated outside Démarche by mallory@ops-laptop at ") || !strings.Contains(rep.Error().Error(), "cleaning up") {
		t.Fatalf("unrecorded termination not reported: %+v %v", rep, rep.Error())
	}

	runID := crisis.RunIDOf(cut)
	if runID == "" {
		t.Fatal("no run id in the history")
	}
	recorded := append(chain.Records, &demarchev1.AuditRecord{Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT,
		EventType: outsideType, EventId: crisis.OutsideEventID(historyCrisis, runID), Principal: "temporal:mallory@ops-laptop"})
	if rep, _ = Reconcile(hs, recorded); !rep.OK() || len(rep.Outside) != 1 {
		t.Fatalf("recorded termination: %+v %v", rep, rep.Error())
	}

	// The trail (audit replay, evidence bundles) names it too.
	entries, err := trail.FromHistory(hs[0].WorkflowID, cut)
	if err != nil {
		t.Fatal(err)
	}
	last := entries[len(entries)-1]
	if last.Kind != "outside" || !strings.Contains(last.What, "terminated outside Démarche by mallory@ops-laptop") {
		t.Fatalf("trail ends with %+v", last)
	}
}
