package trail

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

func load(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "crisis", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEveryCommittedHistoryReplays(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "crisis", "testdata", "*.json"))
	if len(files) < 5 {
		t.Fatalf("only %d committed histories", len(files))
	}
	for _, f := range files {
		h, err := LoadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := Replay(h); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestIncompatibleChangeFailsReplayNamingWorkflowAndEvent(t *testing.T) {
	h, err := LoadFile(filepath.Join("..", "crisis", "testdata", "CrisisResponse-drill.json"))
	if err != nil {
		t.Fatal(err)
	}
	// A test-only "new version" of CrisisResponse that waits before anything else.
	changed := func(ctx workflow.Context, in *demarchev1.CrisisWorkflowInput) (*demarchev1.CrisisState, error) {
		_ = workflow.Sleep(ctx, time.Hour)
		return nil, nil
	}
	err = ReplayWith(h, func(r worker.WorkflowRegistry) {
		r.RegisterWorkflowWithOptions(changed, workflow.RegisterOptions{Name: crisis.WorkflowName})
	})
	if !errors.Is(err, ErrNonDeterministic) || !strings.Contains(err.Error(), "workflow CrisisResponse") {
		t.Fatalf("want a non-determinism error naming the workflow, got %v", err)
	}
	if !regexp.MustCompile(`(?i)event|history`).MatchString(err.Error()) {
		t.Fatalf("the error does not point at the history event: %v", err)
	}
}

func TestStandardTemporalJSONExportLoads(t *testing.T) {
	// The Temporal CLI writes enums in their short form ("WorkflowExecutionStarted");
	// turn the committed (long-form) history into that shape and load it.
	long := string(load(t, "FactFindingMission.json"))
	short := regexp.MustCompile(`"EVENT_TYPE_([A-Z_]+)"`).ReplaceAllStringFunc(long, func(m string) string {
		parts := strings.Split(strings.Trim(m, `"`)[len("EVENT_TYPE_"):], "_")
		for i, p := range parts {
			parts[i] = p[:1] + strings.ToLower(p[1:])
		}
		return `"` + strings.Join(parts, "") + `"`
	})
	if short == long || !strings.Contains(short, `"WorkflowExecutionStarted"`) {
		t.Fatal("test did not produce the short enum form")
	}
	h, err := LoadJSON(strings.NewReader(short))
	if err != nil {
		t.Fatal(err)
	}
	if err := Replay(h); err != nil {
		t.Fatalf("short-form export does not replay: %v", err)
	}
}

func TestDecisionTrailFromHistoryAlone(t *testing.T) {
	h, err := LoadFile(filepath.Join("..", "crisis", "testdata", "CrisisResponse-drill.json"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := FromHistory("crisis-GN-20261127-E2E01", h)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	rules := map[string]bool{}
	for _, e := range entries {
		kinds[e.Kind]++
		if e.Kind == "decision" {
			rules[e.Rule] = true
			if e.Principal == "" || e.Rationale == "" || e.Time.IsZero() || e.What == "" {
				t.Fatalf("decision without who, why, when or what: %+v", e)
			}
		}
	}
	for _, want := range []string{"triage", "good-offices", "fact-finding-mandate", "fact-finding-report", "envoy-appointment",
		"standby-team-deployed", "funding-request", "funding-decision", "follow-up-check-in", "closure"} {
		if !rules[want] {
			t.Errorf("trail lacks a %s decision (rules %v)", want, rules)
		}
	}
	if kinds["started"] != 1 || kinds["closed"] != 1 || kinds["stage"] < 12 {
		t.Fatalf("trail kinds: %v", kinds)
	}
	if entries[0].Kind != "started" || !strings.Contains(entries[0].What, "playbook general") {
		t.Fatalf("first entry: %+v", entries[0])
	}
	// The funding child's history shows the money that moved.
	fh, err := LoadFile(filepath.Join("..", "crisis", "testdata", "RapidResponseFunding.json"))
	if err != nil {
		t.Fatal(err)
	}
	fe, _ := FromHistory("funding", fh)
	money := false
	for _, e := range fe {
		money = money || (e.Kind == "money" && strings.Contains(e.What, "USD 50000"))
	}
	if !money {
		t.Fatalf("funding trail shows no payment: %+v", fe)
	}
}

// A control's entry says what it changed and who changed it: the sharing
// change of the crisis people drove through the CLI.
func TestSharingChangeIsInTheTrail(t *testing.T) {
	h, err := LoadFile(filepath.Join("..", "crisis", "testdata", "CrisisResponse.json"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := FromHistory("crisis-NE-20261127-HUMAN", h)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Kind == "sharing" && e.What == "shared with ECOWAS" {
			if e.Principal != "duty-officer" || e.Rationale != "ECOWAS leads the mediation" {
				t.Fatalf("sharing entry without who or why: %+v", e)
			}
			return
		}
	}
	t.Fatalf("no sharing change in the trail: %+v", entries)
}
