package gateway

// Search, lessons and drills in the console (issue 24 item 6, issue 27
// item 8). GET /console/search lists every crisis the user may see, past
// ones included, filtered as GET /v1/crises is (one parser, search.go; the
// filter is the page's URL, so a saved search is a bookmark); drills are
// left out unless asked for. GET /console/lessons lists closure lessons
// across closed crises (app.Lessons: never a partner's). GET /console/drills
// is the drill coordinator's: its form opens a drill through app.OpenCrisis,
// as POST /v1/crises with drill settings does.

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
	"github.com/demarche/demarche/workflows/crisis"
)

// consoleSearchRows bounds the rows a search page shows.
const consoleSearchRows = 100

// searchRow is one crisis in the search page's results.
type searchRow struct {
	ID, Title, Country, Region, Type, Stage, Status, Outcome, Confidentiality string
	Severity                                                                  int64
	Drill, Open                                                               bool
	Opened                                                                    time.Time
}

// searchForm is what the search and lessons forms offer and hold.
func searchForm(q url.Values) map[string]any {
	held := map[string]string{}
	for k := range q {
		held[k] = q.Get(k)
	}
	stages := []demarchev1.Choice{}
	for _, s := range append(append([]demarchev1.Stage{}, demarchev1.LifecycleStages...), demarchev1.Stage_STAGE_CLOSED) {
		stages = append(stages, demarchev1.Choice{Value: s.Slug(), Words: stageWords(s)})
	}
	return map[string]any{"Q": held, "Regions": enumChoices(demarchev1.Region(0).Descriptor()), "Types": enumChoices(demarchev1.CrisisType(0).Descriptor()),
		"Outcomes": enumChoices(demarchev1.Outcome(0).Descriptor()), "Stages": stages, "Severities": []string{"1", "2", "3", "4", "5"}}
}

// search is the search page: the form, and the crises it selects.
func (c *console) search(w http.ResponseWriter, r *http.Request, u *user) {
	q := r.URL.Query()
	if !q.Has("drills") {
		q.Set("drills", "false") // the console is for real crises unless drills are asked for
	}
	data := searchForm(q)
	data["Title"] = "Search"
	lq, err := parseSearch(q)
	if err != nil {
		_, msg := refusal(err)
		data["Error"] = "The search was not run: " + msg
		c.render(w, r, http.StatusBadRequest, "search", u, data)
		return
	}
	lq.Limit = min(lq.Limit, consoleSearchRows)
	lq.Via = "GET /console/search"
	rows, err := c.s.app.List(r.Context(), u.Principal, lq)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	if lq.Text == "" && lq.Outcome == demarchev1.Outcome_OUTCOME_UNSPECIFIED {
		// The listing has no titles (never stored in clear): read them as
		// the board does, each read of a restricted crisis recorded.
		rows = c.titled(r.Context(), u, rows, lq.Via)
	}
	out := make([]searchRow, 0, len(rows))
	for _, row := range rows {
		out = append(out, searchRow{ID: row.CrisisID, Title: row.Title, Country: row.Country, Region: words(row.Region), Type: words(row.CrisisType),
			Stage: words(row.Stage), Status: row.Status, Outcome: row.Outcome, Confidentiality: row.Confidentiality, Severity: row.Severity,
			Drill: row.Drill, Open: row.Status == "running", Opened: row.Started})
	}
	data["Rows"], data["Capped"] = out, len(out) == consoleSearchRows
	c.render(w, r, http.StatusOK, "search", u, data)
}

// titled fills each row's title and outcome from its state (app.Crisis);
// a row that cannot be read is left out, as the board leaves it.
func (c *console) titled(ctx context.Context, u *user, rows []crisis.Summary, via string) []crisis.Summary {
	out := rows[:0]
	for _, row := range rows {
		st, err := c.s.app.Crisis(ctx, u.Principal, app.CrisisQuery{ID: row.CrisisID, Via: via})
		if err != nil {
			continue
		}
		row.Title = st.GetCrisis().GetTitle()
		if st.GetOutcome() != demarchev1.Outcome_OUTCOME_UNSPECIFIED {
			row.Outcome = st.GetOutcome().Slug()
		}
		out = append(out, row)
	}
	return out
}

// lessons is the lessons page: lessons recorded at closure, across the
// closed crises the user may see.
func (c *console) lessons(w http.ResponseWriter, r *http.Request, u *user) {
	q := r.URL.Query()
	data := searchForm(q)
	data["Title"] = "Lessons"
	lq, err := parseLessons(q)
	if err != nil {
		_, msg := refusal(err)
		data["Error"] = "The search was not run: " + msg
		c.render(w, r, http.StatusBadRequest, "lessons", u, data)
		return
	}
	lq.Via = "GET /console/lessons"
	lessons, err := c.s.app.Lessons(r.Context(), u.Principal, lq)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	data["Lessons"] = lessons
	c.render(w, r, http.StatusOK, "lessons", u, data)
}

// drills is the drill coordinator's page: the form to open a drill, and the
// drills the user may see, newest first.
func (c *console) drills(w http.ResponseWriter, r *http.Request, u *user) {
	k, msg := c.keptOf(r, u)
	data := map[string]any{"Title": "Drills", "Error": msg, "Kept": k, "Types": crisisTypes(),
		"Countries": []string{"GN", "ML", "NE", "BF", "SD", "ET", "UA", "GE", "VE", "MM"}}
	rows, err := c.s.app.List(r.Context(), u.Principal, app.ListQuery{Filter: crisis.Filter{DrillsOnly: true}, Limit: 50})
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	var out []searchRow
	for _, row := range c.titled(r.Context(), u, rows, "GET /console/drills") {
		out = append(out, searchRow{ID: row.CrisisID, Title: row.Title, Country: row.Country, Type: words(row.CrisisType), Stage: words(row.Stage),
			Status: row.Status, Outcome: row.Outcome, Severity: row.Severity, Drill: true, Open: row.Status == "running", Opened: row.Started})
	}
	data["Rows"] = out
	c.render(w, r, http.StatusOK, "drills", u, data)
}

// openDrill opens a drill from the form (app.OpenCrisis with drill
// settings, as POST /v1/crises): its name makes its id
// (DRILL-<your tag>-<name>); the decision delay is how long the drill
// policy waits before each pending decision, the time scale what the
// playbook's durations are multiplied by. Refused: back to the form with
// every typed value (post/redirect/get).
func (c *console) openDrill(w http.ResponseWriter, r *http.Request, u *user) {
	refuse := func(msg string) {
		c.refused(w, r, u, "/console/drills", "drill-form", "", "The drill was not opened: "+msg)
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		refuse("name: give the drill a name (letters, digits, '-' or '_'), e.g. coup-tabletop-1")
		return
	}
	sev, err := strconv.Atoi(r.PostFormValue("severity"))
	if err != nil {
		refuse("severity: choose a severity from 1 to 5")
		return
	}
	ct, err := demarchev1.ParseCrisisType(r.PostFormValue("type"))
	if err != nil {
		refuse("crisis type: " + err.Error())
		return
	}
	conf, err := demarchev1.ParseConfidentiality(r.PostFormValue("confidentiality"))
	if err != nil {
		refuse("confidentiality: " + err.Error())
		return
	}
	delay, err := time.ParseDuration(strings.TrimSpace(r.PostFormValue("decision_delay")))
	if err != nil {
		refuse("decision delay: a duration such as 30s, 5m or 2h (from 1s to 720h)")
		return
	}
	scale, err := strconv.ParseFloat(strings.TrimSpace(r.PostFormValue("time_scale")), 64)
	if err != nil {
		refuse("time scale: a number above 0 and at most 1 (0.001 turns an hour into 3.6 seconds)")
		return
	}
	title := strings.TrimSpace(r.PostFormValue("title"))
	if title == "" {
		title = "Drill " + name
	}
	req := &demarchev1.OpenCrisisRequest{
		Crisis: &demarchev1.Crisis{Id: name, Title: title, CountryCode: strings.ToUpper(strings.TrimSpace(r.PostFormValue("country"))),
			CrisisType: ct, Severity: int32(sev), Confidentiality: conf},
		Drill: &demarchev1.DrillSettings{DecisionDelay: durationpb.New(delay), TimeScale: scale},
	}
	opened, err := c.s.app.OpenCrisis(r.Context(), u.Principal, req)
	if err != nil {
		_, msg := refusal(err)
		refuse(msg)
		return
	}
	http.Redirect(w, r, "/console/crises/"+url.PathEscape(opened.State.GetCrisis().GetId())+"?done=opened", http.StatusSeeOther)
}
