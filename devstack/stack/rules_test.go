package stack_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/natsauth"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/cli"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/workflows/crisis"
)

// cliAs runs one demarche command against the stack's gateway with token.
func cliAs(t *testing.T, s *stack.Stack, token string, args ...string) (string, error) {
	t.Helper()
	root := cli.NewRoot(stack.NewDevCmd)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--server", s.APIURL(), "--token", token, "--nats-url", s.NATSURLFor(natsauth.Operator), "--log-level", "error"))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestRulesAppliedWithoutARestart is issue 22's "change a rule without a
// restart" on the real stack, as docs/analysts.md tells it: live Guinea
// signals below the default threshold (25); an analyst may not apply rules
// (403, nothing changes); rules out of bounds are refused with line and
// field, by the CLI and by the platform (nothing changes); the head of
// department applies rules with a lower threshold with `warning rules apply`,
// and without any restart the situation is re-scored under the new version
// and crosses: one warning, a crisis opened; the change is on the audit
// trail's global chain once (rules-changed, by the head, old and new
// version), and `audit verify` is clean.
func TestRulesAppliedWithoutARestart(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	run := mustCLI(t, s)
	now := time.Now().UTC()

	out := run("warning", "import", "--format", "acled", "--quiet", guineaLive(t, "GINRULES", now,
		[]struct{ daysAgo, deaths int }{{5, 3}, {4, 12}, {3, 12}}))
	if !strings.Contains(out, "3 accepted") || strings.Contains(out, "crisis opened") {
		t.Fatalf("import below the threshold:\n%s", out)
	}
	// The situation's crisis type is the rules' (whatever class these rows get).
	var typ string
	for _, slug := range demarchev1.CrisisTypeSlugs() {
		if _, err := runCLI(t, s, "warning", "score", "--country", "GN", "--type", slug); err == nil {
			typ = slug
			break
		}
	}
	if typ == "" {
		t.Fatal("no Guinea situation after the import")
	}
	score := func() *demarchev1.ScoreResponse {
		t.Helper()
		var sc demarchev1.ScoreResponse
		raw := run("warning", "score", "--country", "GN", "--type", typ, "--output", "json")
		if err := apijson.UnmarshalLenient([]byte(raw), &sc); err != nil {
			t.Fatalf("score: %v\n%s", err, raw)
		}
		return &sc
	}
	before := score()
	defaults := earlywarning.DefaultRules()
	if before.GetAboveThreshold() || before.GetScore() >= 25 || before.GetThreshold() != 25 || before.GetRulesVersion() != defaults.Version || before.GetCrisisId() != "" {
		t.Fatalf("before: score %g threshold %g above %v rules %s crisis %q", before.GetScore(), before.GetThreshold(), before.GetAboveThreshold(),
			before.GetRulesVersion(), before.GetCrisisId())
	}

	// The rules files: the default with a threshold under the score, and one out of bounds.
	dir := t.TempDir()
	write := func(name, from, to string) string {
		t.Helper()
		text := string(defaults.Source)
		if !strings.Contains(text, from) {
			t.Fatalf("%q not in the default rules", from)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(strings.Replace(text, from, to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	threshold := math.Max(1, math.Floor(before.GetScore()/2))
	t.Logf("before: GN %s score %.1f of %g under %s; the new threshold %g", typ, before.GetScore(), before.GetThreshold(), before.GetRulesVersion(), threshold)
	lower := write("lower.yaml", "    default: 25", fmt.Sprintf("    default: %g", threshold))
	bad := write("bad.yaml", "  window: 336h", "  window: 1h")
	lowerRules, err := earlywarning.LoadRules(lower)
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(what string) {
		t.Helper()
		if sc := score(); sc.GetRulesVersion() != defaults.Version || sc.GetThreshold() != 25 || sc.GetAboveThreshold() || sc.GetCrisisId() != "" {
			t.Fatalf("after %s: rules %s threshold %g above %v crisis %q", what, sc.GetRulesVersion(), sc.GetThreshold(), sc.GetAboveThreshold(), sc.GetCrisisId())
		}
	}

	// Forbidden: the analyst (the demo identity) may not apply rules.
	out, err = cliAs(t, s, readToken(t, s.TokenFile("analyst")), "warning", "rules", "apply", lower)
	if err == nil || !strings.Contains(err.Error()+out, "rules.apply needs one of the roles head-of-department") {
		t.Fatalf("the analyst applied rules: %v\n%s", err, out)
	}
	unchanged("the analyst's apply")

	// Refused: out of bounds, by the CLI (never sent) and by the platform.
	head := testToken(t, s, "hannah", "head-of-department")
	out, err = cliAs(t, s, head, "warning", "rules", "apply", bad)
	if err == nil || !strings.Contains(err.Error(), "scoring.window: 1h is out of range") || !strings.Contains(err.Error(), "line ") {
		t.Fatalf("rules out of bounds through the CLI: %v\n%s", err, out)
	}
	badBytes, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	api := apiCaller{t: t, url: s.APIURL(), token: head}
	if code, _, raw := api.call("POST", "/v1/warning/rules", fmt.Sprintf(`{"rules": %q, "name": "bad.yaml"}`, base64.StdEncoding.EncodeToString(badBytes))); code != http.StatusBadRequest ||
		!strings.Contains(raw, "scoring.window: 1h is out of range") || !strings.Contains(raw, "line ") {
		t.Fatalf("rules out of bounds through the API: %d %s", code, raw)
	}
	unchanged("the refused applies")

	// The head applies the lower threshold: no restart, the situation crosses.
	out, err = cliAs(t, s, head, "warning", "rules", "apply", lower)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	t.Logf("apply:\n%s", out)
	if !strings.Contains(out, "rules "+lowerRules.Version+" in force") || !strings.Contains(out, "replacing "+defaults.Version) ||
		!strings.Contains(out, "applied by hannah") || !strings.Contains(out, "1 crossed their threshold") {
		t.Fatalf("apply:\n%s", out)
	}
	after := score()
	if !after.GetAboveThreshold() || after.GetThreshold() != threshold || after.GetRulesVersion() != lowerRules.Version || after.GetCrisisId() == "" || after.GetCrossings() != 1 {
		t.Fatalf("after: score %g threshold %g above %v rules %s crisis %q crossings %d", after.GetScore(), after.GetThreshold(), after.GetAboveThreshold(),
			after.GetRulesVersion(), after.GetCrisisId(), after.GetCrossings())
	}
	if h := after.GetHistory(); len(h) == 0 || !h[len(h)-1].GetCrossing() || h[len(h)-1].GetRulesVersion() != lowerRules.Version {
		t.Fatalf("the score's history does not show the crossing under the new rules: %v", h)
	}
	id := after.GetCrisisId()
	waitPendingKind(t, tc, id, "triage")
	st, err := crisis.State(ctx, tc, id)
	if err != nil {
		t.Fatal(err)
	}
	if ws := st.GetWarnings(); len(ws) != 1 || !strings.Contains(ws[0].GetSummary(), "re-scored under rules "+lowerRules.Version) || ws[0].GetRulesVersion() != lowerRules.Version {
		t.Fatalf("the crossing's warnings: %v", ws)
	}
	// The rules in force, for anyone who reads scores (the analyst).
	if out, err := cliAs(t, s, readToken(t, s.TokenFile("analyst")), "warning", "rules", "show", "--active"); err != nil ||
		!strings.Contains(out, "# rules version "+lowerRules.Version+"\n# in force: applied by hannah") || !strings.Contains(out, fmt.Sprintf("    default: %g\n", threshold)) {
		t.Fatalf("warning rules show --active: %v\n%s", err, out)
	}
	// The same file again changes nothing.
	if out, err := cliAs(t, s, head, "warning", "rules", "apply", lower); err != nil || !strings.Contains(out, "already in force") {
		t.Fatalf("the same rules again: %v\n%s", err, out)
	}

	// On the audit trail once, as the head, and the trail verifies.
	nc, _ := jsAs(t, s, natsauth.Gateway) // chains are read through the gateway
	waitFor(t, func() bool {
		chain, err := audit.FetchChain(ctx, nc, "", "auditor-test")
		return err == nil && len(rulesRecords(chain)) > 0
	})
	chain, err := audit.FetchChain(ctx, nc, "", "auditor-test")
	if err != nil {
		t.Fatal(err)
	}
	recs := rulesRecords(chain)
	if len(recs) != 1 || recs[0].GetPrincipal() != "hannah" || recs[0].GetKind() != demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION ||
		!strings.Contains(recs[0].GetDetail(), lowerRules.Version+" replaced "+defaults.Version) || !strings.Contains(recs[0].GetDetail(), earlywarning.RulesDigest(lowerRules.Source)) {
		t.Fatalf("rules-changed records on the global chain: %v", recs)
	}
	if out, err := runCLI(t, s, "audit", "verify"); err != nil || !strings.Contains(out, "chain global verifies") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

func rulesRecords(chain *demarchev1.AuditChain) []*demarchev1.AuditRecord {
	var out []*demarchev1.AuditRecord
	for _, r := range chain.GetRecords() {
		if r.GetEventType() == audit.RulesChangedEventType {
			out = append(out, r)
		}
	}
	return out
}
