package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
)

// TestConsoleScorecardPage: the scorecard page shows early warning's
// scorecard — the rules' version, the data it was evaluated on (a synthetic
// sample said so), each predictor side by side and the sweep — for whoever
// reads scores; a funding officer is refused at the door (nothing asked of
// early warning), and early warning's refusal is said on the page.
func TestConsoleScorecardPage(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	iss := issuer(t)
	api := httptest.NewServer((&Service{nc: nc, log: zap.NewNop(), authn: iss.Verifier()}).Handler())
	defer api.Close()
	asked, fail := 0, false
	svc, err := micro.AddService(nc, micro.Config{Name: natsrpc.EarlyWarningService, Version: "0.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	if err := svc.AddGroup(natsrpc.EarlyWarningGroup).AddEndpoint("scorecard", micro.HandlerFunc(func(r micro.Request) {
		asked++
		if fail {
			_ = r.Error("503", "early warning temporarily unavailable: no evaluator", nil)
			return
		}
		_ = r.Respond([]byte(scorecardFixture))
	})); err != nil {
		t.Fatal(err)
	}
	if err := natsrpc.Ready(nc); err != nil {
		t.Fatal(err)
	}
	get := func(token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", api.URL+"/console/warning/scorecard", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(mint(t, iss, "fiona", "funding-officer")); code != http.StatusForbidden || !strings.Contains(body, "needs one of the roles") || asked != 0 {
		t.Fatalf("a funding officer: %d (early warning asked %d times)\n%.600s", code, asked, body)
	}
	code, body := get(mint(t, iss, "ana", "analyst"))
	if code != http.StatusOK || asked != 1 {
		t.Fatalf("an analyst: %d\n%.2000s", code, body)
	}
	for _, want := range []string{
		`<span id="rules-version">2026.12.2&#43;abc</span>`,
		"Evaluated on a synthetic sample, not the platform's signals",
		"services/earlywarning/evaluate/testdata/x.csv",
		`<th scope="col" data-predictor="rules">rules 2026.12.2&#43;abc</th>`, `data-predictor="last-period"`, `data-predictor="no-change"`,
		"<td>7</td><td>2</td><td>1</td>",                   // hits: the rules, then the baselines
		"<td>51% / 11%</td>",                               // precision / recall of the escalations
		"<td>25 (20–28)</td><td>26 (23–29)</td><td>—</td>", // lead times; none without hits
		"AUPR (higher is better; random: 0.079)", "<td>0.494</td><td>0.450</td><td>0.213</td>",
		"<td>0.0556</td>",
		`<th scope="row">2</th><td>50</td><td>50</td><td>9</td><td>75%</td><td>18%</td>`, // the sweep: × 2 of a uniform 25
		"at least 25 deaths in the situation",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", body)
	}
	fail = true
	if code, body := get(mint(t, iss, "ana", "analyst")); code != http.StatusServiceUnavailable || !strings.Contains(body, "The scorecard is not available") || !strings.Contains(body, "no evaluator") {
		t.Errorf("early warning unavailable: %d\n%.1500s", code, body)
	}
}

// scorecardFixture is an answer of early warning's scorecard endpoint
// (evaluate.SampleScorecard's JSON, shortened).
const scorecardFixture = `{"data": {"file": "services/earlywarning/evaluate/testdata/x.csv", "format": "acled", "synthetic": true, "about": "made up by a generator"},
 "scorecard": {"format": "acled", "rulesVersion": "2026.12.2+abc", "read": 100, "events": 100, "from": "2019-01-01T00:00:00Z", "to": "2023-12-31T00:00:00Z",
  "outcome": {"deaths": 25, "horizonDays": 30, "text": "at least 25 deaths in the situation (country × crisis type) in the 30 days from the forecast"},
  "stepDays": 7, "firstOrigin": "2019-01-31T00:00:00Z", "lastOrigin": "2023-11-30T00:00:00Z", "origins": 253, "situations": ["NE/general", "ML/general"],
  "thresholds": {"NE/general": 25, "ML/general": 25}, "forecastCount": 506, "outcomes": 40, "calibrated": 500, "baseRate": 0.079,
  "predictors": [
   {"name": "rules", "title": "rules 2026.12.2+abc", "alarmWhen": "score ≥ 25", "escalations": 65, "hits": 7, "misses": 58, "late": 20, "alarmRuns": 51, "falseAlarms": 25, "precision": 0.51, "recall": 0.11,
    "leadTime": {"days": [20, 25, 28], "min": 20, "median": 25, "max": 28}, "forecasts": {"hits": 156, "misses": 302, "falseAlarms": 94, "precision": 0.62, "recall": 0.34}, "aupr": 0.494, "brier": 0.0556},
   {"name": "last-period", "title": "last period's violence", "alarmWhen": "≥ 25 deaths", "escalations": 65, "hits": 2, "misses": 63, "late": 37, "alarmRuns": 62, "falseAlarms": 23, "precision": 0.63, "recall": 0.03,
    "leadTime": {"days": [23, 29], "min": 23, "median": 26, "max": 29}, "forecasts": {"hits": 213, "misses": 245, "falseAlarms": 243, "precision": 0.47, "recall": 0.47}, "aupr": 0.450, "brier": 0.0565},
   {"name": "no-change", "title": "no change (base rate)", "alarmWhen": "past rate ≥ 50%", "escalations": 65, "hits": 1, "misses": 64, "late": 3, "alarmRuns": 5, "falseAlarms": 2, "precision": 0.6, "recall": 0.02,
    "leadTime": {"days": []}, "forecasts": {"hits": 17, "misses": 441, "falseAlarms": 48, "precision": 0.26, "recall": 0.04}, "aupr": 0.213, "brier": 0.0683}],
  "sweep": [{"threshold": 1, "alarms": 250, "hits": 156, "precision": 0.62, "recall": 0.34}, {"threshold": 2, "alarms": 50, "hits": 9, "precision": 0.75, "recall": 0.18}]}}`
