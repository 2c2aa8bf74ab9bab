package crisis

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
)

// The versioning rule. Until the first release tag, a workflow change
// re-records the histories in testdata/ (`make record-histories`, one per
// workflow type, named after it). From the first tag on, the histories
// recorded at each tag are kept under testdata/tags/<tag>/ (`make
// tag-histories TAG=...`) and replayed here forever: a change that breaks one
// needs a versioning branch (workflow.GetVersion), never a re-recording.

// TestReplayCommittedHistories replays the current histories, one per
// workflow type, against today's code.
func TestReplayCommittedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	types := []string{WorkflowName, FactFindingWorkflow, EnvoyWorkflow, FundingWorkflow, FollowUpWorkflow}
	for _, name := range types {
		if _, err := os.Stat(filepath.Join("testdata", name+".json")); err != nil {
			t.Errorf("no committed history for workflow type %s: run make record-histories", name)
		}
	}
	replayAll(t, files)
}

// TestReplayTaggedHistories replays every history recorded at every release
// tag (none before the first tag), and checks that each tag of the repository
// has its histories recorded.
func TestReplayTaggedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "tags", "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	replayAll(t, files)
	for _, tag := range releaseTags(t) {
		got, _ := filepath.Glob(filepath.Join("testdata", "tags", tag, "*.json"))
		if len(got) == 0 {
			t.Errorf("release tag %s has no recorded histories under testdata/tags/%s: run make tag-histories TAG=%s", tag, tag, tag)
		}
	}
}

// releaseTags are the repository's v* tags (none when git or tags are absent,
// as in an export without history).
func releaseTags(t *testing.T) []string {
	out, err := exec.Command("git", "tag", "--list", "v*").Output()
	if err != nil {
		t.Logf("no git tags to check: %v", err)
		return nil
	}
	return strings.Fields(string(out))
}

func replayAll(t *testing.T, files []string) {
	t.Helper()
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, "testdata"+string(filepath.Separator)), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			RegisterWorkflows(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
