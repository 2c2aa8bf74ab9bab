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

// A deployment's report has no start-up result, and its counts are checked
// as the embedded one's: a missing operation or scenario is named.
func TestCheckCountsOfADeploymentsReport(t *testing.T) {
	sz := Sizes{Decisions: 2, Concurrency: []int{1}, Opens: 2, Ingest: 3, Rates: []int{4}, FanoutSubscribers: 1, FanoutEvents: 2, Drills: 1, Capacity: []int{4}}
	base := &Measure{Count: 2, PerSecond: 1}
	r := &Report{Sizes: sz, Only: []string{"decide", "open"}, Deployment: &Deployment{NATSURL: "nats://n1:4222"}, Results: []Result{
		{Scenario: "decide", Demarche: Measure{Count: 2}, Baseline: base, RatioOf: "throughput"},
		{Scenario: "open", Demarche: Measure{Count: 1}, Baseline: base, RatioOf: "throughput"},
	}}
	bad := r.CheckCounts()
	if len(bad) != 1 || !strings.Contains(bad[0], "open") || !strings.Contains(bad[0], "want 2 operations") {
		t.Fatalf("want one complaint, about open's count: %q", bad)
	}
	r.Results[1].Demarche.Count = 2
	if bad := r.CheckCounts(); len(bad) != 0 {
		t.Fatalf("a deployment's report without a stack result: %q", bad)
	}
	r.Results = append(r.Results, Result{Scenario: "stack", Demarche: Measure{Count: 1}})
	if bad := r.CheckCounts(); len(bad) != 1 || !strings.Contains(bad[0], "start-up") {
		t.Fatalf("a deployment's report with the embedded start-up: %q", bad)
	}
}
