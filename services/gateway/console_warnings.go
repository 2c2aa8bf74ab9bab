package gateway

// The warnings inbox: recent warnings and scores per situation (country +
// crisis type), each score with its explanation (the signals that make it,
// heaviest first, against the region's threshold), linked to the crises the
// warnings opened or signalled. The situations are those of the crises the
// user may see and those early warning lists as having signals (every score
// is readable by whoever reads scores; a crisis only by the cleared). Scores come from the earlywarning service's
// score endpoint, the one GET /v1/situations/{country}/{type} answers;
// crises and their warnings through the same visibility rules as the board,
// so a crisis the user may not see is neither listed nor linked.
//
// /console/situations/{country}/{type} shows one situation in full; it is
// the place for a score-over-time chart when the earlywarning service offers
// a score history.

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// inboxSituations bounds the situations (and so the score requests) of one
// inbox page; older ones are reached by the lookup form.
const inboxSituations = 12

type contribView struct {
	Source, SourceID, Summary string
	Weight, Share             float64 // Share: percent of the score
	At                        time.Time
	// Fatalities the signal reports and Rule the classification rule that
	// typed and weighed it, so each line explains its own weight.
	Fatalities int32
	Rule       string
	// Revised says what the signal's last revision changed ("rev 2: 162→260 deaths").
	Revised string
}

type warningView struct {
	Source, Summary string
	Severity        int32
	At              time.Time
	Opened          bool // this warning opened the crisis
}

type situationCrisis struct {
	ID, Title, Stage, Confidentiality string
	Closed, Drill, ByWarning          bool // ByWarning: opened by the earlywarning service
	Warnings                          []warningView
	// Earlier is how many older warnings are left to the crisis page.
	Earlier int
}

// situationWarnings bounds the warnings listed per crisis (the newest): a
// crisis fed for weeks carries hundreds, and the crisis page lists them all.
const situationWarnings = 10

type situationView struct {
	Country, Type, TypeSlug, Region string
	Score, Threshold                float64
	// Percent is the score as a percentage of the threshold, the real figure
	// (401 at four times it); the meter's bar stops at the threshold, so the
	// figure is said in words next to it.
	Percent                int
	Low, High              float64 // the meter's bands: half and four fifths of the threshold
	Above                  bool
	Window                 string
	WindowEnd, FirstSignal time.Time
	Crossings              int32
	Contributions          []contribView
	// ScoreCrisis is the crisis the score's situation opens or signals,
	// when the user may see it.
	ScoreCrisis string
	Crises      []situationCrisis
	Latest      time.Time
	// NoScore says why there is no score to show ("" : there is one).
	NoScore string
	// Dialogues are the early-warning dialogues held with regional
	// organisations about the situation, oldest first (¶66 "early warning dialogues").
	Dialogues []*demarchev1.WarningDialogue
}

// URL is the situation's own page.
func (v situationView) URL() string {
	return "/console/situations/" + url.PathEscape(v.Country) + "/" + url.PathEscape(v.TypeSlug)
}

// score asks the earlywarning service for a situation's score, as the API's
// score route does.
func (c *console) score(ctx context.Context, country string, t demarchev1.CrisisType) (*demarchev1.ScoreResponse, error) {
	if c.s.nc == nil {
		return nil, errors.New("early warning is not reachable from here")
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var resp demarchev1.ScoreResponse
	if err := natsrpc.Call(ctx, c.s.nc, natsrpc.EarlyWarningScore, &demarchev1.ScoreRequest{CountryCode: country, CrisisType: t}, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// situations asks the earlywarning service for the situations with
// signals, the most pressing first (they name no crisis).
func (c *console) situations(ctx context.Context) ([]*demarchev1.SituationSummary, error) {
	if c.s.nc == nil {
		return nil, errors.New("early warning is not reachable from here")
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var resp demarchev1.SituationsResponse
	if err := natsrpc.Call(ctx, c.s.nc, natsrpc.EarlyWarningSituations, &demarchev1.SituationsRequest{Limit: inboxSituations}, &resp); err != nil {
		return nil, err
	}
	return resp.GetSituations(), nil
}

// fillScore adds the score and its explanation to a situation.
func (c *console) fillScore(ctx context.Context, v *situationView, t demarchev1.CrisisType, visible map[string]bool) {
	sc, err := c.score(ctx, v.Country, t)
	if err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			v.NoScore = "No signal for this situation in the scoring window."
		} else {
			c.s.log.Debug("console: score", zap.String("country", v.Country), zap.String("type", v.TypeSlug), zap.Error(err))
			v.NoScore = "The score is not available right now (early warning did not answer); reload to try again."
		}
		return
	}
	v.Score, v.Threshold, v.Above, v.Crossings = sc.GetScore(), sc.GetThreshold(), sc.GetAboveThreshold(), sc.GetCrossings()
	v.Region = words(sc.GetRegion().Slug())
	v.Window = humanDuration(sc.GetWindow().AsDuration())
	v.WindowEnd, v.FirstSignal = ts(sc.GetWindowEnd()), ts(sc.GetFirstSignalAt())
	if v.Threshold > 0 {
		v.Percent = int(math.Round(100 * v.Score / v.Threshold))
		v.Low, v.High = v.Threshold/2, v.Threshold*4/5
	}
	if visible[sc.GetCrisisId()] {
		v.ScoreCrisis = sc.GetCrisisId()
	}
	for _, ct := range sc.GetContributions() {
		cv := contribView{Source: ct.GetSource(), SourceID: ct.GetSourceId(), Summary: ct.GetSummary(), Weight: ct.GetWeight(), At: ts(ct.GetObservedAt()),
			Fatalities: ct.GetFatalities(), Rule: ct.GetRule(), Revised: ct.GetRevised()}
		if v.Score > 0 {
			cv.Share = 100 * ct.GetWeight() / v.Score
		}
		v.Contributions = append(v.Contributions, cv)
	}
	v.Dialogues = sc.GetDialogues()
	if v.WindowEnd.After(v.Latest) {
		v.Latest = v.WindowEnd
	}
}

// situationCrises are the crises of a situation the user may see, with the
// warnings attached to each (newest first).
func (c *console) situationCrises(r *http.Request, u *user, rows []crisis.Summary) ([]situationCrisis, time.Time) {
	var out []situationCrisis
	var latest time.Time
	for _, st := range c.states(r, u, rows) {
		cr := st.GetCrisis()
		sc := situationCrisis{ID: cr.GetId(), Title: cr.GetTitle(), Confidentiality: cr.GetConfidentiality().Slug(), Drill: cr.GetDrill(),
			Closed: st.GetClosedAt() != nil, ByWarning: cr.GetOpenedBy() == "earlywarning"}
		var stages []string
		for _, s := range sortedStages(st.GetActiveStages()) {
			stages = append(stages, stageWords(s))
		}
		sc.Stage = strings.Join(stages, " + ")
		if sc.Closed {
			sc.Stage = "closed"
		}
		for i, wn := range st.GetWarnings() {
			wv := warningView{Source: wn.GetSource(), Summary: wn.GetSummary(), Severity: wn.GetSeverity(), At: ts(wn.GetObservedAt()), Opened: i == 0 && sc.ByWarning}
			sc.Warnings = append(sc.Warnings, wv)
			if wv.At.After(latest) {
				latest = wv.At
			}
		}
		slices.Reverse(sc.Warnings)
		if n := len(sc.Warnings); n > situationWarnings {
			sc.Earlier, sc.Warnings = n-situationWarnings, sc.Warnings[:situationWarnings]
		}
		if t := ts(cr.GetOpenedAt()); t.After(latest) {
			latest = t
		}
		out = append(out, sc)
	}
	return out, latest
}

// warnings is the inbox.
func (c *console) warnings(w http.ResponseWriter, r *http.Request, u *user) {
	ctx := r.Context()
	rows, err := c.visibleList(ctx, u, crisis.Filter{}, 500)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	visible := make(map[string]bool, len(rows))
	type key struct{ country, typ string }
	bySituation := map[key][]crisis.Summary{}
	var order []key
	for _, row := range rows { // newest first
		visible[row.CrisisID] = true
		k := key{row.Country, row.CrisisType}
		if _, ok := bySituation[k]; !ok {
			order = append(order, k)
		}
		bySituation[k] = append(bySituation[k], row)
	}
	// Every situation with signals, whatever crises the user may see: a
	// reader of scores reads every score (an analyst cleared public sees the
	// scores, not the restricted crises they opened), and the crises of each
	// only as far as their clearance goes.
	if list, err := c.situations(ctx); err != nil {
		c.s.log.Debug("console: situations", zap.Error(err))
	} else {
		for _, sum := range list {
			k := key{sum.GetCountryCode(), sum.GetCrisisType().Slug()}
			if _, ok := bySituation[k]; !ok {
				order = append(order, k)
				bySituation[k] = nil
			}
		}
	}
	data := map[string]any{"Title": "Warnings", "Live": "/console/events", "Types": crisisTypes()}

	// A situation asked for by the lookup form comes first, crisis or not.
	if qc, qt := r.URL.Query().Get("country"), r.URL.Query().Get("type"); qc != "" || qt != "" {
		country, err := countryParam(qc)
		if err == nil && country == "" {
			err = &demarchev1.FieldError{Field: "country", Reason: "is required (an ISO 3166-1 alpha-2 code such as GN)"}
		}
		t, terr := demarchev1.ParseCrisisType(qt)
		if err == nil && terr != nil {
			err = terr
		}
		if err != nil {
			data["Error"] = "Look-up: " + err.Error()
		} else {
			k := key{country, t.Slug()}
			order = append([]key{k}, slices.DeleteFunc(order, func(o key) bool { return o == k })...)
			data["Asked"] = country + "/" + t.Slug()
			data["AskedCountry"], data["AskedType"] = country, t.Slug()
		}
	}
	if len(order) > inboxSituations {
		data["More"] = len(order) - inboxSituations
		order = order[:inboxSituations]
	}
	views := make([]situationView, len(order))
	for i, k := range order {
		t, err := demarchev1.ParseCrisisType(k.typ)
		if err != nil {
			continue
		}
		v := situationView{Country: k.country, Type: words(t.Slug()), TypeSlug: t.Slug()}
		rs := bySituation[k]
		if len(rs) > 4 {
			rs = rs[:4] // the newest episodes; the situation page lists them all
		}
		v.Crises, v.Latest = c.situationCrises(r, u, rs)
		c.fillScore(ctx, &v, t, visible)
		views[i] = v
	}
	// A situation with no signal in the window and no warning (a crisis
	// opened by a person, say) has nothing to explain: left out, unless
	// asked for.
	asked := 0
	if data["Asked"] != nil {
		asked = 1
	}
	kept := views[:asked]
	for _, v := range views[asked:] {
		warned := false
		for _, sc := range v.Crises {
			warned = warned || len(sc.Warnings) > 0
		}
		if v.NoScore == "" || warned {
			kept = append(kept, v)
		}
	}
	views = kept
	// Above the threshold first, then the most recent.
	rest := views[asked:]
	sort.SliceStable(rest, func(i, j int) bool {
		if rest[i].Above != rest[j].Above {
			return rest[i].Above
		}
		return rest[i].Latest.After(rest[j].Latest)
	})
	data["Situations"] = views
	c.render(w, r, http.StatusOK, "warnings", u, data)
}

// situation is one situation in full: its score with every signal, and
// every crisis of it the user may see.
func (c *console) situation(w http.ResponseWriter, r *http.Request, u *user) {
	country, err := countryParam(r.PathValue("country"))
	if err == nil && country == "" {
		err = &demarchev1.FieldError{Field: "country", Reason: "is required"}
	}
	if err != nil {
		c.render(w, r, http.StatusBadRequest, "error", u, map[string]any{"Title": "Not a situation", "Message": err.Error()})
		return
	}
	t, err := demarchev1.ParseCrisisType(r.PathValue("type"))
	if err != nil {
		c.render(w, r, http.StatusBadRequest, "error", u, map[string]any{"Title": "Not a situation", "Message": err.Error()})
		return
	}
	rows, err := c.visibleList(r.Context(), u, crisis.Filter{Country: country, CrisisType: t}, 50)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	visible := map[string]bool{}
	for _, row := range rows {
		visible[row.CrisisID] = true
	}
	v := situationView{Country: country, Type: words(t.Slug()), TypeSlug: t.Slug()}
	v.Crises, v.Latest = c.situationCrises(r, u, rows)
	c.fillScore(r.Context(), &v, t, visible)
	c.render(w, r, http.StatusOK, "situation", u, map[string]any{"Title": country + " · " + v.Type, "S": v,
		"Live": "/console/events"})
}
