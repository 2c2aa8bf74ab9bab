package evaluate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// TestSampleScorecard: the scorecard the console shows is the shipped
// sample's, under the rules given, labelled with their version and the
// data's provenance, and it agrees with an evaluation of the same file.
func TestSampleScorecard(t *testing.T) {
	rules := earlywarning.DefaultRules()
	b, err := ConsoleScorecard(nil, rules, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got SampleScorecard
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Data.Synthetic || got.Data.File != "services/earlywarning/evaluate/"+samplePath || !strings.HasPrefix(got.Data.About, "The signal store is empty") {
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
	b2, err := ConsoleScorecard(nil, rules, 2*rules.DefaultThreshold, nil)
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

// TestScorecardOfTheStore: with signals in the store spanning enough time,
// the scorecard judges them, not the sample, and says so; the same events
// give the same figures as the file they came from. Too few falls back to
// the sample, saying why.
func TestScorecardOfTheStore(t *testing.T) {
	rules := earlywarning.DefaultRules()
	rd, err := earlywarning.NewReader(bytes.NewReader(sample), earlywarning.FormatACLED)
	if err != nil {
		t.Fatal(err)
	}
	rd.WithRules(rules)
	var sigs []*demarchev1.Signal
	for {
		sig, _, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, sig)
	}
	slices.SortStableFunc(sigs, func(a, b *demarchev1.Signal) int {
		return a.GetObservedAt().AsTime().Compare(b.GetObservedAt().AsTime())
	})
	b, err := ConsoleScorecard(sigs, rules, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got SampleScorecard
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Data.Synthetic || got.Data.File != StoreFile || got.Data.Format != "store" || !strings.Contains(got.Data.About, fmt.Sprintf("%d signals", len(sigs))) {
		t.Errorf("the store's scorecard is not labelled as the store's: %+v", got.Data)
	}
	file, err := Run(bytes.NewReader(sample), earlywarning.FormatACLED, Options{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	if got.Scorecard.Events != file.Events || got.Scorecard.Origins != file.Origins || len(got.Scorecard.Predictors) != len(file.Predictors) {
		t.Fatalf("store: %d events, %d origins; file: %d events, %d origins", got.Scorecard.Events, got.Scorecard.Origins, file.Events, file.Origins)
	}
	counts := func(c Contingency) [4]int { return [4]int{c.Hits, c.Misses, c.FalseAlarms, c.CorrectNegatives} }
	for i, p := range got.Scorecard.Predictors {
		if counts(p.Forecasts) != counts(file.Predictors[i].Forecasts) {
			t.Errorf("%s: store %+v, file %+v", p.Name, p.Forecasts, file.Predictors[i].Forecasts)
		}
	}
	// A week of signals cannot be judged: the sample is, and the page says why.
	var week []*demarchev1.Signal
	for _, s := range sigs {
		if s.GetObservedAt().AsTime().Before(sigs[0].GetObservedAt().AsTime().Add(7 * 24 * time.Hour)) {
			week = append(week, s)
		}
	}
	b, err = ConsoleScorecard(week, rules, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var short SampleScorecard
	if err := json.Unmarshal(b, &short); err != nil {
		t.Fatal(err)
	}
	if !short.Data.Synthetic || !strings.Contains(short.Data.About, fmt.Sprintf("The signal store's %d signals are too few", len(week))) {
		t.Errorf("a week of signals: %+v", short.Data)
	}
}
