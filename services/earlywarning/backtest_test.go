package earlywarning_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/services/earlywarning"
)

// TestBacktestReportsCrossingAndLeadTimeExactly: a generated file whose
// crossing and peak are known. Threshold 10, events of weight 1 (no deaths)
// one a day from 1 March 2024: the 10th (10 March) crosses. The peak is 20
// March (100 deaths): lead time exactly 10 days. By then the window has let
// the early events go (6 left, below 10), so the peak crosses again, and
// nothing follows it: a false alarm. A second situation crosses once and is
// followed by nothing: one false alarm.
func TestBacktestReportsCrossingAndLeadTimeExactly(t *testing.T) {
	var b strings.Builder
	b.WriteString(acledHeader)
	day := func(i int) string {
		return time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i).Format("2006-01-02")
	}
	for i := range 12 {
		b.WriteString(acledRow(fmt.Sprintf("GIN%d", i), day(i), "Battles", "Armed clash", "Military Forces of Guinea", "Mutineers", "12", "324", "Guinea", "Conakry", "Mutiny in the barracks.", "0"))
	}
	b.WriteString(acledRow("GIN-peak", day(19), "Battles", "Armed clash", "Military Forces of Guinea", "Mutineers", "12", "324", "Guinea", "Conakry", "Mutiny crushed.", "100"))
	for i := range 10 {
		b.WriteString(acledRow(fmt.Sprintf("KEN%d", i), day(i), "Riots", "Violent demonstration", "Rioters", "", "50", "404", "Kenya", "Kisumu", "Election results contested.", "0"))
	}
	var progress int
	res, err := earlywarning.Backtest(strings.NewReader(b.String()), earlywarning.FormatACLED, earlywarning.BacktestOptions{
		DefaultThreshold: 10, Progress: func(n int) { progress = n },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 23 || progress != 23 || len(res.Situations) != 2 {
		t.Fatalf("events %d, progress %d, situations %d", res.Events, progress, len(res.Situations))
	}
	gn := res.Situations[0]
	if gn.Situation != "GN-unconstitutional-change" || len(gn.Crossings) != 2 || !gn.Crossings[1].At.Equal(time.Date(2024, 3, 20, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("first situation %+v", gn)
	}
	if want := time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC); !gn.FirstCrossing.Equal(want) {
		t.Fatalf("crossing %s, want %s", gn.FirstCrossing, want)
	}
	if !gn.PeakDay.Equal(time.Date(2024, 3, 20, 0, 0, 0, 0, time.UTC)) || gn.PeakFatalities != 100 {
		t.Fatalf("peak %s (%d)", gn.PeakDay, gn.PeakFatalities)
	}
	if gn.LeadTime == nil || *gn.LeadTime != 10*24*time.Hour {
		t.Fatalf("lead time %v, want 240h", gn.LeadTime)
	}
	if gn.LeadTimeDays == nil || *gn.LeadTimeDays != 10 || gn.LeadTimeText != "10.0 days" {
		t.Fatalf("lead time in JSON %v / %q, want 10 / \"10.0 days\"", gn.LeadTimeDays, gn.LeadTimeText)
	}
	if gn.FalseAlarms != 1 || gn.Crossings[0].FalseAlarm || gn.Crossings[0].FatalitiesAfter != 100 || !gn.Crossings[1].FalseAlarm {
		t.Fatalf("GN crossing followed by %d deaths, false alarms %d", gn.Crossings[0].FatalitiesAfter, gn.FalseAlarms)
	}
	ke := res.Situations[1]
	if ke.Situation != "KE-election-violence" || len(ke.Crossings) != 1 || ke.FalseAlarms != 1 || ke.LeadTime != nil {
		t.Fatalf("KE: %+v", ke)
	}
}

// TestBacktestDecaysLikeTheService: with half_life 24h, an event two days
// before the next counts a quarter (1 + 0.25), the running sum included.
func TestBacktestDecaysLikeTheService(t *testing.T) {
	r, err := earlywarning.ParseRules("decay.yaml", []byte(strings.Replace(string(earlywarning.DefaultRules().Source), "half_life: 0s", "half_life: 24h", 1)))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(acledHeader)
	b.WriteString(acledRow("GIN1", "2024-03-01", "Battles", "Armed clash", "A", "Mutineers", "12", "324", "Guinea", "Conakry", "Mutiny.", "0"))
	b.WriteString(acledRow("GIN2", "2024-03-03", "Battles", "Armed clash", "A", "Mutineers", "12", "324", "Guinea", "Conakry", "Mutiny.", "0"))
	res, err := earlywarning.Backtest(strings.NewReader(b.String()), earlywarning.FormatACLED, earlywarning.BacktestOptions{Rules: r, Series: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Situations[0].Series; len(s) != 2 || s[0].Score != 1 || s[1].Score != 1.25 {
		t.Fatalf("decayed series %+v, want 1 then 1.25", s)
	}
}
