package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// WriteSVG draws every latency distribution of the report on one log-scale
// axis: for each result a row for Démarche (blue) and one for its baseline
// (grey); the whisker runs from the minimum to p99, the box from p50 to p90,
// the tick marks p50.
func (r *Report) WriteSVG(w io.Writer) error {
	type row struct {
		label string
		d     *Dist
		base  bool
	}
	var rows []row
	for _, res := range r.Results {
		name := res.Scenario
		if res.Variant != "" {
			name += " · " + res.Variant
		}
		if res.Demarche.Latency != nil {
			rows = append(rows, row{name + " — Démarche", res.Demarche.Latency, false})
		}
		if res.Baseline != nil && res.Baseline.Latency != nil {
			rows = append(rows, row{name + " — bare", res.Baseline.Latency, true})
		}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, rw := range rows {
		lo = math.Min(lo, math.Max(rw.d.Min, 0.01))
		hi = math.Max(hi, math.Max(rw.d.P99, rw.d.Max))
	}
	if len(rows) == 0 {
		lo, hi = 1, 10
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	const left, width, rowH, top = 330, 560, 22, 40
	height := top + len(rows)*rowH + 50
	x := func(v float64) float64 {
		v = math.Max(v, lo)
		return left + width*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", left+width+30, height)
	fmt.Fprintf(&b, `<title>Démarche bench: latency distributions</title><rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="13" font-weight="bold">Latency (ms, log scale): whisker min–p99, box p50–p90, tick p50; Démarche blue, bare baseline grey</text>`+"\n")
	for dec := lo; dec <= hi*1.0001; dec *= 10 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`, x(dec), top-5, x(dec), top+len(rows)*rowH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(dec), top+len(rows)*rowH+15, strings.TrimSuffix(ms(dec), " ms"))
	}
	for i, rw := range rows {
		y := float64(top + i*rowH + rowH/2)
		color := "#1f5fbf"
		if rw.base {
			color = "#888"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, left-8, y, html.EscapeString(rw.label))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, x(rw.d.Min), y, x(rw.d.P99), y, color)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="12" fill="%s" opacity="0.6"/>`, x(rw.d.P50), y-6, math.Max(1, x(rw.d.P90)-x(rw.d.P50)), color)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-width="2"/>`+"\n", x(rw.d.P50), y-7, x(rw.d.P50), y+7)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">%s · %d cores · %s · commit %.12s</text>`+"\n", 10, height-10,
		html.EscapeString(r.Started.UTC().Format("2006-01-02 15:04Z")), r.Machine.Cores, html.EscapeString(r.Machine.GoVersion), r.Machine.Commit)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
