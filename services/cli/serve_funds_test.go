package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestProductionNeedsFundsAndRoster: a production start without a funds or
// roster file fails at once saying what to pass (the demo data is demarche
// dev's alone); the old demo flags say what replaced them; a bad file is
// refused naming the file, the line, the entry and the field, before any
// connection is made.
func TestProductionNeedsFundsAndRoster(t *testing.T) {
	t.Setenv("DEMARCHE_FUNDS_FILE", "")
	t.Setenv("DEMARCHE_ROSTER_FILE", "")
	bad := filepath.Join(t.TempDir(), "funds.yaml")
	if err := os.WriteFile(bad, []byte("funds:\n  - id: f-one\n    name: One\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		service string
		args    []string
		want    []string
	}{
		{"funding", nil, []string{"no funds: pass --funds FILE", "deploy/funds.example.yaml", "demarche admin open-fund", "demo funds are for demarche dev only"}},
		{"funding", []string{"--open-funds"}, []string{"--open-funds is gone", "demarche admin open-fund"}},
		{"funding", []string{"--funds", bad}, []string{"--funds: ", bad + `: line 5: funds[0] (id "f-one"): per_crisis_ceiling_usd: -1: must be positive`}},
		{"roster", nil, []string{"no roster: pass --roster FILE", "deploy/roster.example.yaml", "demo roster is for demarche dev only"}},
		{"roster", []string{"--seed"}, []string{"--seed is gone", "--roster FILE"}},
	} {
		cmd := newServeCmd(&App{Log: zap.NewNop()}) // cobra runs a subcommand from its root
		cmd.SetArgs(append([]string{tc.service, "--metrics-listen", ""}, tc.args...))
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.ExecuteContext(context.Background())
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("serve %s %v: %v, want an error saying %q", tc.service, tc.args, err, want)
			}
		}
	}
}

// TestOpenFundRunsAsTheProvisioner: open-fund refuses, before connecting, a
// run without --reason, without a fund, with a fund not in the file, or as
// another NATS identity than the provisioner.
func TestOpenFundRunsAsTheProvisioner(t *testing.T) {
	t.Setenv("DEMARCHE_FUNDS_FILE", "")
	t.Setenv("DEMARCHE_DATA_DIR", t.TempDir())
	good := filepath.Join(t.TempDir(), "funds.yaml")
	if err := os.WriteFile(good, []byte("funds:\n  - {id: f-one, name: One, opening_balance_usd: 10, per_crisis_ceiling_usd: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url  string
		args []string
		want string
	}{
		{"nats://127.0.0.1:1", []string{"--fund", "f-one", "--reason", "r"}, "--funds FILE is required"},
		{"nats://127.0.0.1:1", []string{"--funds", good, "--fund", "f-one"}, "--reason is required"},
		{"nats://127.0.0.1:1", []string{"--funds", good, "--reason", "r"}, "--fund ID (repeatable) or --all"},
		{"nats://127.0.0.1:1", []string{"--funds", good, "--fund", "nope", "--reason", "r"}, "--fund nope: no such fund in " + good + " (funds there: f-one)"},
		{"nats://demarche-operator:pw@127.0.0.1:1", []string{"--funds", good, "--all", "--reason", "r"}, `runs as the provisioner (demarche-provisioner), not as demarche-operator`},
	} {
		cmd := newAdminOpenFundCmd(&App{Log: zap.NewNop(), NATSURL: tc.url})
		cmd.SetArgs(tc.args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open-fund %v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
