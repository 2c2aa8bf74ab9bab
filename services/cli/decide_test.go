package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// Each decision kind of the schema has the CLI verb of the same name, and
// each verb builds a decision of its own kind.
func TestDecideVerbsAreTheSchemaKinds(t *testing.T) {
	kinds := demarchev1.DecisionKinds()
	cmd := newDecideCmd(&App{})
	if len(cmd.Commands()) != len(kinds) {
		t.Fatalf("%d verbs for %d kinds", len(cmd.Commands()), len(kinds))
	}
	for i, f := range demarchev1.DecisionForms() {
		if f.Kind != kinds[i] {
			t.Errorf("verb %d is %q, schema kind is %q", i, f.Kind, kinds[i])
		}
		sub, _, err := cmd.Find([]string{f.Kind})
		if err != nil || sub.Name() != f.Kind {
			t.Fatalf("no verb %s: %v", f.Kind, err)
		}
		for _, a := range f.Aliases {
			if old, _, err := cmd.Find([]string{a}); err != nil || old != sub {
				t.Errorf("alias %s does not reach %s", a, f.Kind)
			}
		}
	}
	// Builders that need no parsing build their own kind.
	for _, f := range demarchev1.DecisionForms() {
		fs := pflag.NewFlagSet(f.Kind, pflag.ContinueOnError)
		build := bindDecision(fs, f)
		if err := fs.Parse(flagsFor(f.Kind)); err != nil {
			t.Fatal(err)
		}
		req, err := build()
		if err != nil {
			t.Errorf("verb %s: %v", f.Kind, err)
			continue
		}
		if got := req.DecisionKind(); got != f.Kind {
			t.Errorf("verb %s builds a %s decision", f.Kind, got)
		}
	}
}

func flagsFor(kind string) []string {
	switch kind {
	case "good-offices":
		return []string{"--option", "demarche"}
	case "closure":
		return []string{"--outcome", "averted"}
	case "fact-finding-mandate":
		return []string{"--body", "security-council", "--report-due", "240h"}
	}
	return nil
}

// The verbs and flags of v0.1.0 still work: scripts written against it keep
// running now that both are read from the schema.
func TestDecideVerbsAndFlagsOfV010(t *testing.T) {
	v010 := map[string][]string{
		"triage":                {"assessment"},
		"good-offices":          {"option"},
		"mandate":               {"terms", "body", "team", "report-due"},
		"report":                {"summary", "finding"},
		"appoint-envoy":         {"envoy", "standby-team"},
		"deployed":              {"location"},
		"request-funds":         {"funding-request", "fund", "amount", "purpose"},
		"decide-funds":          {"funding-request", "approve"},
		"check-in":              {"commitments-implemented", "tensions", "recommendation"},
		"close":                 {"outcome", "lesson"},
		"fact-finding-mandate":  {"terms"},
		"fact-finding-report":   {"finding"},
		"envoy-appointment":     {"envoy"},
		"standby-team-deployed": {"location"},
		"funding-request":       {"amount"},
		"funding-decision":      {"approve"},
		"follow-up-check-in":    {"recommendation"},
		"closure":               {"lesson"},
	}
	cmd := newDecideCmd(&App{})
	for verb, flags := range v010 {
		sub, _, err := cmd.Find([]string{verb})
		if err != nil || sub == cmd {
			t.Errorf("verb %s of v0.1.0 is gone", verb)
			continue
		}
		for _, f := range append(flags, "rationale", "request-id") {
			if sub.Flags().Lookup(f) == nil {
				t.Errorf("%s: flag --%s of v0.1.0 is gone", verb, f)
			}
		}
	}
	// Repeated text flags keep commas inside an item; roster lists split on them.
	fs := pflag.NewFlagSet("close", pflag.ContinueOnError)
	build := bindDecision(fs, demarchev1.DecisionFormOf("closure"))
	if err := fs.Parse([]string{"--outcome", "averted", "--lesson", "talks, not threats", "--lesson", "the region led"}); err != nil {
		t.Fatal(err)
	}
	req, err := build()
	if err != nil || len(req.GetClosure().GetLessons()) != 2 {
		t.Fatalf("lessons: %v %v", req, err)
	}
	fs = pflag.NewFlagSet("check-in", pflag.ContinueOnError)
	build = bindDecision(fs, demarchev1.DecisionFormOf("follow-up-check-in"))
	_ = fs.Parse(nil)
	if req, _ := build(); req.GetFollowUpCheckIn().GetRecommendation() != demarchev1.FollowUpRecommendation_FOLLOW_UP_RECOMMENDATION_CONTINUE {
		t.Errorf("--recommendation defaults to continue: %v", req)
	}
	if err := asFlags(demarchev1.NewDecisionRequest("you", "", &demarchev1.FactFindingMandate{}).Validate(), demarchev1.DecisionFormOf("fact-finding-mandate")); err == nil ||
		!strings.Contains(err.Error(), "--report-due: is required") || !strings.Contains(err.Error(), "--rationale: is required") || !errors.Is(err, demarchev1.ErrInvalid) {
		t.Errorf("a refused decision names the flags: %v", err)
	}
	fs = pflag.NewFlagSet("good-offices", pflag.ContinueOnError)
	build = bindDecision(fs, demarchev1.DecisionFormOf("good-offices"))
	_ = fs.Parse([]string{"--option", "tea"})
	if _, err := build(); err == nil || !strings.HasPrefix(err.Error(), "--option: ") || !strings.Contains(err.Error(), "quiet-diplomacy") {
		t.Errorf("a bad choice names its flag and the choices: %v", err)
	}
}

// Each operator control's verb is its update's name (and the HTTP route's).
func TestControlVerbsAreTheUpdateNames(t *testing.T) {
	want := map[string]bool{}
	for _, u := range []string{crisis.UpdateEscalate, crisis.UpdateDeEscalate, crisis.UpdateSkipStage, crisis.UpdateReopenStage, crisis.UpdatePartnerRole, crisis.UpdateWarn, crisis.UpdateShare, crisis.UpdateComment} {
		want[strings.TrimPrefix(u, "crisis.")] = true
	}
	cmds := newControlCmds(&App{})
	if len(cmds) != len(want) {
		t.Fatalf("%d controls, %d updates", len(cmds), len(want))
	}
	for _, c := range cmds {
		if !want[c.Name()] {
			t.Errorf("control verb %s is not an update name", c.Name())
		}
	}
}
