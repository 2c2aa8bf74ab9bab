package evaluate

import (
	"bytes"
	_ "embed" // the shipped sample
	"encoding/json"
	"errors"
	"fmt"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// sample is the shipped multi-year sample docs/scorecard.md evaluates
// (synthetic: sample_test.go generates it).
//
//go:embed testdata/sahel-2019-2023-synthetic.csv
var sample []byte

// SampleData says what the data evaluated is, for whoever shows its scorecard.
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

// StoreFile names the signal store as the data of a scorecard.
const StoreFile = "the signals early warning accepted (its signal store)"

var sampleData = SampleData{
	File: "services/earlywarning/evaluate/testdata/sahel-2019-2023-synthetic.csv", Format: "acled", Synthetic: true,
	About: "five years (2019–2023) of ACLED-format events in seven West African and Sahel countries, made up by a generator " +
		"(a background of protests and small clashes, escalations of sustained violence, waves of protests that come to nothing; " +
		"only the countries and the months of their coups are real). It shows how the rules compare with the baselines on data of that shape, " +
		"not how they would do on the real record; `demarche warning evaluate --file` judges them on a real export.",
}

// ConsoleScorecard judges rules (with the thresholds in force), with the default
// outcome, step and sweep, on the signals early warning accepted (stored,
// oldest event first) when they span enough time for one forecast, else on
// the shipped synthetic sample, saying why; it is the early-warning
// service's earlywarning.ScorecardFunc.
func ConsoleScorecard(stored []*demarchev1.Signal, rules *earlywarning.Rules, defaultThreshold float64, thresholds map[demarchev1.Region]float64) ([]byte, error) {
	o := Options{Rules: rules, DefaultThreshold: defaultThreshold, Thresholds: thresholds}
	why := "The signal store is empty: no signal has been accepted yet, so the rules are judged on a synthetic sample shipped with Démarche: "
	if len(stored) > 0 {
		res, err := RunRows(earlywarning.StoredRows(stored), "store", o)
		switch {
		case err == nil:
			return marshalScorecard(SampleData{File: StoreFile, Format: "store",
				About: fmt.Sprintf("%d signals (their latest revisions, live and historical), observed from %s to %s, as they were classified when accepted; import more history (demarche warning import) to judge the rules on more.",
					len(stored), res.From.Format(time.DateOnly), res.To.Format(time.DateOnly))}, res)
		case errors.Is(err, ErrTooShort):
			why = fmt.Sprintf("The signal store's %d signals are too few to judge the rules on (%v), so they are judged on a synthetic sample shipped with Démarche: ", len(stored), err)
		default:
			return nil, fmt.Errorf("evaluate the signal store: %w", err)
		}
	}
	res, err := Run(bytes.NewReader(sample), earlywarning.Format(sampleData.Format), o)
	if err != nil {
		return nil, fmt.Errorf("evaluate the shipped sample: %w", err)
	}
	data := sampleData
	data.About = why + data.About
	return marshalScorecard(data, res)
}

func marshalScorecard(data SampleData, res *Result) ([]byte, error) {
	for _, p := range res.Predictors {
		p.Curve = nil
	}
	return json.Marshal(SampleScorecard{Data: data, Scorecard: res})
}
