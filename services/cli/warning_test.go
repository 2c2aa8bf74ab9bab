package cli

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/gateway"
)

func TestReportFlagsNameEveryBadFlag(t *testing.T) {
	t.Parallel()
	_, err := reportFlags{source: "Bad Source", country: "xx", crisisType: "coup", summary: ""}.signal(time.Now())
	if err == nil || !strings.Contains(err.Error(), "--type") {
		t.Fatalf("unknown type: %v", err)
	}
	_, err = reportFlags{source: "Bad Source", country: "xx", crisisType: "general", severity: 9}.signal(time.Now())
	for _, flag := range []string{"(--source)", "(--country)", "(--summary)", "(--severity)"} {
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("error %v does not name %s", err, flag)
		}
	}
	sig, err := reportFlags{source: "operator", country: "gn", crisisType: "unconstitutional-change", summary: "Troops", severity: 4, fatalities: 1}.signal(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if sig.GetCountryCode() != "GN" || sig.GetWeight() != 4 || sig.GetSourceId() == "" {
		t.Errorf("signal %v", sig)
	}
}

// A signal of a category beyond fatalities: its rule names the category and
// its weight is the rules', never the deaths'; a bad category, a missing or
// unknown risk factor, or a weight given with a category is refused naming
// the flag.
func TestReportFlagsCategory(t *testing.T) {
	t.Parallel()
	base := reportFlags{source: "femwise", country: "gn", crisisType: "election-violence", summary: "Leaflets", fatalities: 12}
	for _, tc := range []struct {
		name, category, factor string
		weight                 float64
		wantRule               string
		wantWeight             float64
		err                    string
	}{
		{name: "hate speech", category: "hate-speech", wantRule: "hate-speech", wantWeight: 2.5},
		{name: "human-rights violation", category: "human-rights-violation", wantRule: "human-rights-violation", wantWeight: 3},
		{name: "atrocity risk factor", category: "atrocity-risk", factor: "intergroup-tensions", wantRule: "atrocity-risk/intergroup-tensions", wantWeight: 4},
		{name: "unknown category", category: "rumour", err: `--category: "rumour" is not a category`},
		{name: "risk factor alone", factor: "intergroup-tensions", err: "--risk-factor: needs --category"},
		{name: "atrocity risk without factor", category: "atrocity-risk", err: "--category/--risk-factor: \"atrocity-risk\" needs its risk factor"},
		{name: "weight with a category", category: "hate-speech", weight: 9, err: "--weight: a signal of a category is weighed by the rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base
			f.category, f.riskFactor, f.weight = tc.category, tc.factor, tc.weight
			sig, err := f.signal(time.Now())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sig.GetRule() != tc.wantRule || sig.GetWeight() != tc.wantWeight || sig.GetFatalities() != 12 {
				t.Fatalf("signal %v: want rule %s weight %g", sig, tc.wantRule, tc.wantWeight)
			}
		})
	}
}

// TestWarningCommandsAgainstTheService runs import, report and score against
// a real embedded NATS and earlywarning service (fake crisis opener).
func TestWarningCommandsAgainstTheService(t *testing.T) {
	t.Parallel()
	log := zap.NewNop()
	srv := natstest.Server(t)
	svc, err := earlywarning.Start(context.Background(), earlywarning.Config{NATSURL: srv.URL(), DefaultThreshold: 100}, nopOpener{}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)

	file := filepath.Join(t.TempDir(), "acled.csv")
	csv := "event_id_cnty,event_date,event_type,sub_event_type,country,location,notes,fatalities\n" +
		"GIN1,2023-02-16,Battles,Armed clash,Guinea,Conakry,\"Coup attempt, gunfire\",3\n" +
		"GIN2,16 February 2023,Protests,Peaceful protest,Guinea,Conakry,\"Marchers\nagainst the junta\",0\n" +
		"ATL1,2023-02-16,Riots,Mob violence,Atlantis,Nowhere,x,0\n" +
		"GIN1,2023-02-16,Battles,Armed clash,Guinea,Conakry,dup,3\n"
	if err := os.WriteFile(file, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	// The commands reach early warning through the gateway, as an analyst.
	nc, _ := natstest.Connect(t, srv.URL())
	iss, err := authn.LoadOrCreateIssuer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(gateway.NewHandler(nc, nil, iss.Verifier(), log))
	t.Cleanup(api.Close)
	token, err := iss.Mint(authn.Claims{Subject: "analyst", Roles: []string{"analyst"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		app := &App{Server: api.URL, Token: token, Log: log, Out: &out}
		cmd := newWarningCmd(app)
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := run("import", "--format", "acled", "--quiet", file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4 rows read, 2 accepted, 1 duplicates, 1 rejected", `line 5 (ATL1): country "Atlantis" (iso "") is not a known country`,
		"0 live, 2 historical", "crises: none opened or signalled"} {
		if !strings.Contains(out, want) {
			t.Errorf("import output %q lacks %q", out, want)
		}
	}
	if _, err := run("import", "--format", "gdelt", file); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("bad format: %v", err)
	}
	// A signal is the sender's: another source named is refused by the gateway, naming the rule.
	if _, err := run("report", "--source", "ucdp", "--source-id", "op-1", "--country", "GN", "--type", "unconstitutional-change", "--summary", "Troops at the palace", "--severity", "4", "--observed-at", "2023-02-17"); err == nil ||
		!strings.Contains(err.Error(), "a signal's source is who sends it") {
		t.Fatalf("report claiming ucdp: %v", err)
	}
	out, err = run("report", "--source-id", "op-1", "--country", "GN", "--type", "unconstitutional-change", "--summary", "Troops at the palace", "--severity", "4", "--observed-at", "2023-02-17")
	if err != nil || !strings.Contains(out, "person_analyst/op-1 accepted (weight 4.00)") {
		t.Fatalf("report: %q %v", out, err)
	}
	out, err = run("score", "--country", "GN", "--type", "unconstitutional-change")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GN unconstitutional-change (africa): score 8.25, threshold 100.00 (8% of it): below", "3 signal(s)", "4.00    48%", "person_analyst  op-1", "person_analyst  acled-GIN1"} {
		if !strings.Contains(out, want) {
			t.Errorf("score output lacks %q:\n%s", want, out)
		}
	}
	// Each signal's line gives its deaths and the rule that classified it.
	if !regexp.MustCompile(`(?m)^3\.25 +39% +3 +coup +2023-02-16 00:00 +person_analyst +acled-GIN1 `).MatchString(out) ||
		!regexp.MustCompile(`(?m)^4\.00 +48% +0 +reported +2023-02-17 00:00 +person_analyst +op-1 `).MatchString(out) {
		t.Errorf("score lines lack deaths and rule:\n%s", out)
	}
	// A hate-speech signal is weighed by the rules (2.5), not by its deaths,
	// and its line names the category as its rule.
	out, err = run("report", "--source-id", "hs-1", "--country", "GN", "--type", "election-violence", "--category", "hate-speech",
		"--fatalities", "5", "--summary", "Radio host calls for violence against a community", "--observed-at", "2023-02-17")
	if err != nil || !strings.Contains(out, "person_analyst/hs-1 accepted (weight 2.50)") {
		t.Fatalf("report --category hate-speech: %q %v", out, err)
	}
	out, err = run("score", "--country", "GN", "--type", "election-violence")
	if err != nil || !regexp.MustCompile(`(?m)^2\.50 +100% +5 +hate-speech +2023-02-17 00:00 +person_analyst +hs-1 `).MatchString(out) {
		t.Errorf("score of the hate-speech signal (%v):\n%s", err, out)
	}
	if _, err := run("score", "--country", "ML", "--type", "general"); err == nil || !strings.Contains(err.Error(), "no signals recorded for ML general") {
		t.Errorf("empty situation: %v", err)
	}
}

type nopOpener struct{}

func (nopOpener) OpenOrSignal(context.Context, *demarchev1.CrisisWorkflowInput, *demarchev1.Warning) error {
	return nil
}

func (nopOpener) IsOpen(context.Context, string) (bool, error) { return false, nil }

func (nopOpener) FindOpen(context.Context, string, demarchev1.CrisisType) (string, error) {
	return "", nil
}

// TestWarningRulesAndBacktestVerbs: the offline verbs on files.
func TestWarningRulesAndBacktestVerbs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		app := &App{Log: zap.NewNop(), Out: &out}
		cmd := newWarningCmd(app)
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	shown, err := run("rules", "show")
	if err != nil || !strings.HasPrefix(shown, "# rules version 2026.12.2+") {
		t.Fatalf("rules show: %v %q", err, shown[:min(len(shown), 80)])
	}
	good := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(good, []byte(shown), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run("rules", "validate", good); err != nil || !strings.Contains(out, "valid, version 2026.12.2+") {
		t.Fatalf("validate the shown rules: %v %s", err, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(shown, "crisis_type: election-violence", "crisis_type: elections", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run("rules", "validate", bad); err == nil || !strings.Contains(err.Error(), "rules[2].crisis_type: \"elections\" is not a crisis type") ||
		!strings.Contains(err.Error(), "line ") {
		t.Fatalf("validate a bad file: %v", err)
	}
	sample := filepath.Join(dir, "sample.csv")
	csv := "event_id_cnty,event_date,event_type,sub_event_type,actor1,actor2,interaction,country,notes,fatalities,civilian_targeting\n" +
		"GIN1,2009-09-28,Violence against civilians,Attack,Military Forces of Guinea,Civilians (Guinea),17,Guinea,\"Presidential guard fires on an opposition rally against the junta's candidate, stadium\",157,Civilian targeting\n" +
		"KEN1,2009-09-28,Riots,Mob violence,Rioters,,55,Kenya,Herder and farmer clashes,3,\n" +
		"XXX1,2009-09-28,Riots,Mob violence,Rioters,,55,Atlantis,x,0,\n" +
		"GIN2,2009-09-29,Protests,Excessive force against protesters,Police Forces of Guinea,Protesters (Guinea),16,Guinea,Police fire on marchers,3,\n" +
		"GIN3,2009-09-30,Strategic developments,Arrests,Police Forces of Guinea,Civilians (Guinea),17,Guinea,Opposition leaders detained,0,\n"
	if err := os.WriteFile(sample, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run("rules", "test", "--format", "acled", sample)
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"2 GIN1 2009-09-28 GN unconstitutional-change coup 12.33 157", "3 KEN1 2009-09-28 KE intercommunal-violence non-state 3.25 3", "4 XXX1 rejected: country \"Atlantis\"",
		// ACLED's event types have rules of their own: a repressed protest is a constitutional crisis weighing 1.5 ×, a strategic development half.
		"5 GIN2 2009-09-29 GN constitutional-crisis protests-repressed 4.88 3", "6 GIN3 2009-09-30 GN general strategic-developments 0.50 0"} {
		if !strings.Contains(flat, want) {
			t.Errorf("rules test output lacks %q:\n%s", want, out)
		}
	}
	out, err = run("backtest", "--file", sample, "--format", "acled", "--threshold", "5", "--quiet")
	if err != nil || !strings.Contains(out, "GN-unconstitutional-change") || !strings.Contains(out, "false alarm: a crossing followed by fewer than 10 deaths within 720h0m0s") {
		t.Fatalf("backtest: %v\n%s", err, out)
	}
	out, err = run("backtest", "--file", sample, "--format", "acled", "--threshold", "5", "--quiet", "--output", "json")
	if err != nil || !strings.Contains(out, `"firstCrossing": "2009-09-28T00:00:00Z"`) {
		t.Fatalf("backtest json: %v\n%s", err, out)
	}
	if _, err := run("backtest", "--format", "acled"); err == nil || !strings.Contains(err.Error(), "--file") {
		t.Fatalf("backtest without a file: %v", err)
	}
	// Without --file the store is read: its selection is checked first.
	for args, want := range map[string]string{"--country XX": "--country", "--type nonsense": "--type", "--since 2009-13-01": "--since",
		"--since 2010-01-01 --until 2009-01-01": "--until", "--file x.csv --country GN": "--country"} {
		if _, err := run(append([]string{"backtest"}, strings.Fields(args)...)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("backtest %s: %v, want an error naming %s", args, err, want)
		}
		if _, err := run(append([]string{"evaluate"}, strings.Fields(args)...)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("evaluate %s: %v, want an error naming %s", args, err, want)
		}
	}
}
