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
// workflows under workflows/testdata when DEMARCHE_RECORD_HISTORIES is set
// (`make record-histories`): the replay tests in workflows/ then check that
// today's code still replays what ran on the real stack.
func recordHistories(t *testing.T, tc client.Client, crisisID string) {
	t.Helper()
	if os.Getenv("DEMARCHE_RECORD_HISTORIES") == "" {
		return
	}
	files := map[string]string{crisis.WorkflowID(crisisID): "crisis_response_lifecycle.json"}
	for stage, name := range map[demarchev1.Stage]string{
		demarchev1.Stage_STAGE_FACT_FINDING:           "fact_finding_mission.json",
		demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT:       "envoy_deployment.json",
		demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING: "rapid_response_funding.json",
		demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP:    "sustained_follow_up.json",
	} {
		files[crisis.ChildWorkflowID(crisisID, stage, 1)] = name
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
		path := filepath.Join("..", "..", "workflows", "testdata", name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %d events of %s to %s", len(hist.Events), id, path)
	}
}
