package earlywarning_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/services/earlywarning"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/formats/*/sample.golden.json from the current code")

// goldenRow is one row of a format's sample as the reader makes it into a
// signal (or refuses it), with the default rules and with rules that weigh
// civilian targeting double.
type goldenRow struct {
	Line          int     `json:"line"`
	Source        string  `json:"source,omitempty"`
	SourceID      string  `json:"sourceId,omitempty"`
	CountryCode   string  `json:"countryCode,omitempty"`
	CrisisType    string  `json:"crisisType,omitempty"`
	Rule          string  `json:"rule,omitempty"`
	Weight        float64 `json:"weight,omitempty"`
	WeightCiv2    float64 `json:"weightCivilianTargeting2,omitempty"`
	Fatalities    int32   `json:"fatalities,omitempty"`
	ObservedAt    string  `json:"observedAt,omitempty"`
	Location      string  `json:"location,omitempty"`
	Summary       string  `json:"summary,omitempty"`
	RulesVersion  string  `json:"rulesVersion,omitempty"`
	Error         string  `json:"error,omitempty"`
	ErrorSourceID string  `json:"errorSourceId,omitempty"`
}

type golden struct {
	Rows []goldenRow `json:"rows"`
	// Backtest replays the sample with threshold 3 (default rules), Decayed
	// with a half-life of a day: the scores the signals make.
	Backtest *earlywarning.BacktestResult `json:"backtest"`
	Decayed  *earlywarning.BacktestResult `json:"backtestHalfLife24h"`
}

func readRows(t *testing.T, format earlywarning.Format, data []byte, rules *earlywarning.Rules) []goldenRow {
	t.Helper()
	rd, err := earlywarning.NewReader(bytes.NewReader(data), format)
	if err != nil {
		t.Fatal(err)
	}
	rd.WithRules(rules)
	var out []goldenRow
	for {
		sig, line, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		var re *earlywarning.RowError
		if errors.As(err, &re) {
			out = append(out, goldenRow{Line: re.Line, Error: re.Reason, ErrorSourceID: re.SourceID})
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, goldenRow{Line: line, Source: sig.GetSource(), SourceID: sig.GetSourceId(), CountryCode: sig.GetCountryCode(),
			CrisisType: sig.GetCrisisType().Slug(), Rule: sig.GetRule(), Weight: sig.GetWeight(), Fatalities: sig.GetFatalities(),
			ObservedAt: sig.GetObservedAt().AsTime().Format(time.RFC3339), Location: sig.GetLocation(), Summary: sig.GetSummary(),
			RulesVersion: sig.GetRulesVersion()})
	}
}

func rulesWith(t *testing.T, from, to string) *earlywarning.Rules {
	t.Helper()
	src := string(earlywarning.DefaultRules().Source)
	if !strings.Contains(src, from) {
		t.Fatalf("%q not in the default rules", from)
	}
	r, err := earlywarning.ParseRules("golden.yaml", []byte(strings.Replace(src, from, to, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFormatSamplesMatchTheirGolden reads each format's committed sample
// (testdata/formats/<format>/sample.csv) and compares every signal, refusal
// and backtest score with the output recorded in sample.golden.json: a
// change to a format's parsing or to classification shows here, row by row.
// `go test -run TestFormatSamplesMatchTheirGolden -update` records a change
// that is meant (review the diff).
func TestFormatSamplesMatchTheirGolden(t *testing.T) {
	civ2 := rulesWith(t, "  civilian_targeting: 1\n", "  civilian_targeting: 2\n")
	for _, name := range earlywarning.Formats() {
		t.Run(name, func(t *testing.T) {
			format := earlywarning.Format(name)
			dir := filepath.Join("testdata", "formats", name)
			data, err := os.ReadFile(filepath.Join(dir, "sample.csv"))
			if err != nil {
				t.Fatalf("every format has a sample: %v", err)
			}
			var g golden
			g.Rows = readRows(t, format, data, earlywarning.DefaultRules())
			for i, r := range readRows(t, format, data, civ2) {
				if r.Line != g.Rows[i].Line {
					t.Fatalf("row %d: line %d under other rules, %d under the default", i, r.Line, g.Rows[i].Line)
				}
				g.Rows[i].WeightCiv2 = r.Weight
			}
			if g.Backtest, err = earlywarning.Backtest(bytes.NewReader(data), format, earlywarning.BacktestOptions{DefaultThreshold: 3, Series: true}); err != nil {
				t.Fatal(err)
			}
			decay := rulesWith(t, "half_life: 0s", "half_life: 24h")
			if g.Decayed, err = earlywarning.Backtest(bytes.NewReader(data), format, earlywarning.BacktestOptions{Rules: decay, DefaultThreshold: 3, Series: true}); err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(g, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join(dir, "sample.golden.json")
			if *updateGolden {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (record it with -update)", err)
			}
			if !bytes.Equal(got, want) {
				gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
				for i := range min(len(gl), len(wl)) {
					if gl[i] != wl[i] {
						t.Fatalf("%s differs from the recorded output at line %d:\n got  %s\n want %s", path, i+1, gl[i], wl[i])
					}
				}
				t.Fatalf("%s: %d lines, recorded %d", path, len(gl), len(wl))
			}
		})
	}
}
