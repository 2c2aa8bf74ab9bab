package gateway

// The scorecard page (issue 22 item 4): the rules in force judged as
// forecasts beside two naive baselines — escalations warned in time, missed
// and false alarms, precision and recall, lead times, AUPR and Brier, and
// the rules' threshold sweep — labelled with the rules' version and the data
// it was evaluated on. Early warning computes it (its scorecard endpoint,
// services/earlywarning/scorecard.go; the gateway imports no other service)
// and keeps it until the rules change; the page reads its JSON.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
)

// scorecardTimeout bounds the wait for a scorecard: the first one under new
// rules is an evaluation of several years of events (seconds); later ones
// are early warning's kept answer.
const scorecardTimeout = 90 * time.Second

// scorecardAnswer is the part of early warning's answer the page shows
// (evaluate.SampleScorecard's JSON).
type scorecardAnswer struct {
	Data struct {
		File, Format, About string
		Synthetic           bool
	} `json:"data"`
	Scorecard *struct {
		Format, RulesVersion string
		Read, Events         int
		Rejected             []json.RawMessage
		From, To             time.Time
		FirstOrigin          time.Time
		LastOrigin           time.Time
		Outcome              struct{ Text string }
		StepDays             float64
		Origins              int
		Situations           []string
		Thresholds           map[string]float64
		ForecastCount        int
		Outcomes, Calibrated int
		BaseRate             float64
		Predictors           []scorecardPredictor
		Sweep                []scorecardPoint
	} `json:"scorecard"`
}

type scorecardPredictor struct {
	Name, Title, AlarmWhen                                  string
	Escalations, Hits, Misses, Late, AlarmRuns, FalseAlarms int
	Precision, Recall                                       *float64
	LeadTime                                                struct{ Min, Median, Max *float64 }
	Forecasts                                               struct {
		Hits, Misses, FalseAlarms int
		Precision, Recall         *float64
	}
	AUPR, Brier *float64
}

type scorecardPoint struct {
	Threshold         float64
	Alarms, Hits      int
	Precision, Recall *float64
}

// scorecardRow is one figure for every predictor; Sub rows belong to the
// group above them.
type scorecardRow struct {
	Name  string
	Sub   bool
	Cells []string
}

func (c *console) scorecard(w http.ResponseWriter, r *http.Request, u *user) {
	data := map[string]any{"Title": "Scorecard"}
	msg, err := natsrpc.Request(r.Context(), c.s.nc, natsrpc.EarlyWarningScorecard, &emptypb.Empty{}, natsrpc.Timeout(scorecardTimeout))
	var ans scorecardAnswer
	if err == nil {
		if jerr := json.Unmarshal(msg.Data, &ans); jerr != nil || ans.Scorecard == nil {
			err = fmt.Errorf("%w: early warning's scorecard could not be read: %v", errs.ErrInternal, jerr)
		}
	}
	if err != nil {
		data["Error"] = "The scorecard is not available: " + err.Error()
		c.render(w, r, errs.HTTPStatus(err), "scorecard", u, data)
		return
	}
	sc := ans.Scorecard
	data["Data"] = ans.Data
	data["S"] = sc
	data["Rejected"] = len(sc.Rejected)
	data["BaseRatePct"] = fmt.Sprintf("%.1f%%", 100*sc.BaseRate)
	var rows []scorecardRow
	row := func(name string, sub bool, cell func(p scorecardPredictor) string) {
		sr := scorecardRow{Name: name, Sub: sub}
		for _, p := range sc.Predictors {
			sr.Cells = append(sr.Cells, cell(p))
		}
		rows = append(rows, sr)
	}
	row("Alarm when", false, func(p scorecardPredictor) string { return p.AlarmWhen })
	row("Escalations", false, func(p scorecardPredictor) string { return strconv.Itoa(p.Escalations) })
	row("warned in time (hits)", true, func(p scorecardPredictor) string { return strconv.Itoa(p.Hits) })
	row("missed (of which late)", true, func(p scorecardPredictor) string { return fmt.Sprintf("%d (%d)", p.Misses, p.Late) })
	row("false alarms / alarm runs", true, func(p scorecardPredictor) string { return fmt.Sprintf("%d / %d", p.FalseAlarms, p.AlarmRuns) })
	row("precision / recall", true, func(p scorecardPredictor) string { return percent(p.Precision) + " / " + percent(p.Recall) })
	row("lead time, days: median (min–max)", true, func(p scorecardPredictor) string {
		if p.LeadTime.Median == nil || p.LeadTime.Min == nil || p.LeadTime.Max == nil {
			return "—"
		}
		return fmt.Sprintf("%.0f (%.0f–%.0f)", *p.LeadTime.Median, *p.LeadTime.Min, *p.LeadTime.Max)
	})
	row("Forecasts (situation × origin)", false, func(scorecardPredictor) string { return "" })
	row("hits / misses / false alarms", true, func(p scorecardPredictor) string {
		return fmt.Sprintf("%d / %d / %d", p.Forecasts.Hits, p.Forecasts.Misses, p.Forecasts.FalseAlarms)
	})
	row("precision / recall", true, func(p scorecardPredictor) string {
		return percent(p.Forecasts.Precision) + " / " + percent(p.Forecasts.Recall)
	})
	row(fmt.Sprintf("AUPR (higher is better; random: %.3f)", sc.BaseRate), true, func(p scorecardPredictor) string { return decimal(p.AUPR, 3) })
	row("Brier score, calibrated (lower is better)", true, func(p scorecardPredictor) string { return decimal(p.Brier, 4) })
	data["Rows"] = rows
	uniform := 0.0
	for _, t := range sc.Thresholds {
		if uniform != 0 && t != uniform {
			uniform = -1
			break
		}
		uniform = t
	}
	var sweep [][]string
	for _, pt := range sc.Sweep {
		abs := "per region"
		if uniform > 0 {
			abs = strconv.FormatFloat(pt.Threshold*uniform, 'g', 4, 64)
		}
		sweep = append(sweep, []string{strconv.FormatFloat(pt.Threshold, 'g', 4, 64), abs, strconv.Itoa(pt.Alarms), strconv.Itoa(pt.Hits), percent(pt.Precision), percent(pt.Recall)})
	}
	data["Sweep"] = sweep
	c.render(w, r, http.StatusOK, "scorecard", u, data)
}

func percent(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100**v)
}

func decimal(v *float64, digits int) string {
	if v == nil {
		return "—"
	}
	return strconv.FormatFloat(*v, 'f', digits, 64)
}
