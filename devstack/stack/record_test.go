package stack_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// recordHistories writes the histories of a crisis and of its stages' child
// workflows under workflows/crisis/testdata, one file per workflow type named
// after it, when DEMARCHE_RECORD_HISTORIES is set (`make record-histories`):
// the replay tests then check that today's code replays what ran on the real
// stack.
//
// The crisis history is written as name (CrisisResponse.json for the crisis
// people drive, with decisions and controls as updates; CrisisResponse-drill.json
// for the drill); withStages also writes its stages' first runs.
func recordHistories(t *testing.T, tc client.Client, crisisID, name string, withStages bool) {
	t.Helper()
	if os.Getenv("DEMARCHE_RECORD_HISTORIES") == "" {
		return
	}
	files := map[string]string{crisis.WorkflowID(crisisID): name}
	for stage, name := range map[demarchev1.Stage]string{
		demarchev1.Stage_STAGE_FACT_FINDING:           crisis.FactFindingWorkflow,
		demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT:       crisis.EnvoyWorkflow,
		demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING: crisis.FundingWorkflow,
		demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP:    crisis.FollowUpWorkflow,
	} {
		if withStages {
			files[crisis.ChildWorkflowID(crisisID, stage, 1)] = name + ".json"
		}
	}
	for id, name := range files {
		hist := &historypb.History{}
		it := tc.GetWorkflowHistory(context.Background(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatalf("history of %s: %v", id, err)
			}
			hist.Events = append(hist.Events, ev)
		}
		b, err := protojson.MarshalOptions{Multiline: true}.Marshal(hist)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "..", "workflows", "crisis", "testdata", name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %d events of %s to %s", len(hist.Events), id, path)
	}
}

// historyLength is how many events a crisis's workflow history holds.
func historyLength(t *testing.T, tc client.Client, crisisID string) int {
	t.Helper()
	n := 0
	it := tc.GetWorkflowHistory(context.Background(), crisis.WorkflowID(crisisID), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		if _, err := it.Next(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// settledHistoryLength is the history length once the crisis has nothing
// under way: no activity pending (its events published, which happens after
// the update that made them has answered) and the same length twice running.
func settledHistoryLength(t *testing.T, tc client.Client, crisisID string) int {
	t.Helper()
	last := -1
	var n int
	waitFor(t, func() bool {
		d, err := tc.DescribeWorkflowExecution(context.Background(), crisis.WorkflowID(crisisID), "")
		if err != nil || len(d.GetPendingActivities()) > 0 {
			return false
		}
		n = historyLength(t, tc, crisisID)
		settled := n == last
		last = n
		return settled
	})
	return n
}
