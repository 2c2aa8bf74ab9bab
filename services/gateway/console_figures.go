package gateway

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// The figures page: what the report asks to measure
// (¶60 "monitor outcomes, measure impact") for closed, non-drill crises the
// user may see: the warning-to-action time of each, and its time in each stage,
// as a server-rendered SVG chart with the same numbers in a table beside it.

// chartStages are the stages a time-per-stage bar is made of, with colours
// that keep 3:1 contrast on white and differ for common colour blindness.
var chartStages = []struct {
	Stage demarchev1.Stage
	Color string
}{
	{demarchev1.Stage_STAGE_WARNING, "#b8410f"},
	{demarchev1.Stage_STAGE_GOOD_OFFICES, "#1f5fa8"},
	{demarchev1.Stage_STAGE_FACT_FINDING, "#6b4fa0"},
	{demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT, "#0f7a5a"},
	{demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING, "#8a6d00"},
	{demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP, "#5c5c5c"},
}

type barSeg struct {
	X, W  float64
	Color string
	Label string
}

type chartRow struct {
	ID, Title, Outcome string
	Y, Y2, TotalW      float64
	W2A                time.Duration
	W2AText            string
	W2AW               float64 // bar width of warning-to-action
	// The response's figures: what ended the clock, triage apart, Council
	// actions, engagements, deployments, funding lead time.
	FirstAction, TriageText, LeadText string
	Engagements, Council              int32
	WithEnvoy, WithoutEnvoy           int32
	Segs                              []barSeg
	Total                             time.Duration
	TotalText                         string
	Stages                            []stageCell
}

type stageCell struct {
	Stage demarchev1.Stage
	Text  string
}

type chartView struct {
	Rows                   []chartRow
	Width, Height, PlotX   float64
	PlotW                  float64
	MaxW2A, MaxTotal       string
	Legend                 []map[string]any
	MedianW2A              string
	Count                  int
	StageHeads             []demarchev1.Stage
	AxisW2A, AxisTotal     []tick
	SecondY, SecondHeight  float64
	AxisTotalY             float64
	SecondTop, FirstHeight float64
}

type tick struct {
	X     float64
	Label string
}

const (
	chartRowH  = 26.0
	chartPlotX = 200.0
	chartPlotW = 520.0
)

func (c *console) figures(w http.ResponseWriter, r *http.Request, u *user) {
	rows, err := c.visibleList(r.Context(), u, crisis.Filter{Stage: demarchev1.Stage_STAGE_CLOSED, ExcludeDrills: true}, 200)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	var states []*demarchev1.CrisisState
	for _, st := range c.states(r, u, rows) {
		if st.GetFigures() != nil && !st.GetFigures().GetDrill() && !st.GetCrisis().GetDrill() {
			states = append(states, st)
		}
	}
	sort.Slice(states, func(i, j int) bool { return ts(states[i].GetClosedAt()).Before(ts(states[j].GetClosedAt())) })
	data := map[string]any{"Title": "Figures", "Chart": buildChart(states), "Live": "/console/events"}
	// Women among the mediators these crises deployed, from the roster's
	// self-declared field, for who may read the roster.
	var deployed []string
	for _, st := range states {
		deployed = append(deployed, crisis.DeployedExperts(st)...)
	}
	if len(deployed) > 0 && authz.Allowed(authz.ReadRoster, u.Roles) {
		var experts demarchev1.ExpertsResponse
		if err := natsrpc.Call(r.Context(), c.s.nc, natsrpc.RosterExperts, &demarchev1.AssignmentsRequest{}, &experts, natsrpc.Timeout(3*time.Second)); err != nil {
			c.s.log.Info("console: roster not read for the figures", zap.Error(err))
			data["Women"] = "Women among deployed mediators: the roster service did not answer."
		} else {
			line := crisis.CountWomenDeployed(deployed, experts.GetExperts()).String()
			data["Women"] = strings.ToUpper(line[:1]) + line[1:] + "."
		}
	}
	c.render(w, r, http.StatusOK, "figures", u, data)
}

func buildChart(states []*demarchev1.CrisisState) chartView {
	cv := chartView{PlotX: chartPlotX, PlotW: chartPlotW, Width: chartPlotX + chartPlotW + 110, Count: len(states)}
	var maxW2A, maxTotal time.Duration
	var w2as []time.Duration
	for _, st := range states {
		f := st.GetFigures()
		row := chartRow{ID: st.GetCrisis().GetId(), Title: st.GetCrisis().GetTitle(), Outcome: st.GetOutcome().Slug(),
			W2A: f.GetWarningToAction().AsDuration()}
		row.W2AText = humanDuration(row.W2A)
		if f.GetWarningToAction() == nil {
			row.W2AText = "no response action"
		}
		row.FirstAction, row.TriageText, row.LeadText = f.GetFirstAction(), "—", "—"
		if d := f.GetWarningToTriage(); d != nil {
			row.TriageText = humanDuration(d.AsDuration())
		}
		if d := f.GetFundingLeadTime(); d != nil {
			row.LeadText = humanDuration(d.AsDuration())
		}
		row.Engagements, row.Council = f.GetEngagements(), f.GetCouncilActions()
		row.WithEnvoy, row.WithoutEnvoy = f.GetDeploymentsWithEnvoy(), f.GetDeploymentsWithoutEnvoy()
		times := map[demarchev1.Stage]time.Duration{}
		for _, s := range f.GetStageTimes() {
			times[s.GetStage()] += s.GetTime().AsDuration()
			row.Total += s.GetTime().AsDuration()
		}
		for _, cs := range chartStages {
			txt := "—"
			if d, ok := times[cs.Stage]; ok {
				txt = humanDuration(d)
			}
			row.Stages = append(row.Stages, stageCell{Stage: cs.Stage, Text: txt})
		}
		row.TotalText = humanDuration(row.Total)
		maxW2A, maxTotal = max(maxW2A, row.W2A), max(maxTotal, row.Total)
		if f.GetWarningToAction() != nil { // no response action: nothing to count in the median
			w2as = append(w2as, row.W2A)
		}
		cv.Rows = append(cv.Rows, row)
	}
	if maxW2A <= 0 {
		maxW2A = time.Second
	}
	if maxTotal <= 0 {
		maxTotal = time.Second
	}
	top := 30.0
	for i := range cv.Rows {
		row := &cv.Rows[i]
		row.Y = top + float64(i)*chartRowH
		row.W2AW = max(1, float64(row.W2A)/float64(maxW2A)*chartPlotW)
	}
	cv.FirstHeight = top + float64(len(cv.Rows))*chartRowH
	cv.SecondTop = cv.FirstHeight + 40
	for i, st := range states {
		row := &cv.Rows[i]
		x := chartPlotX
		times := map[demarchev1.Stage]time.Duration{}
		for _, s := range st.GetFigures().GetStageTimes() {
			times[s.GetStage()] += s.GetTime().AsDuration()
		}
		for _, cs := range chartStages {
			d := times[cs.Stage]
			if d <= 0 {
				continue
			}
			wd := float64(d) / float64(maxTotal) * chartPlotW
			row.Segs = append(row.Segs, barSeg{X: x, W: max(wd, 1), Color: cs.Color, Label: stageWords(cs.Stage) + " " + humanDuration(d)})
			x += wd
		}
	}
	cv.SecondY = cv.SecondTop + 16
	for i := range cv.Rows {
		cv.Rows[i].Y2 = cv.SecondY + 6 + float64(i)*chartRowH
		cv.Rows[i].TotalW = float64(cv.Rows[i].Total) / float64(maxTotal) * chartPlotW
	}
	cv.SecondHeight = float64(len(cv.Rows))*chartRowH + 10
	cv.AxisTotalY = cv.SecondY + cv.SecondHeight
	cv.Height = cv.AxisTotalY + 20
	cv.MaxW2A, cv.MaxTotal = humanDuration(maxW2A), humanDuration(maxTotal)
	for i := 0; i <= 4; i++ {
		x := chartPlotX + float64(i)/4*chartPlotW
		cv.AxisW2A = append(cv.AxisW2A, tick{X: x, Label: humanDuration(maxW2A * time.Duration(i) / 4)})
		cv.AxisTotal = append(cv.AxisTotal, tick{X: x, Label: humanDuration(maxTotal * time.Duration(i) / 4)})
	}
	for _, cs := range chartStages {
		cv.Legend = append(cv.Legend, map[string]any{"Name": stageWords(cs.Stage), "Color": cs.Color})
		cv.StageHeads = append(cv.StageHeads, cs.Stage)
	}
	if len(w2as) > 0 {
		slices.Sort(w2as)
		cv.MedianW2A = humanDuration(w2as[len(w2as)/2])
	}
	return cv
}
