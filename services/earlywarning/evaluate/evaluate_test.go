package evaluate

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/services/earlywarning"
)

// acledRows writes an ACLED-format file. Every row of a country reads alike
// (a battle between the same two armed groups, with the same note) and only
// its date and deaths differ, so however the rules classify and weigh it,
// a country's rows make one situation and weigh alike for alike deaths.
type acledRows struct {
	rows [][]string
	n    int
}

var acledHeader = []string{"event_id_cnty", "event_date", "event_type", "sub_event_type", "actor1", "actor2", "country", "iso", "admin1", "notes", "fatalities"}

// countries: name and ISO 3166 numeric code.
var countries = map[string][2]string{
	"ML": {"Mali", "466"}, "BF": {"Burkina Faso", "854"}, "NE": {"Niger", "562"},
	"GN": {"Guinea", "324"}, "SN": {"Senegal", "686"}, "NG": {"Nigeria", "566"}, "TD": {"Chad", "148"},
}

func (a *acledRows) add(cc string, at time.Time, deaths int) {
	a.n++
	c := countries[cc]
	a.rows = append(a.rows, []string{fmt.Sprintf("%s%05d", cc, a.n), at.Format(time.DateOnly), "Battles", "Armed clash",
		"Armed group A (" + c[0] + ")", "Armed group B (" + c[0] + ")", c[0], c[1], "North",
		"Clash between two armed groups near the market.", fmt.Sprint(deaths)})
}

func (a *acledRows) csv(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(acledHeader)
	_ = w.WriteAll(a.rows)
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func date(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

// planted is four years of five countries: a quiet background everywhere
// (one event without deaths a month: a score far below any threshold), and
//   - ML from 2020-03-01 and BF from 2021-06-01: 400 events without deaths
//     in 10 days (a score far above the threshold, however the rules weigh
//     an event), then from day 14 an event of 5 deaths a day for 60 days: two
//     escalations warned in time (hits);
//   - NE on 2020-09-01: five events of 5 deaths, then one a day for 30 days,
//     with nothing before: an escalation missed, whatever the weights (its
//     25th death comes on its first day, which no forecast made before it
//     can see; the rules alarm after it: late);
//   - GN from 2019-10-01 and SN from 2022-04-01: 400 events without deaths
//     in 10 days and nothing after: two false alarms.
//
// Every deadly event has 5 deaths and every other none, so that rules
// classifying by fatalities would still see one situation per country.
func planted() *acledRows {
	a := &acledRows{}
	for _, cc := range []string{"ML", "BF", "NE", "GN", "SN"} {
		for t := date("2019-01-05"); t.Before(date("2022-12-31")); t = t.Add(30 * day) {
			a.add(cc, t, 0)
		}
	}
	burst := func(cc string, from time.Time) {
		for d := range 10 {
			for range 40 {
				a.add(cc, from.Add(time.Duration(d)*day), 0)
			}
		}
	}
	deadly := func(cc string, from time.Time, n int) {
		for d := range n {
			a.add(cc, from.Add(time.Duration(d)*day), 5)
		}
	}
	burst("ML", date("2020-03-01"))
	deadly("ML", date("2020-03-15"), 60)
	burst("BF", date("2021-06-01"))
	deadly("BF", date("2021-06-15"), 60)
	for range 5 {
		a.add("NE", date("2020-09-01"), 5)
	}
	deadly("NE", date("2020-09-02"), 30)
	burst("GN", date("2019-10-01"))
	burst("SN", date("2022-04-01"))
	// File order is not event time.
	sort.SliceStable(a.rows, func(i, j int) bool { return a.rows[i][6] > a.rows[j][6] })
	return a
}

func run(t *testing.T, file []byte, o Options) *Result {
	t.Helper()
	res, err := Run(bytes.NewReader(file), "acled", o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) > 0 {
		t.Fatalf("rejected rows: %v", res.Rejected[0])
	}
	return res
}

func card(t *testing.T, res *Result, name string) *Scorecard {
	t.Helper()
	for _, p := range res.Predictors {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no predictor %s", name)
	return nil
}

func TestEvaluateReportsThePlantedHitsMissesAndFalseAlarms(t *testing.T) {
	res := run(t, planted().csv(t), Options{})
	if len(res.Situations) != 5 {
		t.Fatalf("situations = %v, want one per country", res.Situations)
	}
	r := card(t, res, Rules)
	got := [5]int{r.Escalations, r.Hits, r.Misses, r.Late, r.FalseAlarms}
	if want := [5]int{3, 2, 1, 1, 2}; got != want {
		t.Fatalf("rules: escalations, hits, misses, late, false alarms = %v, want %v", got, want)
	}
	if r.AlarmRuns != 5 {
		t.Errorf("rules: %d alarm runs, want 5 (2 warned, 1 late, 2 false)", r.AlarmRuns)
	}
	// A hit is warned after its burst began and before its 25th death
	// (day 18 of the burst): at most 18 days ahead, at least 0.
	for _, d := range r.LeadTime.Days {
		if d < 0 || d > 18 {
			t.Errorf("lead time %g days outside 0 to 18", d)
		}
	}
	if len(r.LeadTime.Days) != 2 {
		t.Errorf("lead times %v, want one per hit", r.LeadTime.Days)
	}
	nc := card(t, res, NoChange)
	if nc.Hits >= r.Hits || *nc.AUPR >= *r.AUPR {
		t.Errorf("no change: %d hits, AUPR %.3f; rules: %d hits, AUPR %.3f: the rules should beat it", nc.Hits, *nc.AUPR, r.Hits, *r.AUPR)
	}
	if *nc.Brier <= *r.Brier {
		t.Errorf("no change: Brier %.4f ≤ rules' %.4f: the rules should beat it", *nc.Brier, *r.Brier)
	}
	// Last period's violence sees the deaths only once they came: every
	// escalation late.
	lp := card(t, res, LastPeriod)
	if lp.Escalations != 3 || lp.Hits != 0 || lp.FalseAlarms != 0 {
		t.Errorf("last period: escalations %d hits %d false alarms %d, want 3 0 0", lp.Escalations, lp.Hits, lp.FalseAlarms)
	}
}

// TestEvaluateHandCalculation checks AUPR and Brier on a file small enough
// to work out by hand.
//
// One situation; window, step and horizon 14 days; outcome: at least 1 death;
// threshold tiny, so the rules alarm on any event. Each event has 1 death.
// Period k is the 14 days before origin k; c_k = its events:
//
//	c = 1 0 1 1 0 1 0 0 1 1   (periods 1..10; origins 1..9)
//
// Origin k's forecast reads period k (x_k = c_k: the rules' score and last
// period's deaths are both 0 or one event's) and its outcome is period k+1
// (y_k = c_{k+1}):
//
//	k  1 2 3 4 5 6 7 8 9
//	x  1 0 1 1 0 1 0 0 1
//	y  0 1 1 0 1 0 0 1 1
//
// Forecasts: alarms at k = 1 3 4 6 9, hits 3 9: hits 2, false alarms 3,
// misses 3 (k = 2 5 8), correct negatives 1 (k = 7).
//
// AUPR: threshold "one event": precision 2/5, recall 2/5; threshold 0 (every
// forecast alarms): precision 5/9, recall 1.
// AP = 2/5 × 2/5 + (1 − 2/5) × 5/9 = 0.16 + 1/3 = 0.493333…
//
// Brier: at origin k, the outcomes of origins j < k are known (j + 14 days
// ≤ k). With two feature values, maximum likelihood gives each group its
// frequency of the outcome among the known; no outcome known at k = 1.
//
//	k  known (x,y)                  p(x_k)            (p − y_k)²
//	2  (1,0)                        one outcome: 0    1
//	3  + (0,1)                      x=1: 0/1 = 0      1
//	4  + (1,1)                      x=1: 1/2          1/4
//	5  + (1,0)                      x=0: 1/1 = 1      0
//	6  + (0,1)                      x=1: 1/3          1/9
//	7  + (1,0)                      x=0: 2/2 = 1      1
//	8  + (0,0)                      x=0: 2/3          1/9
//	9  + (0,1)                      x=1: 1/4          9/16
//
// Brier = (1 + 1 + 1/4 + 0 + 1/9 + 1 + 1/9 + 9/16) / 8 = 4.034722… / 8 = 0.504340…
// (k = 3 is separable: the probability tends to 0; the fit's tiny ridge
// leaves it within 1e-5.)
func TestEvaluateHandCalculation(t *testing.T) {
	rules := *earlywarning.DefaultRules()
	rules.Window, rules.HalfLife = 14*day, 0
	c := []int{1, 0, 1, 1, 0, 1, 0, 0, 1, 1}
	d0 := date("2024-01-01")
	a := &acledRows{}
	for k, n := range c {
		if n == 0 {
			continue
		}
		at := d0.Add(time.Duration(14*k) * day) // the period's first day
		if k == len(c)-1 {
			at = at.Add(13 * day) // the last period's last day: the file ends with it
		}
		a.add("ML", at, 1)
	}
	res := run(t, a.csv(t), Options{Rules: &rules, Deaths: 1, Horizon: 14 * day, Step: 14 * day, DefaultThreshold: 1e-6, Forecasts: true})
	if res.Origins != 9 || res.Calibrated != 8 {
		t.Fatalf("origins %d, calibrated %d; want 9, 8", res.Origins, res.Calibrated)
	}
	for _, name := range []string{Rules, LastPeriod} {
		sc := card(t, res, name)
		f := sc.Forecasts
		if got, want := [4]int{f.Hits, f.FalseAlarms, f.Misses, f.CorrectNegatives}, [4]int{2, 3, 3, 1}; got != want {
			t.Errorf("%s: hits, false alarms, misses, correct negatives = %v, want %v", name, got, want)
		}
		if want := 0.16 + 1.0/3; math.Abs(*sc.AUPR-want) > 1e-9 {
			t.Errorf("%s: AUPR = %.6f, want %.6f", name, *sc.AUPR, want)
		}
		if want := (1 + 1 + 0.25 + 0 + 1.0/9 + 1 + 1.0/9 + 9.0/16) / 8; math.Abs(*sc.Brier-want) > 1e-4 {
			t.Errorf("%s: Brier = %.6f, want %.6f", name, *sc.Brier, want)
		}
	}
	if res.BaseRate != 5.0/9 {
		t.Errorf("base rate %g, want 5/9", res.BaseRate)
	}
}

// TestEvaluateHasNoLookAhead: a row added to the file changes no forecast
// made before its date (score, alarm, base rate, calibrated probability),
// and changes some after it. The row falls on each day of a week in turn, so
// every alignment with the weekly origins is tried.
func TestEvaluateHasNoLookAhead(t *testing.T) {
	before := run(t, planted().csv(t), Options{Forecasts: true})
	for d := range 7 {
		at := date("2020-01-15").Add(time.Duration(d) * day)
		file := planted()
		file.add("ML", at, 100)
		after := run(t, file.csv(t), Options{Forecasts: true})
		if len(before.Forecasts) != len(after.Forecasts) {
			t.Fatalf("%d forecasts before, %d after", len(before.Forecasts), len(after.Forecasts))
		}
		same, changed, outcomes := 0, 0, 0
		for i, b := range before.Forecasts {
			a := after.Forecasts[i]
			if b.Situation != a.Situation || !b.Origin.Equal(a.Origin) {
				t.Fatalf("forecast %d: %s %s before, %s %s after", i, b.Situation, b.Origin, a.Situation, a.Origin)
			}
			if b.Outcome != a.Outcome {
				outcomes++ // the row is in the outcome of the origins just before it
			}
			if !b.Origin.After(at) {
				if !reflect.DeepEqual(b.By, a.By) {
					t.Fatalf("%s at %s (before the new row of %s): forecast %s became %s", b.Situation, b.Origin.Format(time.DateOnly),
						at.Format(time.DateOnly), values(b.By), values(a.By))
				}
				same++
			} else if !reflect.DeepEqual(b.By, a.By) {
				changed++
			}
		}
		if same == 0 || changed == 0 || outcomes == 0 {
			t.Fatalf("row of %s: %d forecasts before it unchanged, %d after it changed, %d outcomes changed: want each",
				at.Format(time.DateOnly), same, changed, outcomes)
		}
	}
}

func values(by []PredictorValue) string {
	var out []string
	for _, v := range by {
		p := "none"
		if v.Probability != nil {
			p = fmt.Sprint(*v.Probability)
		}
		out = append(out, fmt.Sprintf("{value %g alarm %v probability %s}", v.Value, v.Alarm, p))
	}
	return strings.Join(out, " ")
}

func TestEvaluateRefusesBadOptionsAndShortFiles(t *testing.T) {
	file := planted().csv(t)
	for _, o := range []Options{{Deaths: -1}, {Horizon: 36 * time.Hour}, {Step: 400 * day}, {Sweep: []float64{0}}} {
		if _, err := Run(bytes.NewReader(file), "acled", o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	short := &acledRows{}
	short.add("ML", date("2024-01-01"), 3)
	short.add("ML", date("2024-01-20"), 3)
	if _, err := Run(bytes.NewReader(short.csv(t)), "acled", Options{}); err == nil {
		t.Error("a 20-day file: no error")
	}
}

// TestEvaluateScoresAsTheBacktest: the rules' score at an origin is the
// backtest's score after the situation's last event the day before (both
// windows then hold the same days; without decay): the
// evaluation weighs and sums signals as the backtest does.
func TestEvaluateScoresAsTheBacktest(t *testing.T) {
	file := planted().csv(t)
	rules := *earlywarning.DefaultRules()
	rules.HalfLife = 0
	res := run(t, file, Options{Rules: &rules, Forecasts: true})
	bt, err := earlywarning.Backtest(bytes.NewReader(file), "acled", earlywarning.BacktestOptions{Rules: &rules, Series: true})
	if err != nil {
		t.Fatal(err)
	}
	series := map[string][]earlywarning.BacktestPoint{}
	for _, s := range bt.Situations {
		series[s.Situation] = s.Series
	}
	compared := 0
	for _, f := range res.Forecasts {
		pts := series[f.Situation]
		i := sort.Search(len(pts), func(i int) bool { return !pts[i].At.Before(f.Origin) }) - 1
		if i < 0 || !pts[i].At.Equal(f.Origin.Add(-day)) {
			continue
		}
		want := pts[i].Score / res.Thresholds[f.Situation]
		if math.Abs(f.By[0].Value-want) > 1e-9 {
			t.Fatalf("%s at %s: score ÷ threshold %g, backtest's %g", f.Situation, f.Origin.Format(time.DateOnly), f.By[0].Value, want)
		}
		compared++
	}
	if compared < 10 {
		t.Fatalf("only %d forecasts compared", compared)
	}
}
