package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The situation page (/console/situations/{key}, key = <country>-<crisis
// type>, e.g. GN-unconstitutional-change): a situation's score over time in
// event time as a server-rendered SVG chart against its threshold, the
// crossings marked, its crisis episodes linked, and the same points in a table.

type scorePointView struct {
	X, Y      float64
	At        time.Time
	Score     float64
	Threshold float64
	CrisisID  string
	Crossing  bool
	Title     string
}

type situationChart struct {
	Width, Height, PlotX, PlotY, PlotW, PlotH float64
	PlotRight                                 float64
	Path                                      string
	ThresholdY                                float64
	Points                                    []scorePointView
	Crossings                                 []scorePointView
	YTicks, XTicks                            []tick2
	MaxScore                                  float64
}

type tick2 struct {
	X, Y  float64
	Label string
}

// parseSituationKey splits GN-unconstitutional-change.
func parseSituationKey(key string) (string, demarchev1.CrisisType, error) {
	country, slug, ok := strings.Cut(key, "-")
	t, err := demarchev1.ParseCrisisType(slug)
	if !ok || err != nil || t == demarchev1.CrisisType_CRISIS_TYPE_UNSPECIFIED {
		return "", 0, &demarchev1.FieldError{Field: "situation", Reason: fmt.Sprintf("%q is not <country>-<crisis type>, e.g. GN-unconstitutional-change", truncate(key, 60))}
	}
	if _, ok := demarchev1.RegionOf(country); !ok {
		return "", 0, &demarchev1.FieldError{Field: "situation", Reason: fmt.Sprintf("%q is not an ISO 3166-1 alpha-2 country code", truncate(country, 10))}
	}
	return country, t, nil
}

func (c *console) situationHistory(w http.ResponseWriter, r *http.Request, u *user) {
	if err := authz.Check(authz.ReadScores, u.Principal); err != nil {
		c.renderError(w, r, u, err)
		return
	}
	country, t, err := parseSituationKey(r.PathValue("key"))
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	var sc demarchev1.ScoreResponse
	if err := natsrpc.Call(r.Context(), c.s.nc, natsrpc.EarlyWarningScore, &demarchev1.ScoreRequest{CountryCode: country, CrisisType: t}, &sc); err != nil {
		c.renderError(w, r, u, err)
		return
	}
	// Episodes the user may not see are not named (sideroutes.go).
	if err := c.s.cutToReadable(r, u.Principal, &sc); err != nil {
		c.renderError(w, r, u, err)
		return
	}
	key := demarchev1.SituationKey(country, t)
	c.render(w, r, http.StatusOK, "situation-history", u, map[string]any{
		"Title": "Situation " + key, "Key": key, "Score": &sc, "Chart": buildSituationChart(sc.GetHistory()),
	})
}

func buildSituationChart(history []*demarchev1.ScorePoint) situationChart {
	// Room right of the plot for half of the last date's label (ticks are centred by the stylesheet).
	ch := situationChart{Width: 840, Height: 300, PlotX: 60, PlotY: 16, PlotW: 710, PlotH: 230}
	ch.PlotRight = ch.PlotX + ch.PlotW
	if len(history) == 0 {
		return ch
	}
	from, to := history[0].GetAt().AsTime(), history[len(history)-1].GetAt().AsTime()
	span := to.Sub(from)
	if span <= 0 {
		span = time.Hour
	}
	for _, p := range history {
		ch.MaxScore = math.Max(ch.MaxScore, math.Max(p.GetScore(), p.GetThreshold()))
	}
	top := ch.MaxScore * 1.1
	if top <= 0 {
		top = 1
	}
	y := func(v float64) float64 { return ch.PlotY + ch.PlotH - v/top*ch.PlotH }
	var path strings.Builder
	for i, p := range history {
		at := p.GetAt().AsTime()
		v := scorePointView{X: ch.PlotX + float64(at.Sub(from))/float64(span)*ch.PlotW, Y: y(p.GetScore()), At: at,
			Score: p.GetScore(), Threshold: p.GetThreshold(), CrisisID: p.GetCrisisId()}
		if len(history) == 1 {
			v.X = ch.PlotX + ch.PlotW/2
		}
		v.Crossing = p.GetCrossing() // as early warning decided it (live crossings)
		v.Title = fmt.Sprintf("%s: score %.1f (threshold %.1f)", at.UTC().Format("2006-01-02 15:04"), v.Score, v.Threshold)
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, v.X, v.Y)
		ch.Points = append(ch.Points, v)
		if v.Crossing {
			ch.Crossings = append(ch.Crossings, v)
		}
	}
	ch.Path = strings.TrimSpace(path.String())
	ch.ThresholdY = y(history[len(history)-1].GetThreshold())
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		ch.YTicks = append(ch.YTicks, tick2{X: ch.PlotX, Y: y(v), Label: fmt.Sprintf("%.0f", v)})
		at := from.Add(span * time.Duration(i) / 4)
		ch.XTicks = append(ch.XTicks, tick2{X: ch.PlotX + ch.PlotW*float64(i)/4, Y: ch.PlotY + ch.PlotH, Label: at.UTC().Format("2006-01-02")})
	}
	return ch
}
