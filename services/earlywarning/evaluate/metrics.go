package evaluate

import (
	"math"
	"sort"
)

// prCurve sweeps every distinct value as the alarm threshold (alarm at value
// ≥ threshold), highest first, and returns the precision–recall curve and
// its average precision: Σ (recall_k − recall_{k−1}) × precision_k, the
// step-wise area under the curve (nil when no outcome held).
func prCurve(values []float64, outcomes []bool) ([]CurvePoint, *float64) {
	idx := make([]int, len(values))
	positives := 0
	for i := range idx {
		idx[i] = i
		if outcomes[i] {
			positives++
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return values[idx[a]] > values[idx[b]] })
	var curve []CurvePoint
	var ap, lastRecall float64
	alarms, hits := 0, 0
	for j := 0; j < len(idx); {
		v := values[idx[j]]
		for ; j < len(idx) && values[idx[j]] == v; j++ {
			alarms++
			if outcomes[idx[j]] {
				hits++
			}
		}
		pt := CurvePoint{Threshold: v, Alarms: alarms, Hits: hits, Precision: ratio(hits, alarms), Recall: ratio(hits, positives)}
		if pt.Recall != nil {
			ap += (*pt.Recall - lastRecall) * *pt.Precision
			lastRecall = *pt.Recall
		}
		curve = append(curve, pt)
	}
	if positives == 0 {
		return curve, nil
	}
	return curve, &ap
}

// sweep is the precision and recall of alarming at each multiple of the
// threshold (values are score ÷ threshold).
func sweep(values []float64, outcomes []bool, multiples []float64) []CurvePoint {
	positives := 0
	for _, y := range outcomes {
		if y {
			positives++
		}
	}
	out := make([]CurvePoint, 0, len(multiples))
	for _, m := range multiples {
		pt := CurvePoint{Threshold: m}
		for i, v := range values {
			if v >= m {
				pt.Alarms++
				if outcomes[i] {
					pt.Hits++
				}
			}
		}
		pt.Precision, pt.Recall = ratio(pt.Hits, pt.Alarms), ratio(pt.Hits, positives)
		out = append(out, pt)
	}
	return out
}

// thin keeps at most n points of a curve, evenly spaced, and its last.
func thin(curve []CurvePoint, n int) []CurvePoint {
	if len(curve) <= n {
		return curve
	}
	out := make([]CurvePoint, 0, n)
	for i := range n - 1 {
		out = append(out, curve[i*(len(curve)-1)/(n-1)])
	}
	return append(out, curve[len(curve)-1])
}

// groups are the known forecasts of a predictor by feature value: how many
// had it (n) and how many of those the outcome followed (k), in the order
// the values first came (so that sums, and the fit, are reproducible).
type groups struct {
	x, n, k []float64
	index   map[float64]int
}

func (g *groups) add(x float64, outcome bool) {
	if g.index == nil {
		g.index = map[float64]int{}
	}
	i, ok := g.index[x]
	if !ok {
		i = len(g.x)
		g.index[x] = i
		g.x, g.n, g.k = append(g.x, x), append(g.n, 0), append(g.k, 0)
	}
	g.n[i]++
	if outcome {
		g.k[i]++
	}
}

// logistic is P(outcome) = σ(a + b·z), z the feature standardised over the
// data it was fitted on. Fitted by maximum likelihood (Newton's method with
// step halving) on the grouped data, which gives the same fit as the
// forecasts one by one; a tiny ridge on b keeps it finite when the feature
// separates the outcomes, where the probabilities tend to the groups'
// frequencies, 0 and 1.
type logistic struct {
	a, b, mean, sd float64
	constant       *float64 // intercept only: the outcomes' rate
}

const ridge = 1e-6

func (l *logistic) fit(g *groups) {
	var n, pos, mean float64
	for i, x := range g.x {
		n += g.n[i]
		pos += g.k[i]
		mean += g.n[i] * x
	}
	mean /= n
	var ss float64
	for i, x := range g.x {
		ss += g.n[i] * (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / n)
	if pos == 0 || pos == n || sd < 1e-12 {
		// Maximum likelihood is the rate itself, whatever the feature says
		// (a single outcome: it, with probability 0 or 1).
		r := pos / n
		l.constant = &r
		return
	}
	// Warm start from the previous origin's fit, in the new scale.
	if l.constant != nil || l.sd == 0 {
		l.a, l.b = math.Log(pos/(n-pos)), 0
	} else {
		l.a, l.b = l.a+l.b*(mean-l.mean)/l.sd, l.b*sd/l.sd
	}
	l.constant, l.mean, l.sd = nil, mean, sd
	z := make([]float64, len(g.x))
	for i, x := range g.x {
		z[i] = (x - mean) / sd
	}
	obj := func(a, b float64) float64 {
		s := -ridge / 2 * b * b
		for i := range z {
			t := a + b*z[i]
			s += g.k[i]*logSigmoid(t) + (g.n[i]-g.k[i])*logSigmoid(-t)
		}
		return s
	}
	cur := obj(l.a, l.b)
	for range 200 {
		var ga, gb, haa, hab, hbb float64
		for i := range z {
			p := sigmoid(l.a + l.b*z[i])
			r := g.k[i] - g.n[i]*p
			w := g.n[i] * p * (1 - p)
			ga += r
			gb += r * z[i]
			haa += w
			hab += w * z[i]
			hbb += w * z[i] * z[i]
		}
		gb -= ridge * l.b
		hbb += ridge
		det := haa*hbb - hab*hab
		if det <= 0 {
			return
		}
		da, db := (hbb*ga-hab*gb)/det, (haa*gb-hab*ga)/det
		if ga*da+gb*db < 1e-10 {
			// Converged: the Newton decrement (twice what the step could
			// still gain) is nil. Not the step's size: where the feature
			// nearly separates the outcomes, rounding noise in b's gradient
			// over a curvature near the ridge keeps it from vanishing.
			return
		}
		step, improved := 1.0, false
		for range 40 {
			na, nb := l.a+step*da, l.b+step*db
			if next := obj(na, nb); next >= cur {
				l.a, l.b, cur, improved = na, nb, next, true
				break
			}
			step /= 2
		}
		if !improved {
			return
		}
	}
}

func (l *logistic) predict(x float64) float64 {
	if l.constant != nil {
		return *l.constant
	}
	return sigmoid(l.a + l.b*(x-l.mean)/l.sd)
}

func sigmoid(t float64) float64 {
	if t >= 0 {
		return 1 / (1 + math.Exp(-t))
	}
	e := math.Exp(t)
	return e / (1 + e)
}

// logSigmoid is log σ(t), without overflow.
func logSigmoid(t float64) float64 {
	if t >= 0 {
		return -math.Log1p(math.Exp(-t))
	}
	return t - math.Log1p(math.Exp(t))
}
