package evaluate

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// predictor is one way of forecasting: a value per situation at an origin,
// from what was known then, and the value at which it alarms.
type predictor struct {
	name, title, alarmWhen string
	alarmAt                float64
}

// evaluation holds every forecast: [origin][situation].
type evaluation struct {
	o          Options
	sits       []*situation
	origins    []time.Time
	predictors []predictor
	outcome    [][]bool
	deaths     [][]int
	value      [][][]float64  // [predictor][origin][situation]
	prob       [][][]*float64 // [predictor][origin][situation]
	calibrated int
}

func newEvaluation(o Options, sits []*situation, origins []time.Time) *evaluation {
	thr := "the situation's threshold"
	if o.DefaultThreshold > 0 && len(o.Thresholds) == 0 {
		thr = fmt.Sprintf("%g", o.DefaultThreshold)
	} else if len(o.Thresholds) == 0 && len(o.Rules.Thresholds) == 0 {
		thr = fmt.Sprintf("%g", o.Rules.DefaultThreshold)
	}
	return &evaluation{o: o, sits: sits, origins: origins, predictors: []predictor{
		{Rules, "rules " + o.Rules.Version, fmt.Sprintf("score over the window (%s) ≥ %s", days(o.Rules.Window), thr), 1},
		{LastPeriod, "last period's violence", fmt.Sprintf("≥ %d deaths in the %s before", o.Deaths, days(o.Horizon)), float64(o.Deaths)},
		{NoChange, "no change (base rate)", "the situation's past rate of the outcome ≥ 50%", 0.5},
	}}
}

// forecast makes every forecast, origin by origin, each from the events
// observed before its origin and, for the calibration and the base rate, the
// outcomes known by then.
func (e *evaluation) forecast() {
	n, m := len(e.origins), len(e.sits)
	e.outcome, e.deaths = make([][]bool, n), make([][]int, n)
	e.value, e.prob = make([][][]float64, len(e.predictors)), make([][][]*float64, len(e.predictors))
	for p := range e.predictors {
		e.value[p], e.prob[p] = make([][]float64, n), make([][]*float64, n)
	}
	// known[i]: origins 0..known-1 have outcomes known at the current origin;
	// held[i]: how many of those held for situation i.
	held := make([]int, m)
	known := 0
	fits := make([]logistic, len(e.predictors))
	data := make([]groups, len(e.predictors))
	for k, t := range e.origins {
		for known < k && !e.origins[known].Add(e.o.Horizon).After(t) {
			for i := range e.sits {
				if e.outcome[known][i] {
					held[i]++
				}
				for p := range e.predictors {
					data[p].add(feature(e.value[p][known][i]), e.outcome[known][i])
				}
			}
			known++
		}
		e.outcome[k], e.deaths[k] = make([]bool, m), make([]int, m)
		for p := range e.predictors {
			e.value[p][k] = make([]float64, m)
			e.prob[p][k] = make([]*float64, m)
		}
		for i, s := range e.sits {
			e.deaths[k][i] = s.deathsIn(t, t.Add(e.o.Horizon))
			e.outcome[k][i] = e.deaths[k][i] >= e.o.Deaths
			e.value[0][k][i] = score(e.o.Rules, s, t) / s.threshold
			e.value[1][k][i] = float64(s.deathsIn(t.Add(-e.o.Horizon), t))
			if known > 0 {
				e.value[2][k][i] = float64(held[i]) / float64(known)
			}
		}
		if known == 0 {
			continue
		}
		e.calibrated += m
		for p := range e.predictors {
			fits[p].fit(&data[p])
			for i := range e.sits {
				pr := fits[p].predict(feature(e.value[p][k][i]))
				e.prob[p][k][i] = &pr
			}
		}
	}
}

// feature is what the calibration regresses on.
func feature(v float64) float64 { return math.Log1p(max(v, 0)) }

func (e *evaluation) alarm(p, k, i int) bool { return e.value[p][k][i] >= e.predictors[p].alarmAt }

// values and outcomes flatten every forecast (origin-major).
func (e *evaluation) values(p int) []float64 {
	var out []float64
	for k := range e.origins {
		out = append(out, e.value[p][k]...)
	}
	return out
}

func (e *evaluation) outcomes() []bool {
	var out []bool
	for k := range e.origins {
		out = append(out, e.outcome[k]...)
	}
	return out
}

func (e *evaluation) scorecard(p int) *Scorecard {
	pr := e.predictors[p]
	sc := &Scorecard{Name: pr.name, Title: pr.title, AlarmWhen: pr.alarmWhen, LeadTime: LeadTime{Days: []float64{}}}
	var brier float64
	var calibrated int
	for k := range e.origins {
		for i := range e.sits {
			alarm, y := e.alarm(p, k, i), e.outcome[k][i]
			switch {
			case alarm && y:
				sc.Forecasts.Hits++
			case alarm:
				sc.Forecasts.FalseAlarms++
			case y:
				sc.Forecasts.Misses++
			default:
				sc.Forecasts.CorrectNegatives++
			}
			if q := e.prob[p][k][i]; q != nil {
				d := *q
				if y {
					d--
				}
				brier += d * d
				calibrated++
			}
		}
	}
	c := &sc.Forecasts
	c.Precision = ratio(c.Hits, c.Hits+c.FalseAlarms)
	c.Recall = ratio(c.Hits, c.Hits+c.Misses)
	if calibrated > 0 {
		b := brier / float64(calibrated)
		sc.Brier = &b
	}
	for i := range e.sits {
		e.episodes(p, i, sc)
	}
	sc.Precision = ratio(sc.AlarmRuns-sc.FalseAlarms, sc.AlarmRuns)
	sc.Recall = ratio(sc.Hits, sc.Escalations)
	sc.LeadTime = leadTime(sc.LeadTime.Days)
	curve, aupr := prCurve(e.values(p), e.outcomes())
	sc.AUPR = aupr
	sc.Curve = thin(curve, 100)
	return sc
}

// episodes counts a situation's escalations and alarm runs. A run takes in
// the origins of its kind (outcome held; alarm) at most a horizon apart, so
// that a week's lull does not split one escalation (or one alarm) in two.
func (e *evaluation) episodes(p, i int, sc *Scorecard) {
	for _, r := range e.runs(func(k int) bool { return e.outcome[k][i] }) {
		sc.Escalations++
		at := e.escalationDay(e.sits[i], e.origins[r[0]])
		first := -1
		for j := r[0]; j <= r[1]; j++ {
			if e.alarm(p, j, i) {
				first = j
				break
			}
		}
		switch {
		case first >= 0 && !e.origins[first].After(at):
			sc.Hits++
			sc.LeadTime.Days = append(sc.LeadTime.Days, at.Sub(e.origins[first]).Hours()/24)
		case first >= 0:
			sc.Misses++
			sc.Late++
		default:
			sc.Misses++
		}
	}
	for _, r := range e.runs(func(k int) bool { return e.alarm(p, k, i) }) {
		sc.AlarmRuns++
		followed := false
		for k := r[0]; k <= r[1]; k++ {
			followed = followed || e.outcome[k][i]
		}
		if !followed {
			sc.FalseAlarms++
		}
	}
}

// runs are the first and last origins of each run of origins where in
// holds, those at most a horizon apart taken together.
func (e *evaluation) runs(in func(k int) bool) [][2]int {
	var out [][2]int
	for k := range e.origins {
		if !in(k) {
			continue
		}
		if n := len(out); n > 0 && e.origins[k].Sub(e.origins[out[n-1][1]]) <= e.o.Horizon {
			out[n-1][1] = k
			continue
		}
		out = append(out, [2]int{k, k})
	}
	return out
}

// escalationDay is the time of the event that brings the deaths from t to
// the outcome's count (the outcome holds at t, so it comes within the horizon).
func (e *evaluation) escalationDay(s *situation, t time.Time) time.Time {
	sum := 0
	for j := s.index(t); j < len(s.events); j++ {
		sum += s.events[j].deaths
		if sum >= e.o.Deaths {
			return s.events[j].at
		}
	}
	return t.Add(e.o.Horizon) // unreachable while the outcome held
}

func (e *evaluation) forecasts() []Forecast {
	out := make([]Forecast, 0, len(e.origins)*len(e.sits))
	for k, t := range e.origins {
		for i, s := range e.sits {
			f := Forecast{Situation: s.key, Origin: t, Deaths: e.deaths[k][i], Outcome: e.outcome[k][i]}
			for p := range e.predictors {
				f.By = append(f.By, PredictorValue{Value: e.value[p][k][i], Alarm: e.alarm(p, k, i), Probability: e.prob[p][k][i]})
			}
			out = append(out, f)
		}
	}
	return out
}

func ratio(a, b int) *float64 {
	if b == 0 {
		return nil
	}
	r := float64(a) / float64(b)
	return &r
}

func leadTime(d []float64) LeadTime {
	lt := LeadTime{Days: d}
	if len(d) == 0 {
		return lt
	}
	s := append([]float64(nil), d...)
	sort.Float64s(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	mn, mx, mean := s[0], s[len(s)-1], sum/float64(len(s))
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	lt.Min, lt.Max, lt.Mean, lt.Median = &mn, &mx, &mean, &med
	return lt
}
