package earlywarning

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// A backtest replays a historical file through the rules in event time, with
// the same scoring as the service (window ending at each situation's newest
// signal, decay, per-region thresholds), without touching the platform, and
// says per situation when the threshold would have been crossed and how early
// that was.
//
// Definitions (printed by `demarche warning backtest`):
//   - crossing: an event takes the situation's score from below its
//     threshold to at or above it (the situation must fall below again before
//     the next crossing counts);
//   - peak: the day with the most fatalities in the situation (the earliest
//     of equal days);
//   - lead time: the peak day minus the first crossing at or before it
//     (negative when the first crossing came after the peak; none when the
//     situation never crossed);
//   - false alarm: a crossing followed, in the FollowUp (default 30 days)
//     after it, by fewer than FalseAlarmFatalities (default 10) fatalities in
//     the situation.

// BacktestOptions tune a backtest; the zero value uses the rules' values.
type BacktestOptions struct {
	Rules *Rules
	// DefaultThreshold and Thresholds override the rules' thresholds.
	DefaultThreshold float64
	Thresholds       map[demarchev1.Region]float64
	// FollowUp and FalseAlarmFatalities define a false alarm (30 days, 10).
	FollowUp             time.Duration
	FalseAlarmFatalities int
	// Progress, when set, is called every few hundred rows with the rows read.
	Progress func(read int)
	// Series keeps each situation's score after every event (charts).
	Series bool
}

// BacktestCrossing is one crossing of a backtest.
type BacktestCrossing struct {
	At         time.Time `json:"at"`
	Score      float64   `json:"score"`
	SourceID   string    `json:"sourceId"`
	FalseAlarm bool      `json:"falseAlarm"`
	// FatalitiesAfter in the follow-up period after the crossing.
	FatalitiesAfter int `json:"fatalitiesAfter"`
}

// BacktestSituation is the result for one situation.
type BacktestSituation struct {
	Situation   string             `json:"situation"`
	CountryCode string             `json:"countryCode"`
	CrisisType  string             `json:"crisisType"`
	Threshold   float64            `json:"threshold"`
	Events      int                `json:"events"`
	Fatalities  int                `json:"fatalities"`
	MaxScore    float64            `json:"maxScore"`
	Crossings   []BacktestCrossing `json:"crossings"`
	FalseAlarms int                `json:"falseAlarms"`
	// PeakDay is the day with most fatalities; PeakFatalities its count.
	PeakDay        time.Time `json:"peakDay"`
	PeakFatalities int       `json:"peakFatalities"`
	// FirstCrossing is the first crossing (nil: never crossed); LeadTime the
	// peak day minus the first crossing at or before it (nil: none).
	FirstCrossing *time.Time `json:"firstCrossing,omitempty"`
	// In JSON, leadTimeDays for programs and leadTime in words ("10.0
	// days"): a Go duration ("1608h0m0s") reads to nobody.
	LeadTime     *time.Duration  `json:"-"`
	LeadTimeDays *float64        `json:"leadTimeDays,omitempty"`
	LeadTimeText string          `json:"leadTime,omitempty"`
	Series       []BacktestPoint `json:"series,omitempty"`
}

// BacktestPoint is a situation's score after one event.
type BacktestPoint struct {
	At    time.Time `json:"at"`
	Score float64   `json:"score"`
}

// BacktestResult is a whole backtest.
type BacktestResult struct {
	RulesVersion         string               `json:"rulesVersion"`
	Read                 int                  `json:"read"`
	Events               int                  `json:"events"`
	Rejected             []*RowError          `json:"rejected,omitempty"`
	From                 time.Time            `json:"from"`
	To                   time.Time            `json:"to"`
	FollowUp             string               `json:"followUp"`
	FalseAlarmFatalities int                  `json:"falseAlarmFatalities"`
	Situations           []*BacktestSituation `json:"situations"`
}

// Backtest reads a conflict-event file and replays it in event time.
func Backtest(r io.Reader, format Format, o BacktestOptions) (*BacktestResult, error) {
	if o.Rules == nil {
		o.Rules = DefaultRules()
	}
	rd, err := NewReader(r, format)
	if err != nil {
		return nil, err
	}
	rd.WithRules(o.Rules)
	return BacktestRows(rd, o)
}

// BacktestRows replays signals in event time: a file's (Backtest), or the
// signal store's (StoredRows: classified as they were accepted; the rules
// give the window, decay and thresholds).
func BacktestRows(rd Rows, o BacktestOptions) (*BacktestResult, error) {
	if o.Rules == nil {
		o.Rules = DefaultRules()
	}
	if o.FollowUp <= 0 {
		o.FollowUp = 30 * 24 * time.Hour
	}
	if o.FalseAlarmFatalities <= 0 {
		o.FalseAlarmFatalities = 10
	}
	res := &BacktestResult{RulesVersion: o.Rules.Version, FollowUp: o.FollowUp.String(), FalseAlarmFatalities: o.FalseAlarmFatalities}
	type row struct {
		sig  *demarchev1.Signal
		line int
	}
	var rows []row
	seen := map[string]bool{}
	for {
		sig, line, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var rowErr *RowError
		if errors.As(err, &rowErr) {
			res.Read++
			res.Rejected = append(res.Rejected, rowErr)
			continue
		}
		if err != nil {
			return nil, err
		}
		res.Read++
		if o.Progress != nil && res.Read%500 == 0 {
			o.Progress(res.Read)
		}
		if seen[sig.GetSourceId()] {
			continue // a duplicate row, as the service would drop it
		}
		seen[sig.GetSourceId()] = true
		rows = append(rows, row{sig, line})
	}
	if o.Progress != nil {
		o.Progress(res.Read)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		return rows[i].sig.GetObservedAt().AsTime().Before(rows[j].sig.GetObservedAt().AsTime())
	})
	res.Events = len(rows)
	if len(rows) > 0 {
		res.From, res.To = rows[0].sig.GetObservedAt().AsTime(), rows[len(rows)-1].sig.GetObservedAt().AsTime()
	}
	threshold := func(country string) float64 {
		region, _ := demarchev1.RegionOf(country)
		if t, ok := o.Thresholds[region]; ok && t > 0 {
			return t
		}
		if o.DefaultThreshold > 0 {
			return o.DefaultThreshold
		}
		return o.Rules.Threshold(country)
	}
	type state struct {
		sit    *BacktestSituation
		window []*demarchev1.Signal // window[head:] are in the window
		head   int
		sum    float64   // score of window[head:] at last
		last   time.Time // the newest event so far
		above  bool
		daily  map[time.Time]int
		times  []time.Time // every event's time, in order
		deaths []int       // deaths[i]: fatalities of events 0..i-1 (prefix sums)
	}
	states := map[string]*state{}
	var order []string
	for _, rw := range rows {
		sig := rw.sig
		key := demarchev1.SituationKey(sig.GetCountryCode(), sig.GetCrisisType())
		st := states[key]
		if st == nil {
			st = &state{sit: &BacktestSituation{Situation: key, CountryCode: sig.GetCountryCode(), CrisisType: sig.GetCrisisType().Slug(),
				Threshold: threshold(sig.GetCountryCode()), Crossings: []BacktestCrossing{}}, daily: map[time.Time]int{}, deaths: []int{0}}
			states[key] = st
			order = append(order, key)
		}
		at := sig.GetObservedAt().AsTime()
		st.sit.Events++
		st.sit.Fatalities += int(sig.GetFatalities())
		st.daily[at.Truncate(24*time.Hour)] += int(sig.GetFatalities())
		st.times = append(st.times, at)
		st.deaths = append(st.deaths, st.deaths[len(st.deaths)-1]+int(sig.GetFatalities()))
		// The window ends at this (the newest) event: a running sum, decayed
		// to the new end, minus what leaves the window (O(1) per event).
		if !st.last.IsZero() {
			st.sum = o.Rules.Decayed(st.sum, at.Sub(st.last))
		}
		st.last = at
		start := at.Add(-o.Rules.Window)
		for st.head < len(st.window) && !st.window[st.head].GetObservedAt().AsTime().After(start) {
			w := st.window[st.head]
			st.sum -= o.Rules.Decayed(w.GetWeight(), at.Sub(w.GetObservedAt().AsTime()))
			st.head++
		}
		if st.head == len(st.window) || st.sum < 0 {
			st.sum = 0 // no rounding drift once the window is empty
		}
		if st.head > 4096 && st.head > len(st.window)/2 {
			st.window = append(st.window[:0], st.window[st.head:]...)
			st.head = 0
		}
		before := st.sum
		if before < st.sit.Threshold {
			st.above = false // fell below as the window moved on
		}
		st.window = append(st.window, sig)
		st.sum += sig.GetWeight()
		score := st.sum
		st.sit.MaxScore = max(st.sit.MaxScore, score)
		if o.Series {
			st.sit.Series = append(st.sit.Series, BacktestPoint{At: at, Score: score})
		}
		switch {
		case score < st.sit.Threshold:
			st.above = false
		case !st.above:
			st.above = true
			st.sit.Crossings = append(st.sit.Crossings, BacktestCrossing{At: at, Score: score, SourceID: sig.GetSourceId()})
		}
	}
	for _, key := range order {
		st := states[key]
		sit := st.sit
		for day, f := range st.daily {
			if f > sit.PeakFatalities || (f == sit.PeakFatalities && (sit.PeakDay.IsZero() || day.Before(sit.PeakDay))) {
				sit.PeakDay, sit.PeakFatalities = day, f
			}
		}
		for i := range sit.Crossings {
			c := &sit.Crossings[i]
			// Events after the crossing up to FollowUp after it.
			from := sort.Search(len(st.times), func(i int) bool { return st.times[i].After(c.At) })
			to := sort.Search(len(st.times), func(i int) bool { return st.times[i].After(c.At.Add(o.FollowUp)) })
			c.FatalitiesAfter = st.deaths[to] - st.deaths[from]
			c.FalseAlarm = c.FatalitiesAfter < o.FalseAlarmFatalities
			if c.FalseAlarm {
				sit.FalseAlarms++
			}
		}
		if len(sit.Crossings) > 0 {
			first := sit.Crossings[0].At
			sit.FirstCrossing = &first
			if sit.PeakFatalities > 0 {
				lead := sit.PeakDay.Sub(first)
				for _, c := range sit.Crossings {
					if !c.At.After(sit.PeakDay.Add(24*time.Hour - time.Nanosecond)) {
						lead = sit.PeakDay.Sub(c.At)
						break
					}
				}
				sit.LeadTime = &lead
				days := lead.Hours() / 24
				sit.LeadTimeDays, sit.LeadTimeText = &days, Days(lead)
			}
		}
		res.Situations = append(res.Situations, sit)
	}
	// Situations that crossed first, then by name.
	sort.SliceStable(res.Situations, func(i, j int) bool {
		a, b := res.Situations[i], res.Situations[j]
		if (len(a.Crossings) > 0) != (len(b.Crossings) > 0) {
			return len(a.Crossings) > 0
		}
		return a.Situation < b.Situation
	})
	return res, nil
}

// Days renders a duration in days with one decimal ("12.0 days").
func Days(d time.Duration) string {
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}
