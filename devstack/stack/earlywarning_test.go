package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/workflows/crisis"
)

// Issue 11 on the real stack: historical files open no live crisis, the
// same file as an exercise opens a drill crisis, situations are episodes.

// conakry2009 is an ACLED export of Guinea in September 2009 (the junta, the
// 28 September stadium massacre): the first event 15 September, the crossing
// on 28 September under the default rules.
func conakry2009(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,interaction,civilian_targeting,iso,region,country,admin1,admin2,location,latitude,longitude,source,notes,fatalities,timestamp\n")
	rows := []struct {
		date, notes string
		deaths      int
	}{
		{"2009-09-15", "Opposition supporters march against the junta leader's expected candidacy.", 0},
		{"2009-09-18", "Protest against the junta in Conakry dispersed.", 0},
		{"2009-09-22", "Junta soldiers beat opposition activists.", 1},
		{"2009-09-25", "Clashes between youths and junta security forces.", 2},
		{"2009-09-27", "Junta forces fire on protesters in the suburbs.", 30},
		{"2009-09-28", "Presidential guard of the junta opens fire on an opposition rally in the stadium.", 157},
		{"2009-09-28", "Junta soldiers attack protesters fleeing the stadium.", 10},
		{"2009-09-28", "Junta forces raid opposition neighbourhoods.", 20},
		{"2009-09-28", "Junta soldiers kill protesters in Dixinn.", 15},
		{"2009-09-29", "Junta forces continue arrests after the massacre.", 5},
		{"2009-09-30", "Junta soldiers loot homes of opposition leaders.", 3},
		{"2009-10-01", "Protest against the junta in Labe.", 2},
		{"2009-10-02", "Junta clampdown continues.", 1},
	}
	for i, r := range rows {
		fmt.Fprintf(&b, "GIN2009%02d,%s,2009,1,Political violence,Violence against civilians,Attack,Military Forces of Guinea (2008-2010),Civilians (Guinea),17,Civilian targeting,324,Western Africa,Guinea,Conakry,Conakry,Conakry,9.5,-13.7,AFP,%q,%d,1254000000\n",
			i+1, r.date, r.notes, r.deaths)
	}
	file := filepath.Join(t.TempDir(), "conakry-2009.csv")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestHistoricalImportOpensNothingAndAnExerciseRunsIt: a 2009 ACLED file
// imported into the running stack opens no live crisis and reports its
// signals as historical; the same file as an exercise opens a drill crisis
// whose first signal is the file's first event, which runs to closure with
// figures never counted among real crises'.
func TestHistoricalImportOpensNothingAndAnExerciseRunsIt(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	file := conakry2009(t)

	out, err := runCLI(t, s, "warning", "import", "--format", "acled", "--quiet", file)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, want := range []string{"13 rows read, 13 accepted, 0 duplicates, 0 rejected", "0 live, 13 historical", "crises: none opened or signalled"} {
		if !strings.Contains(out, want) {
			t.Fatalf("import summary lacks %q:\n%s", want, out)
		}
	}
	if rows, err := crisis.List(ctx, tc, crisis.Filter{Country: "GN"}, 0); err != nil || len(rows) != 0 {
		t.Fatalf("a historical import opened crises: %v %v", rows, err)
	}
	// Offline, the same file crosses on 28 September.
	bt, err := runCLI(t, s, "warning", "backtest", "--file", file, "--format", "acled", "--quiet")
	if err != nil || !strings.Contains(strings.Join(strings.Fields(bt), " "), "GN-unconstitutional-change 25 13 246") {
		t.Fatalf("backtest: %v\n%s", err, bt)
	}
	t.Logf("backtest:\n%s", bt)

	out, err = runCLI(t, s, "exercise", "start", "--file", file, "--format", "acled", "--id", "conakry-2009", "--day", "20ms",
		"--decision-delay", "1s", "--time-scale", "0.000001", "--wait", "4m", "--output", "json", "--quiet")
	if err != nil {
		t.Fatalf("exercise: %v\n%s", err, out)
	}
	var res struct {
		Crises  []string `json:"crises"`
		Figures []struct {
			CrisisID        string            `json:"crisisId"`
			Closed          bool              `json:"closed"`
			Drill           bool              `json:"drill"`
			FirstSignal     time.Time         `json:"firstSignal"`
			Crossing        time.Time         `json:"crossing"`
			WarningToAction string            `json:"warningToAction"`
			StageTimes      map[string]string `json:"stageTimes"`
			Decisions       int               `json:"decisions"`
			DisbursedUSD    int64             `json:"disbursedUsd"`
		} `json:"figures"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("exercise output: %v\n%s", err, out)
	}
	t.Logf("exercise: %s", out)
	if len(res.Crises) != 1 || len(res.Figures) != 1 {
		t.Fatalf("exercise crises %v figures %v", res.Crises, res.Figures)
	}
	id, f := res.Crises[0], res.Figures[0]
	if !regexp.MustCompile(`^GN-\d{8}-[A-Z2-7]{5}$`).MatchString(id) {
		t.Fatalf("drill crisis id %q is not in the normal style", id)
	}
	if !f.Closed || !f.Drill || f.FirstSignal.Format("2006-01-02") != "2009-09-15" || f.Crossing.Format("2006-01-02") != "2009-09-28" || f.WarningToAction == "" || len(f.StageTimes) == 0 {
		t.Fatalf("exercise figures %+v", f)
	}
	st, err := crisis.State(ctx, tc, id)
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetCrisis().GetDrill() || st.GetCrisis().GetFirstSignalAt().AsTime().Format("2006-01-02") != "2009-09-15" || !st.GetFigures().GetDrill() {
		t.Fatalf("drill crisis %v", st.GetCrisis())
	}
	// Never counted among real crises; the live situation is untouched.
	real, err := crisis.List(ctx, tc, crisis.Filter{Stage: demarchev1.Stage_STAGE_CLOSED, ExcludeDrills: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range real {
		if r.CrisisID == id {
			t.Fatalf("the exercise's crisis is listed among real closed crises")
		}
	}
	sc, err := runCLI(t, s, "warning", "score", "--country", "GN", "--type", "unconstitutional-change", "--output", "json")
	if err != nil || strings.Contains(sc, id) {
		t.Fatalf("live score names the exercise's crisis: %v\n%s", err, sc)
	}
}

// TestSituationsAreEpisodesOnTheStack: a crossing opens a crisis in the normal
// id style with the rules' confidentiality and sharing; after its closure the
// next crossing opens a second, linked episode (crisis show and the score say
// so); a crossing while a manually opened crisis of the same type is open
// attaches to it.
func TestSituationsAreEpisodesOnTheStack(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	st, err := stack.Start(context.Background(), stack.Config{DataDir: t.TempDir(), TemporalLogLevel: "error", MetricsAddr: "127.0.0.1:0",
		EarlyWarning: earlywarning.Config{Window: 24 * time.Hour, Horizon: 48 * time.Hour}}, fileLogger(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	s := st
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	now := time.Now().UTC()
	cli := mustCLI(t, s)
	touched := regexp.MustCompile(`crisis (\S+) (opened|signalled)`)
	report := func(country, typ, id string, at time.Time) (string, string) {
		t.Helper()
		out := cli("warning", "report", "--source-id", id, "--country", country, "--type", typ,
			"--summary", "Militias attack polling stations", "--weight", "30", "--observed-at", at.Format(time.RFC3339))
		m := touched.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("report %s opened or signalled nothing:\n%s", id, out)
		}
		return m[1], m[2]
	}

	first, how := report("SN", "election-violence", "sn-1", now.Add(-46*time.Hour))
	if how != "opened" || !regexp.MustCompile(`^SN-\d{8}-[A-Z2-7]{5}$`).MatchString(first) {
		t.Fatalf("first crossing: crisis %s %s", first, how)
	}
	waitPendingKind(t, tc, first, "triage")
	cs, err := crisis.State(ctx, tc, first)
	if err != nil {
		t.Fatal(err)
	}
	if c := cs.GetCrisis(); c.GetConfidentiality() != demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED || strings.Join(c.GetSharedWith(), ",") != "AU,ECOWAS" || c.GetPreviousCrisisId() != "" {
		t.Fatalf("automatic crisis: %s shared with %v, previous %q", c.GetConfidentiality().Slug(), c.GetSharedWith(), c.GetPreviousCrisisId())
	}
	// Close it: every stage skipped, then the closure.
	for _, stage := range demarchev1.StageSlugs()[:6] {
		cli("crisis", "skip-stage", first, "--stage", stage, "--reason", "test: close quickly")
	}
	waitPendingKind(t, tc, first, "closure")
	cli("crisis", "decide", "closure", first, "--as", "head", "--rationale", "calm returned", "--outcome", "averted", "--lesson", "early warning worked")
	waitFor(t, func() bool {
		open, err := crisis.IsOpen(ctx, tc, first)
		return err == nil && !open
	})

	// 45 hours later the window (24h, the shortest allowed) has let the first
	// signal go: the next crosses again.
	second, how := report("SN", "election-violence", "sn-2", now.Add(-time.Hour))
	if how != "opened" || second == first {
		t.Fatalf("second crossing after closure: crisis %s %s (first %s)", second, how, first)
	}
	waitPendingKind(t, tc, second, "triage")
	if show := cli("crisis", "show", second); !strings.Contains(show, "previous  "+first) {
		t.Fatalf("crisis show does not link the previous episode %s:\n%s", first, show)
	}
	score := cli("warning", "score", "--country", "SN", "--type", "election-violence")
	if !strings.Contains(score, "crisis: "+second+", episode 2") || !strings.Contains(score, "previous episode "+first) {
		t.Fatalf("score:\n%s", score)
	}
	// The analyst (public clearance) reads the score, not the restricted
	// episodes it names; the duty officer (cleared) reads both.
	api := apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile("analyst"))}
	code, body, raw := api.call("GET", "/v1/situations/SN/election-violence/history", "")
	if code != 200 || body["history"] == nil || strings.Contains(raw, first) || strings.Contains(raw, second) {
		t.Fatalf("score history for the analyst: %d %s", code, raw)
	}
	dutyAPI := apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile("duty"))}
	if code, _, raw := dutyAPI.call("GET", "/v1/situations/SN/election-violence/history", ""); code != 200 || !strings.Contains(raw, second) || !strings.Contains(raw, first) {
		t.Fatalf("score history for the duty officer: %d %s", code, raw)
	}

	// The console: the situation's chart marks both crossings and links the
	// episodes the user may see; the second crisis's page links the first.
	page := consolePage(t, s, "duty", "/console/situations/SN-election-violence")
	if !strings.Contains(page, `<svg id="situation-chart"`) || strings.Count(page, `class="crossing"`) != 2 ||
		!strings.Contains(page, second) || !strings.Contains(page, first) {
		t.Fatalf("situation page:\n%s", page)
	}
	if page := consolePage(t, s, "analyst", "/console/situations/SN-election-violence"); strings.Count(page, `class="crossing"`) != 2 ||
		strings.Contains(page, second) || strings.Contains(page, first) {
		t.Fatalf("situation page for the analyst names restricted episodes:\n%s", page)
	}
	if page := consolePage(t, s, "duty", "/console/crises/"+second); !strings.Contains(page, `id="previous-episode">`+first) {
		t.Fatalf("the crisis page does not link the previous episode %s", first)
	}

	// A manually opened crisis of the same type: the crossing attaches to it.
	// Early warning learns it is open from its CrisisOpened on the crisis
	// stream (its index of open crises): the crossing comes once the index
	// has applied it (its metric passed the event's stream sequence).
	manual := openedID(t, cli("crisis", "open", "--title", "Border incidents", "--country", "ML", "--type", "border-dispute", "--severity", "3"))
	_, ojs := jsOf(t, s)
	oc, err := ojs.OrderedConsumer(ctx, eventbus.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventbus.SubjectRoot + ".*.*." + manual + ".crisis_opened"}})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := oc.Next(jetstream.FetchMaxWait(30 * time.Second))
	if err != nil {
		t.Fatalf("the manual crisis's crisis_opened: %v", err)
	}
	md, err := opened.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return scrape(t, s.MetricsURL())[`demarche_earlywarning_open_crises_index_sequence{event="crisis_opened"}`] >= float64(md.Sequence.Stream)
	})
	got, how := report("ML", "border-dispute", "ml-1", now.Add(-10*time.Minute))
	if got != manual || how != "signalled" {
		t.Fatalf("crossing with a manual crisis open: crisis %s %s, want %s signalled", got, how, manual)
	}
	waitFor(t, func() bool {
		st, err := crisis.State(ctx, tc, manual)
		if err != nil {
			return false
		}
		for _, w := range st.GetWarnings() {
			if w.GetSourceId() == "ml-1" && w.GetRulesVersion() != "" {
				return true
			}
		}
		return false
	})
	if rows, err := crisis.List(ctx, tc, crisis.Filter{Country: "ML"}, 0); err != nil || len(rows) != 1 {
		t.Fatalf("Mali crises %v %v, want the manual one only", rows, err)
	}

	// Indicators beyond fatalities (¶45 "patterns of human rights violations or hate speech"):
	// hate-speech reports weigh the rules' 2.5 each, whatever their deaths;
	// nine stay below the threshold (25), the tenth crosses and opens a crisis.
	for i := range 10 {
		out := cli("warning", "report", "--source-id", fmt.Sprintf("ci-hs-%d", i), "--country", "CI", "--type", "election-violence",
			"--category", "hate-speech", "--fatalities", "4", "--summary", "Broadcast calls to drive a community out before the vote",
			"--observed-at", now.Add(-time.Duration(30-i)*time.Minute).Format(time.RFC3339))
		if !strings.Contains(out, "accepted (weight 2.50)") || touched.MatchString(out) != (i == 9) {
			t.Fatalf("hate-speech report %d:\n%s", i, out)
		}
	}
	if score := cli("warning", "score", "--country", "CI", "--type", "election-violence"); !regexp.MustCompile(`(?m)^2\.50 +10% +4 +hate-speech `).MatchString(score) {
		t.Fatalf("score of the hate-speech signals does not name their category:\n%s", score)
	}
}

// consolePage signs in to the console as a demo identity and reads a page.
func consolePage(t *testing.T, s *stack.Stack, who, path string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar}
	req, err := http.NewRequest("POST", s.APIURL()+"/console/signin", strings.NewReader(url.Values{"token": {readToken(t, s.TokenFile(who))}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.APIURL())
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(s.APIURL() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s as %s: %d\n%s", path, who, resp.StatusCode, b)
	}
	return string(b)
}

// guineaLive writes an ACLED export of Guinea events dated days ago
// (relative to now: live under the default 14-day window and horizon), one
// row per death toll, ids prefixed.
func guineaLive(t *testing.T, prefix string, now time.Time, rows []struct{ daysAgo, deaths int }) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,interaction,civilian_targeting,iso,region,country,admin1,admin2,location,latitude,longitude,source,notes,fatalities,timestamp\n")
	for i, r := range rows {
		day := now.AddDate(0, 0, -r.daysAgo)
		fmt.Fprintf(&b, "%s%02d,%s,%d,1,Political violence,Violence against civilians,Attack,Police Forces of Guinea (2021-),Civilians (Guinea),17,Civilian targeting,324,Western Africa,Guinea,Conakry,Conakry,Conakry,9.5,-13.7,AFP,%q,%d,%d\n",
			prefix, i+1, day.Format("2006-01-02"), day.Year(), fmt.Sprintf("Security forces fire on protesters in Conakry (%d dead).", r.deaths), r.deaths, day.Unix())
	}
	file := filepath.Join(t.TempDir(), prefix+".csv")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestClosedCrisisNeverSwallowsANewFlare is issue 22's sequence on the real
// stack: a live import crosses Guinea's threshold (20, as in the report) and
// opens a crisis; the crisis is closed while the score is still above the
// threshold (the default window and horizon, 14 days, keep its signals
// live); three new signals of 20 deaths each then open episode 2, linked to
// episode 1, with its own warning, and nothing is attached to the closed
// crisis: not a warning, not a point of the score's history.
func TestClosedCrisisNeverSwallowsANewFlare(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	dir := t.TempDir()
	s, err := stack.Start(context.Background(), stack.Config{DataDir: dir, TemporalLogLevel: "error",
		EarlyWarning: earlywarning.Config{Thresholds: map[demarchev1.Region]float64{demarchev1.Region_REGION_AFRICA: 20}}}, fileLogger(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	now := time.Now().UTC()
	cli := mustCLI(t, s)
	touched := regexp.MustCompile(`crisis (opened|signalled)\s+(\S+) \((GN-[a-z-]+)\)`)

	// Episode 1: a live import crosses 20 and opens a crisis.
	out := cli("warning", "import", "--format", "acled", "--quiet", guineaLive(t, "GIN26A", now,
		[]struct{ daysAgo, deaths int }{{10, 5}, {9, 12}, {8, 12}, {7, 30}, {7, 50}, {6, 162}}))
	m := touched.FindAllStringSubmatch(out, -1)
	if len(m) != 1 || m[0][1] != "opened" {
		t.Fatalf("the first import opened no crisis (or several):\n%s", out)
	}
	first, situation := m[0][2], m[0][3]
	typ := strings.TrimPrefix(situation, "GN-")
	waitPendingKind(t, tc, first, "triage")

	// Closed while the score is still above the threshold.
	for _, stage := range demarchev1.StageSlugs()[:6] {
		cli("crisis", "skip-stage", first, "--stage", stage, "--reason", "test: close while the score is above")
	}
	waitPendingKind(t, tc, first, "closure")
	cli("crisis", "decide", "closure", first, "--as", "head", "--rationale", "calm returned in the capital", "--outcome", "averted", "--lesson", "none")
	waitFor(t, func() bool {
		open, err := crisis.IsOpen(ctx, tc, first)
		return err == nil && !open
	})
	score := func() *demarchev1.ScoreResponse {
		t.Helper()
		var sc demarchev1.ScoreResponse
		raw := cli("warning", "score", "--country", "GN", "--type", typ, "--output", "json")
		if err := apijson.UnmarshalLenient([]byte(raw), &sc); err != nil {
			t.Fatalf("score: %v\n%s", err, raw)
		}
		return &sc
	}
	before := score()
	if !before.GetAboveThreshold() || before.GetScore() < before.GetThreshold() || before.GetThreshold() != 20 {
		t.Fatalf("after the closure the score must still be above 20: %v", before)
	}
	// The score says the crisis is closed and what opens the next episode
	// (the default margin: a quarter of the threshold above the score the
	// crisis last saw, here the score now).
	if !before.GetCrisisClosed() || before.GetCrisisId() != first || before.GetNextEpisodeScore() != before.GetScore()+5 {
		t.Fatalf("score after the closure: crisis %s closed %v, next episode at %g (score %g)", before.GetCrisisId(), before.GetCrisisClosed(),
			before.GetNextEpisodeScore(), before.GetScore())
	}
	// The analyst, not cleared for the restricted crisis, learns neither its id nor that it closed.
	api := apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile("analyst"))}
	if code, _, raw := api.call("GET", "/v1/situations/GN/"+typ, ""); code != 200 || strings.Contains(raw, first) || !strings.Contains(raw, `"crisisClosed":false`) || !strings.Contains(raw, `"nextEpisodeScore":0`) {
		t.Fatalf("the analyst's score: %d %s", code, raw)
	}
	pointsOf := func(sc *demarchev1.ScoreResponse, id string) int {
		n := 0
		for _, p := range sc.GetHistory() {
			if p.GetCrisisId() == id {
				n++
			}
		}
		return n
	}
	closedState, err := crisis.State(ctx, tc, first)
	if err != nil {
		t.Fatal(err)
	}
	warningsBefore := len(closedState.GetWarnings())

	// Three new signals of 20 deaths each: the next episode opens at once.
	out = cli("warning", "import", "--format", "acled", "--quiet", guineaLive(t, "GIN26B", now,
		[]struct{ daysAgo, deaths int }{{2, 20}, {1, 20}, {1, 20}}))
	t.Logf("second import:\n%s", out)
	if !strings.Contains(out, "3 accepted") {
		t.Fatalf("second import:\n%s", out)
	}
	m = touched.FindAllStringSubmatch(out, -1)
	if len(m) == 0 || m[0][1] != "opened" || m[0][2] == first || m[0][3] != situation {
		t.Fatalf("the new signals opened no new episode (the closed crisis %s swallowed them):\n%s", first, out)
	}
	second := m[0][2]
	if strings.Contains(out, first) {
		t.Fatalf("the second import names the closed crisis %s:\n%s", first, out)
	}
	waitPendingKind(t, tc, second, "triage")
	if show := cli("crisis", "show", second); !strings.Contains(show, "previous  "+first) {
		t.Fatalf("crisis show does not link the previous episode %s:\n%s", first, show)
	}
	st, err := crisis.State(ctx, tc, second)
	if err != nil {
		t.Fatal(err)
	}
	if ws := st.GetWarnings(); len(ws) == 0 || !strings.Contains(ws[0].GetSourceId(), "GIN26B") || !strings.Contains(ws[0].GetSummary(), "Threshold crossed") {
		t.Fatalf("episode 2's warnings: %v", ws)
	}
	after := score()
	if after.GetCrisisId() != second || after.GetEpisodes() != 2 || after.GetPreviousCrisisId() != first || after.GetCrossings() != before.GetCrossings()+1 {
		t.Fatalf("score after the new flare: crisis %s episode %d previous %s crossings %d (before: %d)", after.GetCrisisId(), after.GetEpisodes(),
			after.GetPreviousCrisisId(), after.GetCrossings(), before.GetCrossings())
	}
	if text := cli("warning", "score", "--country", "GN", "--type", typ); !strings.Contains(text, "crisis: "+second+", episode 2") || !strings.Contains(text, "previous episode "+first) {
		t.Fatalf("score:\n%s", text)
	}
	// Nothing went to the closed crisis.
	if got := pointsOf(after, first); got != pointsOf(before, first) {
		t.Fatalf("%d points of the score's history name the closed crisis %s, %d did before the new signals", got, first, pointsOf(before, first))
	}
	if closedState, err = crisis.State(ctx, tc, first); err != nil {
		t.Fatal(err)
	}
	if n := len(closedState.GetWarnings()); n != warningsBefore {
		t.Fatalf("the closed crisis %s has %d warnings, had %d", first, n, warningsBefore)
	}

	// The inbox shows each reader what they are cleared for and nothing
	// more: the analyst (public) sees the situation's score, each signal's
	// deaths and rule and the real percentage of the threshold, but neither
	// restricted episode; the duty officer (restricted) sees the episodes.
	pct := fmt.Sprintf("(%d%% of the threshold)", int(math.Round(100*after.GetScore()/after.GetThreshold())))
	inbox := consolePage(t, s, "analyst", "/console/warnings")
	if !strings.Contains(inbox, `data-situation="GN/`+typ+`"`) || !strings.Contains(inbox, pct) || !strings.Contains(inbox, `<td data-label="Deaths">162</td>`) ||
		!strings.Contains(inbox, `<td data-label="Rule">attacks-on-civilians</td>`) || strings.Contains(inbox, first) || strings.Contains(inbox, second) {
		t.Fatalf("the analyst's inbox (want the GN score %s, no restricted crisis):\n%s", pct, inbox)
	}
	if inbox := consolePage(t, s, "duty", "/console/warnings"); !strings.Contains(inbox, `data-situation="GN/`+typ+`"`) || !strings.Contains(inbox, second) {
		t.Fatalf("the duty officer's inbox lacks episode %s:\n%s", second, inbox)
	}
}
