package cli

import (
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
	for i, v := range decisionVerbs {
		if v.kind != kinds[i] {
			t.Errorf("verb %d is %q, schema kind is %q", i, v.kind, kinds[i])
		}
		sub, _, err := cmd.Find([]string{v.kind})
		if err != nil || sub.Name() != v.kind {
			t.Fatalf("no verb %s: %v", v.kind, err)
		}
		for _, a := range v.aliases {
			if old, _, err := cmd.Find([]string{a}); err != nil || old != sub {
				t.Errorf("alias %s does not reach %s", a, v.kind)
			}
		}
	}
	// Builders that need no parsing build their own kind.
	for _, v := range decisionVerbs {
		fs := pflag.NewFlagSet(v.kind, pflag.ContinueOnError)
		build := v.bind(fs)
		if err := fs.Parse(flagsFor(v.kind)); err != nil {
			t.Fatal(err)
		}
		req, err := build()
		if err != nil {
			t.Errorf("verb %s: %v", v.kind, err)
			continue
		}
		if got := req.DecisionKind(); got != v.kind {
			t.Errorf("verb %s builds a %s decision", v.kind, got)
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

// Each operator control's verb is its update's name (and the HTTP route's).
func TestControlVerbsAreTheUpdateNames(t *testing.T) {
	want := map[string]bool{}
	for _, u := range []string{crisis.UpdateEscalate, crisis.UpdateDeEscalate, crisis.UpdateSkipStage, crisis.UpdateReopenStage, crisis.UpdatePartnerRole, crisis.UpdateWarn, crisis.UpdateShare} {
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
