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
)

// recordHistory writes a workflow's history under workflows/testdata when
// DEMARCHE_RECORD_HISTORIES is set (`make record-histories`): the replay tests in
// workflows/ then check that today's code still replays what ran on the real stack.
func recordHistory(t *testing.T, tc client.Client, workflowID string) {
	t.Helper()
	if os.Getenv("DEMARCHE_RECORD_HISTORIES") == "" {
		return
	}
	hist := &historypb.History{}
	it := tc.GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "workflows", "testdata", "crisis_response_drill.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %d events to %s", len(hist.Events), path)
}
