package bench

import (
	"bytes"
	"strings"
	"testing"
)

// The terminal table and the Markdown one print the same cells: a met
// target, a missed one (marked in each table's way) and a result without
// a baseline.
func TestBothTablesPrintTheSameResults(t *testing.T) {
	met, missed := true, false
	r := &Report{Results: []Result{
		{Scenario: "decide", Variant: "c=1", Demarche: Measure{What: "decisions", Count: 10, PerSecond: 20},
			Baseline: &Measure{What: "updates", Count: 10, PerSecond: 40}, Ratio: 0.5, RatioOf: "throughput", Target: "≥ 0.5×", Met: &met},
		{Scenario: "ingest", Demarche: Measure{What: "signals", Count: 5, PerSecond: 1}, Target: "≥ 0.5×", Met: &missed},
		{Scenario: "open", Demarche: Measure{What: "crises", Count: 1}},
	}}
	var term, md bytes.Buffer
	r.WriteTable(&term)
	r.WriteMarkdown(&md)
	termLines := strings.Split(strings.TrimSpace(term.String()), "\n")
	mdLines := strings.Split(strings.TrimSpace(md.String()), "\n")
	if len(termLines) != 4 || !strings.HasPrefix(mdLines[1], "|---|") {
		t.Fatalf("terminal table:\n%s\nmarkdown:\n%s", term.String(), md.String())
	}
	for i, want := range [][]string{
		{"decide", "c=1", "0.50× (throughput)", "met: ≥ 0.5×"},
		{"ingest", "—", "MISSED: ≥ 0.5×"},
		{"open", "—"},
	} {
		for _, cell := range want {
			if !strings.Contains(termLines[i+1], cell) {
				t.Errorf("terminal row %d %q lacks %q", i, termLines[i+1], cell)
			}
			mdCell := strings.Replace(cell, "MISSED", "**missed**", 1)
			if !strings.Contains(mdLines[i+2], "| "+mdCell+" |") {
				t.Errorf("markdown row %d %q lacks cell %q", i, mdLines[i+2], mdCell)
			}
		}
	}
}
