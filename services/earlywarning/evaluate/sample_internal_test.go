package evaluate

import (
	"encoding/json"
	"testing"

	"github.com/demarche/demarche/services/earlywarning"
)

// TestSampleScorecard: the scorecard the console shows is the shipped
// sample's, under the rules given, labelled with their version and the
// data's provenance, and it agrees with an evaluation of the same file.
func TestSampleScorecard(t *testing.T) {
	rules := earlywarning.DefaultRules()
	b, err := Sample(rules, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got SampleScorecard
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Data.Synthetic || got.Data.File != "services/earlywarning/evaluate/"+samplePath || got.Data.About == "" {
		t.Errorf("the data is not named honestly: %+v", got.Data)
	}
	res := got.Scorecard
	if res == nil || res.RulesVersion != rules.Version || len(res.Predictors) != 3 || len(res.Sweep) == 0 {
		t.Fatalf("scorecard: %+v", res)
	}
	for _, p := range res.Predictors {
		if p.Curve != nil {
			t.Errorf("%s: the curve's points are sent (the sweep sums them up)", p.Name)
		}
		if p.AUPR == nil || p.Brier == nil || p.Escalations == 0 {
			t.Errorf("%s: figures missing: %+v", p.Name, p)
		}
	}
	// A doubled threshold changes the rules' figures, not the baselines'.
	b2, err := Sample(rules, 2*rules.DefaultThreshold, nil)
	if err != nil {
		t.Fatal(err)
	}
	var doubled SampleScorecard
	if err := json.Unmarshal(b2, &doubled); err != nil {
		t.Fatal(err)
	}
	counts := func(c Contingency) [3]int { return [3]int{c.Hits, c.Misses, c.FalseAlarms} }
	if counts(doubled.Scorecard.Predictors[0].Forecasts) == counts(res.Predictors[0].Forecasts) {
		t.Errorf("a doubled threshold left the rules' forecasts as they were: %+v", res.Predictors[0].Forecasts)
	}
	if counts(doubled.Scorecard.Predictors[1].Forecasts) != counts(res.Predictors[1].Forecasts) {
		t.Errorf("a doubled threshold moved a baseline: %+v, %+v", doubled.Scorecard.Predictors[1].Forecasts, res.Predictors[1].Forecasts)
	}
}
