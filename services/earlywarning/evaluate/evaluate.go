// Package evaluate judges early-warning rules as forecasts: it replays a
// conflict-event file, makes a forecast for every situation (country ×
// crisis type) at regular origins from the events known then, compares each
// with a fixed outcome taken from the same file, and scores the rules beside
// two naive baselines (`demarche warning evaluate`).
//
// The constant Definitions says what each figure means.
package evaluate

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

const day = 24 * time.Hour

// Definitions says what an evaluation's figures mean, for people: the
// command's help and the scorecard print it.
const Definitions = `origin       a forecast time: every --step (7 days) from the first event's day plus
             the longer of the rules' window and the horizon, while the horizon after
             it ends within the file. A forecast reads only the events observed before
             its origin (rolling origin: nothing from the future).
outcome      at least --deaths (25) deaths in the situation (country × crisis type)
             in the --horizon (30 days) from the origin.
predictors   rules: the score over the window ending at the origin, as a fraction
             of the situation's threshold (alarm at 1);
             last period's violence: deaths in the horizon before the origin (alarm
             at --deaths);
             no change (base rate): the situation's own rate of the outcome at the
             origins whose outcome was known then (alarm at 50%).
escalation   a run of origins of a situation whose outcome holds (origins at most a
             horizon apart make one run: a lull does not split it); its day is the
             event that brings the deaths from the run's first origin to --deaths.
             Warned in time (hit): an alarm at an origin of the run on or before
             that day; lead time = that day minus the first such alarm. Missed
             otherwise (late: the run's first alarm came after that day).
false alarm  a run of alarms of a situation (at most a horizon apart) none of whose
             origins is followed by the outcome. Precision = alarm runs that were
             not false / alarm runs; recall = hits / escalations.
forecasts    each situation at each origin: hit, miss, false alarm or correct
             negative; precision = hits / alarms, recall = hits / outcomes.
sweep        every distinct value of a predictor taken as the alarm threshold: the
             precision–recall curve over the forecasts. AUPR is its average
             precision, Σ precision × recall gained, threshold by threshold from the
             highest; alarming at random scores the base rate.
Brier        mean of (p − outcome)² over the forecasts, p a calibrated probability:
             a logistic regression of the outcome on ln(1 + value), refitted at each
             origin on the forecasts whose outcome was known then (origin + horizon
             at or before it). Forecasts made before any outcome was known are left
             out, for every predictor alike. 0 is perfect; lower is better.`

// Defaults of the outcome and of the origins.
const (
	DefaultDeaths  = 25
	DefaultHorizon = 30 * day
	DefaultStep    = 7 * day
)

// DefaultSweep are the multiples of the threshold of the rules' sweep table.
var DefaultSweep = []float64{0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4}

// Bounds of the options, checked by Run.
const (
	MaxDeaths  = 1_000_000
	MaxHorizon = 365 * day
	MaxStep    = 365 * day
)

// ErrBadOptions is returned for an option out of its range (the message
// names the option, why, and what is allowed); ErrTooShort when the file
// spans too little time to make one forecast and see its outcome.
var (
	ErrBadOptions = errors.New("bad evaluation options")
	ErrTooShort   = errors.New("file too short to evaluate")
)

// Options tune an evaluation; the zero value uses the defaults.
type Options struct {
	Rules *earlywarning.Rules
	// DefaultThreshold and Thresholds override the rules' thresholds (as
	// for a backtest).
	DefaultThreshold float64
	Thresholds       map[demarchev1.Region]float64
	// Deaths and Horizon define the outcome (25 deaths, 30 days); Horizon
	// is whole days.
	Deaths  int
	Horizon time.Duration
	// Step is the time between origins (7 days), whole days.
	Step time.Duration
	// Sweep lists the multiples of the threshold the rules' sweep table
	// shows (DefaultSweep); AUPR uses every distinct score regardless.
	Sweep []float64
	// Forecasts keeps every forecast in the result (large).
	Forecasts bool
	// Progress, when set, is called every few hundred rows with the rows read.
	Progress func(read int)
}

// Predictor names, in the order of Result.Predictors.
const (
	Rules      = "rules"
	LastPeriod = "last-period"
	NoChange   = "no-change"
)

// Result is a whole evaluation.
type Result struct {
	Format       string                   `json:"format"`
	RulesVersion string                   `json:"rulesVersion"`
	Read         int                      `json:"read"`
	Events       int                      `json:"events"`
	Rejected     []*earlywarning.RowError `json:"rejected,omitempty"`
	From         time.Time                `json:"from"`
	To           time.Time                `json:"to"`
	Outcome      Outcome                  `json:"outcome"`
	StepDays     float64                  `json:"stepDays"`
	WindowDays   float64                  `json:"windowDays"`
	FirstOrigin  time.Time                `json:"firstOrigin"`
	LastOrigin   time.Time                `json:"lastOrigin"`
	Origins      int                      `json:"origins"`
	Situations   []string                 `json:"situations"`
	// Thresholds are the situations' thresholds (by situation).
	Thresholds map[string]float64 `json:"thresholds"`
	// Forecasts counts situation × origin; Outcomes those whose outcome held;
	// Calibrated those with a calibrated probability (the Brier score's).
	ForecastCount int `json:"forecastCount"`
	Outcomes      int `json:"outcomes"`
	Calibrated    int `json:"calibrated"`
	// BaseRate is Outcomes / ForecastCount: the precision (and AUPR) of
	// alarming at random.
	BaseRate   float64      `json:"baseRate"`
	Predictors []*Scorecard `json:"predictors"`
	// Sweep is the rules' precision and recall at multiples of the threshold.
	Sweep     []CurvePoint `json:"sweep"`
	Forecasts []Forecast   `json:"forecasts,omitempty"`
}

// Outcome is what is forecast.
type Outcome struct {
	Deaths      int     `json:"deaths"`
	HorizonDays float64 `json:"horizonDays"`
	Text        string  `json:"text"`
}

// Scorecard is one predictor's figures.
type Scorecard struct {
	Name      string `json:"name"`
	Title     string `json:"title"`
	AlarmWhen string `json:"alarmWhen"`
	// Escalations, and per escalation: warned in time (Hits), not (Misses,
	// of which Late had an alarm only after the escalation's day).
	Escalations int `json:"escalations"`
	Hits        int `json:"hits"`
	Misses      int `json:"misses"`
	Late        int `json:"late"`
	// AlarmRuns and those followed by no outcome (FalseAlarms).
	AlarmRuns   int      `json:"alarmRuns"`
	FalseAlarms int      `json:"falseAlarms"`
	Precision   *float64 `json:"precision"` // true alarm runs / alarm runs
	Recall      *float64 `json:"recall"`    // hits / escalations
	LeadTime    LeadTime `json:"leadTime"`
	// Forecasts is the situation × origin contingency table.
	Forecasts Contingency  `json:"forecasts"`
	AUPR      *float64     `json:"aupr"`
	Brier     *float64     `json:"brier"`
	Curve     []CurvePoint `json:"curve"`
}

// LeadTime is the distribution of the hits' lead times, in days.
type LeadTime struct {
	Days   []float64 `json:"days"`
	Min    *float64  `json:"min"`
	Median *float64  `json:"median"`
	Mean   *float64  `json:"mean"`
	Max    *float64  `json:"max"`
}

// Contingency counts forecasts.
type Contingency struct {
	Hits             int      `json:"hits"`
	Misses           int      `json:"misses"`
	FalseAlarms      int      `json:"falseAlarms"`
	CorrectNegatives int      `json:"correctNegatives"`
	Precision        *float64 `json:"precision"`
	Recall           *float64 `json:"recall"`
}

// CurvePoint is one threshold of a sweep.
type CurvePoint struct {
	Threshold float64  `json:"threshold"`
	Alarms    int      `json:"alarms"`
	Hits      int      `json:"hits"`
	Precision *float64 `json:"precision"`
	Recall    *float64 `json:"recall"`
}

// Forecast is one situation at one origin.
type Forecast struct {
	Situation string    `json:"situation"`
	Origin    time.Time `json:"origin"`
	// Deaths in the horizon from the origin, and whether the outcome held.
	Deaths  int              `json:"deaths"`
	Outcome bool             `json:"outcome"`
	By      []PredictorValue `json:"by"` // in the order of Result.Predictors
}

// PredictorValue is a predictor's forecast.
type PredictorValue struct {
	Value       float64  `json:"value"`
	Alarm       bool     `json:"alarm"`
	Probability *float64 `json:"probability,omitempty"`
}

// event is what an evaluation keeps of a signal.
type event struct {
	at     time.Time
	deaths int
	weight float64
}

type situation struct {
	key, country string
	threshold    float64
	events       []event
	deaths       []int // deaths[i]: deaths of events[:i]
}

// deathsIn is the situation's deaths observed in [from, to).
func (s *situation) deathsIn(from, to time.Time) int {
	return s.deaths[s.index(to)] - s.deaths[s.index(from)]
}

// index is the number of events observed before t.
func (s *situation) index(t time.Time) int {
	return sort.Search(len(s.events), func(i int) bool { return !s.events[i].at.Before(t) })
}

// Run reads a conflict-event file through the signal format registry and the
// rules (the same reader, classification and weights as import and
// backtest) and evaluates it.
func Run(r io.Reader, format earlywarning.Format, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	rd, err := earlywarning.NewReader(r, format)
	if err != nil {
		return nil, err
	}
	rd.WithRules(o.Rules)
	return RunRows(rd, string(format), o)
}

// RunRows evaluates signals: a file's (Run), or the signal store's
// (earlywarning.StoredRows, format "store": classified as they were
// accepted; the rules give the window, decay and thresholds).
func RunRows(rd earlywarning.Rows, format string, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	res := &Result{Format: format, RulesVersion: o.Rules.Version, StepDays: o.Step.Hours() / 24,
		WindowDays: o.Rules.Window.Hours() / 24,
		Outcome: Outcome{Deaths: o.Deaths, HorizonDays: o.Horizon.Hours() / 24,
			Text: fmt.Sprintf("at least %d deaths in the situation (country × crisis type) in the %s from the forecast", o.Deaths, days(o.Horizon))}}
	sits, err := read(rd, o, res)
	if err != nil {
		return nil, err
	}
	if len(sits) == 0 {
		return nil, fmt.Errorf("%w: no event could be read", ErrTooShort)
	}
	first := res.From.Truncate(day).Add(max(o.Rules.Window, o.Horizon))
	end := res.To.Truncate(day).Add(day)
	var origins []time.Time
	for t := first; !t.Add(o.Horizon).After(end); t = t.Add(o.Step) {
		origins = append(origins, t)
	}
	if len(origins) == 0 {
		return nil, fmt.Errorf("%w: its events span %s (%s to %s); one forecast needs the longer of the window and the horizon (%s) before it and the horizon (%s) after it",
			ErrTooShort, days(end.Sub(res.From.Truncate(day))), res.From.Format(time.DateOnly), res.To.Format(time.DateOnly),
			days(max(o.Rules.Window, o.Horizon)), days(o.Horizon))
	}
	res.FirstOrigin, res.LastOrigin, res.Origins = origins[0], origins[len(origins)-1], len(origins)
	res.Thresholds = map[string]float64{}
	for _, s := range sits {
		res.Situations = append(res.Situations, s.key)
		res.Thresholds[s.key] = s.threshold
	}
	ev := newEvaluation(o, sits, origins)
	ev.forecast()
	res.ForecastCount = len(sits) * len(origins)
	for k := range origins {
		for i := range sits {
			if ev.outcome[k][i] {
				res.Outcomes++
			}
		}
	}
	res.BaseRate = float64(res.Outcomes) / float64(res.ForecastCount)
	res.Calibrated = ev.calibrated
	for p := range ev.predictors {
		res.Predictors = append(res.Predictors, ev.scorecard(p))
	}
	res.Sweep = sweep(ev.values(0), ev.outcomes(), o.Sweep)
	if o.Forecasts {
		res.Forecasts = ev.forecasts()
	}
	return res, nil
}

func (o *Options) defaults() error {
	if o.Rules == nil {
		o.Rules = earlywarning.DefaultRules()
	}
	if o.Deaths == 0 {
		o.Deaths = DefaultDeaths
	}
	if o.Horizon == 0 {
		o.Horizon = DefaultHorizon
	}
	if o.Step == 0 {
		o.Step = DefaultStep
	}
	if len(o.Sweep) == 0 {
		o.Sweep = DefaultSweep
	}
	switch {
	case o.Deaths < 1 || o.Deaths > MaxDeaths:
		return fmt.Errorf("%w: deaths: %d is out of range (allowed: 1 to %d)", ErrBadOptions, o.Deaths, MaxDeaths)
	case o.Horizon < day || o.Horizon > MaxHorizon || o.Horizon%day != 0:
		return fmt.Errorf("%w: horizon: %s is not whole days from 1 to 365", ErrBadOptions, o.Horizon)
	case o.Step < day || o.Step > MaxStep || o.Step%day != 0:
		return fmt.Errorf("%w: step: %s is not whole days from 1 to 365", ErrBadOptions, o.Step)
	}
	for _, m := range o.Sweep {
		if !(m > 0) || math.IsInf(m, 0) {
			return fmt.Errorf("%w: sweep: %g is not a positive multiple of the threshold", ErrBadOptions, m)
		}
	}
	return nil
}

// read reads the file's signals per situation, in event time, dropping
// repeated source ids as a backtest does.
func read(rd earlywarning.Rows, o Options, res *Result) ([]*situation, error) {
	bySit := map[string]*situation{}
	seen := map[string]bool{}
	for {
		sig, _, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var rowErr *earlywarning.RowError
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
			continue
		}
		seen[sig.GetSourceId()] = true
		key := demarchev1.SituationKey(sig.GetCountryCode(), sig.GetCrisisType())
		s := bySit[key]
		if s == nil {
			s = &situation{key: key, country: sig.GetCountryCode(), threshold: threshold(o, sig.GetCountryCode())}
			bySit[key] = s
		}
		at := sig.GetObservedAt().AsTime()
		s.events = append(s.events, event{at: at, deaths: int(sig.GetFatalities()), weight: sig.GetWeight()})
		res.Events++
		if res.From.IsZero() || at.Before(res.From) {
			res.From = at
		}
		if at.After(res.To) {
			res.To = at
		}
	}
	if o.Progress != nil {
		o.Progress(res.Read)
	}
	out := make([]*situation, 0, len(bySit))
	for _, s := range bySit {
		sort.SliceStable(s.events, func(i, j int) bool { return s.events[i].at.Before(s.events[j].at) })
		s.deaths = make([]int, len(s.events)+1)
		for i, e := range s.events {
			s.deaths[i+1] = s.deaths[i] + e.deaths
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, nil
}

func threshold(o Options, country string) float64 {
	region, _ := demarchev1.RegionOf(country)
	if t, ok := o.Thresholds[region]; ok && t > 0 {
		return t
	}
	if o.DefaultThreshold > 0 {
		return o.DefaultThreshold
	}
	return o.Rules.Threshold(country)
}

// score is the rules' score of the window ending at t: the decayed weights
// of the events observed in [t − window, t), as the service and the backtest
// sum them (TestEvaluateScoresAsTheBacktest). The window ends at the origin,
// not at the situation's newest event as the live service's does: a forecast
// made months after a burst must not still carry it.
func score(rules *earlywarning.Rules, s *situation, t time.Time) float64 {
	sum := 0.0
	for i := s.index(t.Add(-rules.Window)); i < len(s.events) && s.events[i].at.Before(t); i++ {
		sum += rules.Decayed(s.events[i].weight, t.Sub(s.events[i].at))
	}
	return sum
}

func days(d time.Duration) string {
	n := d.Hours() / 24
	if n == math.Trunc(n) {
		if n == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%.0f days", n)
	}
	return fmt.Sprintf("%.1f days", n)
}
