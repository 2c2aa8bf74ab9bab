package evaluate

import (
	"bytes"
	_ "embed" // the shipped sample
	"encoding/json"
	"fmt"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// sample is the shipped multi-year sample docs/scorecard.md evaluates
// (synthetic: sample_test.go generates it).
//
//go:embed testdata/sahel-2019-2023-synthetic.csv
var sample []byte

// SampleData says what the sample is, for whoever shows its scorecard.
type SampleData struct {
	File      string `json:"file"`
	Format    string `json:"format"`
	Synthetic bool   `json:"synthetic"`
	About     string `json:"about"`
}

// SampleScorecard is the answer of the console's scorecard page: the data
// evaluated and the evaluation (without the precision–recall curves' every
// point: the sweep and AUPR sum them up).
type SampleScorecard struct {
	Data      SampleData `json:"data"`
	Scorecard *Result    `json:"scorecard"`
}

var sampleData = SampleData{
	File: "services/earlywarning/evaluate/testdata/sahel-2019-2023-synthetic.csv", Format: "acled", Synthetic: true,
	About: "five years (2019–2023) of ACLED-format events in seven West African and Sahel countries, made up by a generator " +
		"(a background of protests and small clashes, escalations of sustained violence, waves of protests that come to nothing; " +
		"only the countries and the months of their coups are real). The platform keeps no history of signals to evaluate on yet, " +
		"so the rules are judged on this shipped sample: it shows how they compare with the baselines on data of that shape, " +
		"not how they would do on the real record; `demarche warning evaluate --file` judges them on a real export.",
}

// Sample judges rules (with the thresholds in force) on the shipped sample,
// with the default outcome, step and sweep; it is the early-warning
// service's earlywarning.ScorecardFunc.
func Sample(rules *earlywarning.Rules, defaultThreshold float64, thresholds map[demarchev1.Region]float64) ([]byte, error) {
	res, err := Run(bytes.NewReader(sample), earlywarning.Format(sampleData.Format), Options{Rules: rules, DefaultThreshold: defaultThreshold, Thresholds: thresholds})
	if err != nil {
		return nil, fmt.Errorf("evaluate the shipped sample: %w", err)
	}
	for _, p := range res.Predictors {
		p.Curve = nil
	}
	return json.Marshal(SampleScorecard{Data: sampleData, Scorecard: res})
}
