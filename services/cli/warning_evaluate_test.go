package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/demarche/demarche/services/earlywarning/evaluate"
)

var updateScorecard = flag.Bool("update", false, "rewrite docs/scorecard.md from `warning evaluate` on the synthetic sample")

// The multi-year sample and the scorecard made from it.
const (
	scorecardSample = "../earlywarning/evaluate/testdata/sahel-2019-2023-synthetic.csv"
	scorecardDoc    = "../../docs/scorecard.md"
	scorecardNote   = "The default rules judged as forecasts on five years (2019–2023) of ACLED-format events in seven " +
		"West African and Sahel countries. **The data is synthetic**: made up by a generator " +
		"(`services/earlywarning/evaluate/sample_test.go`) with a background of protests and small clashes, escalations " +
		"of sustained violence (some after a wave of protests or a coup, some sudden) and waves of protests that come to " +
		"nothing; only the countries and the months of their coups are real. The figures show how to read a scorecard " +
		"and how the rules compare with the baselines on data of that shape, not how they would do on the real record. " +
		"Run the same command on a real export before relying on the rules. Made with:\n\n" +
		"```sh\ndemarche warning evaluate --file services/earlywarning/evaluate/testdata/sahel-2019-2023-synthetic.csv " +
		"--format acled --output markdown --note '…' > docs/scorecard.md\n```\n\n" +
		"(or `go test ./services/cli -run TestScorecardDocIsCurrent -update`, which runs it with this note)."
)

func runEvaluate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &App{Log: zap.NewNop(), Out: &out}
	cmd := newWarningCmd(app)
	cmd.SetArgs(append([]string{"evaluate"}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestScorecardDocIsCurrent: docs/scorecard.md is `warning evaluate
// --output markdown` on the synthetic sample with the default rules. After a
// change of the rules or the scoring, rewrite it with -update and read the diff.
func TestScorecardDocIsCurrent(t *testing.T) {
	out, err := runEvaluate(t, "--file", scorecardSample, "--format", "acled", "--quiet", "--output", "markdown", "--note", scorecardNote)
	if err != nil {
		t.Fatal(err)
	}
	// The file name as the documented command, run from the repository's root, prints it.
	out = strings.ReplaceAll(out, "`"+scorecardSample+"`", "`services/earlywarning/evaluate/testdata/sahel-2019-2023-synthetic.csv`")
	if *updateScorecard {
		if err := os.WriteFile(scorecardDoc, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := os.ReadFile(scorecardDoc)
	if err != nil {
		t.Fatal(err)
	}
	if string(doc) != out {
		t.Fatalf("%s is not the current scorecard of the default rules: rewrite it with `go test ./services/cli -run TestScorecardDocIsCurrent -update` and read the diff", scorecardDoc)
	}
}

func TestWarningEvaluateOutputs(t *testing.T) {
	out, err := runEvaluate(t, "--file", scorecardSample, "--format", "acled", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"outcome: at least 25 deaths", "last period's violence", "no change (base rate)", "warned in time (hits)",
		"lead time, days", "AUPR (random: ", "Brier, calibrated", "threshold sweep of the rules"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "h0m0s") {
		t.Errorf("a duration printed as Go's, not in days:\n%s", out)
	}

	out, err = runEvaluate(t, "--file", scorecardSample, "--format", "acled", "--quiet", "-o", "json", "--deaths", "10", "--horizon", "90d", "--step", "14", "--forecasts")
	if err != nil {
		t.Fatal(err)
	}
	var res evaluate.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Outcome.Deaths != 10 || res.Outcome.HorizonDays != 90 || res.StepDays != 14 || len(res.Predictors) != 3 ||
		len(res.Forecasts) != res.ForecastCount || res.Predictors[0].AUPR == nil || res.Predictors[0].Brier == nil {
		t.Fatalf("json: outcome %+v, step %g, %d predictors, %d of %d forecasts", res.Outcome, res.StepDays, len(res.Predictors), len(res.Forecasts), res.ForecastCount)
	}

	for _, c := range []struct{ args, want string }{
		{"--deaths 0", "--deaths: 0 is out of range"},
		{"--horizon 36h", `invalid argument "36h" for "--horizon" flag: "36h" is not whole days from 1 to 365`},
		{"--horizon soon", `is not a number of days (30d, 90d)`},
		{"--step 400d", `is not whole days from 1 to 365`},
		{"--sweep 0", "--sweep: 0 is not a positive multiple"},
		{"--threshold 1e9", "--threshold: 1e+09 is out of range"},
		{"--forecasts", "--forecasts: only with --output json"},
		{"-o yaml", `--output: "yaml" is not an output format (allowed: table, json, markdown)`},
	} {
		_, err := runEvaluate(t, append([]string{"--file", scorecardSample, "--format", "acled", "--quiet"}, strings.Fields(c.args)...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.args, err, c.want)
		}
	}
}
