package earlywarning_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
	"google.golang.org/protobuf/types/known/durationpb"
)

const border = demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE

// TestHistoricalSignalsNeverOpenACrisis: signals older than the live horizon
// are scored but open and signal nothing, even when they cross; the first
// live signal that finds the situation above its threshold is the crossing.
func TestHistoricalSignalsNeverOpenACrisis(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	now := t0.Add(400 * 24 * time.Hour)
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 5, Now: func() time.Time { return now }}, opener)
	ctx := context.Background()
	var old []*demarchev1.Signal
	for i := range 8 {
		old = append(old, signal("acled", "h"+string(rune('a'+i)), "UA", border, 1, t0.Add(time.Duration(i)*time.Hour)))
	}
	resp, err := svc.Ingest(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetAccepted() != 8 || resp.GetHistorical() != 8 || resp.GetLive() != 0 || len(resp.GetCrises()) != 0 {
		t.Fatalf("historical import: accepted %d historical %d live %d crises %v", resp.GetAccepted(), resp.GetHistorical(), resp.GetLive(), resp.GetCrises())
	}
	for _, r := range resp.GetResults() {
		if !r.GetHistorical() || r.GetCrisisId() != "" {
			t.Fatalf("historical signal %v", r)
		}
	}
	if calls, _ := opener.snapshot(); len(calls) != 0 {
		t.Fatalf("historical signals called the opener %d times", len(calls))
	}
	score, err := svc.Score(ctx, "UA", border)
	if err != nil || score.GetScore() != 8 || score.GetAboveThreshold() || len(score.GetHistory()) != 8 {
		t.Fatalf("historical score %v %v", score, err)
	}
	// Live signals: the fifth crosses and opens a crisis.
	var live []*demarchev1.Signal
	for i := range 5 {
		live = append(live, signal("ecowarn", "l"+string(rune('a'+i)), "UA", border, 1, now.Add(-time.Duration(5-i)*time.Hour)))
	}
	resp, err = svc.Ingest(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetLive() != 5 || len(resp.GetCrises()) != 1 || !resp.GetCrises()[0].GetOpened() || resp.GetResults()[4].GetCrisisId() == "" {
		t.Fatalf("live crossing: %v", resp)
	}
}

// TestSituationsAreEpisodes: two crossings separated by a closure open two
// crises with different ids, the second linked to the first; a crossing
// while a manually opened crisis of the same type is open attaches to it.
func TestSituationsAreEpisodes(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 5, Window: 2 * 24 * time.Hour, Horizon: 30 * 24 * time.Hour}, opener)
	ctx := context.Background()
	ingest := func(country, id string, w float64, at time.Time) *demarchev1.IngestResponse {
		t.Helper()
		resp, err := svc.Ingest(ctx, []*demarchev1.Signal{signal("ecowarn", id, country, border, w, at)})
		if err != nil || resp.GetAccepted() != 1 {
			t.Fatalf("ingest %s: %v %v", id, resp, err)
		}
		return resp
	}
	first := ingest("UA", "a", 6, t0).GetResults()[0]
	if !first.GetCrisisOpened() || first.GetCrisisId() == "" {
		t.Fatalf("first crossing: %v", first)
	}
	opener.close(first.GetCrisisId())
	ingest("UA", "b", 1, t0.Add(5*24*time.Hour)) // the window moved on: below
	second := ingest("UA", "c", 6, t0.Add(6*24*time.Hour))
	r := second.GetResults()[0]
	if !r.GetCrisisOpened() || r.GetCrisisId() == "" || r.GetCrisisId() == first.GetCrisisId() {
		t.Fatalf("second crossing after closure: %v (first %s)", r, first.GetCrisisId())
	}
	if c := second.GetCrises(); len(c) != 1 || c[0].GetCrisisId() != r.GetCrisisId() || !c[0].GetOpened() || c[0].GetSituation() != "UA-border-dispute" {
		t.Fatalf("crises of the response: %v", c)
	}
	_, opened := opener.snapshot()
	if prev := opened[r.GetCrisisId()].GetCrisis().GetPreviousCrisisId(); prev != first.GetCrisisId() {
		t.Fatalf("second episode linked to %q, want %q", prev, first.GetCrisisId())
	}
	score, err := svc.Score(ctx, "UA", border)
	if err != nil || score.GetEpisodes() != 2 || score.GetCrisisId() != r.GetCrisisId() || score.GetPreviousCrisisId() != first.GetCrisisId() {
		t.Fatalf("score after two episodes: %v %v", score, err)
	}
	var crossings []string
	for _, p := range score.GetHistory() {
		if p.GetCrossing() {
			crossings = append(crossings, p.GetCrisisId())
		}
	}
	if len(crossings) != 2 || crossings[0] != first.GetCrisisId() || crossings[1] != r.GetCrisisId() || len(score.GetHistory()) != 3 {
		t.Fatalf("score history crossings %v of %d points", crossings, len(score.GetHistory()))
	}

	// A manually opened crisis for Georgia's border dispute: the crossing attaches to it.
	opener.mu.Lock()
	opener.manual["GE-border-dispute"] = "GE-20230201-MANUL"
	opener.mu.Unlock()
	resp := ingest("GE", "g", 7, t0)
	if r := resp.GetResults()[0]; r.GetCrisisId() != "GE-20230201-MANUL" || r.GetCrisisOpened() {
		t.Fatalf("crossing with a manual crisis open: %v", r)
	}
	calls, opened := opener.snapshot()
	if last := calls[len(calls)-1]; last.in.GetCrisis().GetId() != "GE-20230201-MANUL" || opened["GE-20230201-MANUL"] == nil && len(opened) > 2 {
		t.Fatalf("the warning went to %s", last.in.GetCrisis().GetId())
	}
}

// TestAutomaticCrisesTakeTheirDefaultsFromTheRules: confidentiality and
// sharing per region and type.
func TestAutomaticCrisesTakeTheirDefaultsFromTheRules(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 1}, opener)
	ctx := context.Background()
	for _, c := range []string{"GN", "KE", "FR"} {
		if _, err := svc.Ingest(ctx, []*demarchev1.Signal{signal("ecowarn", c, c, coup, 2, t0)}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"GN": "AU,ECOWAS", "KE": "AU", "FR": "EU,OSCE"}
	_, opened := opener.snapshot()
	if len(opened) != 3 {
		t.Fatalf("%d crises opened, want 3", len(opened))
	}
	for _, in := range opened {
		c := in.GetCrisis()
		if got := strings.Join(c.GetSharedWith(), ","); got != want[c.GetCountryCode()] || c.GetConfidentiality() != demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED {
			t.Errorf("%s: %s shared with %q, want restricted shared with %q", c.GetId(), c.GetConfidentiality().Slug(), got, want[c.GetCountryCode()])
		}
	}
}

// TestExerciseSignalsRaiseDrillCrisesApart: an exercise's signals are
// de-duplicated and scored apart from live ones and open drill crises only,
// never historical and never attached to a real crisis.
func TestExerciseSignalsRaiseDrillCrisesApart(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	now := t0.Add(5000 * 24 * time.Hour)
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 3, Now: func() time.Time { return now }}, opener)
	ctx := context.Background()
	opener.mu.Lock()
	opener.manual["GN-unconstitutional-change"] = "GN-20230201-REAL1"
	opener.mu.Unlock()
	sigs := []*demarchev1.Signal{signal("acled", "e1", "GN", coup, 2, t0), signal("acled", "e2", "GN", coup, 2, t0.Add(time.Hour))}
	ex := &demarchev1.Exercise{Id: "conakry-2009", Drill: &demarchev1.DrillSettings{DecisionDelay: durationpb.New(time.Second), TimeScale: 0.001}}
	resp, err := svc.IngestExercise(ctx, sigs, ex)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetResults()[1]
	if resp.GetHistorical() != 0 || !r.GetCrisisOpened() || r.GetCrisisId() == "GN-20230201-REAL1" {
		t.Fatalf("exercise: %v", resp)
	}
	_, opened := opener.snapshot()
	c := opened[r.GetCrisisId()]
	if !c.GetCrisis().GetDrill() || c.GetDrillPolicy().GetTimeScale() != 0.001 || !c.GetCrisis().GetFirstSignalAt().AsTime().Equal(t0) {
		t.Fatalf("exercise crisis %v", c)
	}
	// The same signals, live: historical, and not duplicates of the exercise's.
	resp, err = svc.Ingest(ctx, sigs)
	if err != nil || resp.GetHistorical() != 2 || resp.GetDuplicates() != 0 {
		t.Fatalf("the same file imported: %v %v", resp, err)
	}
	if _, err := svc.IngestExercise(ctx, sigs, &demarchev1.Exercise{Id: "bad id"}); err == nil || !strings.Contains(err.Error(), "exercise.id") {
		t.Fatalf("bad exercise: %v", err)
	}
}

// TestTwoInstancesOpenOneEpisode: two service instances on one NATS take a
// burst of signals of one situation at once (compare-and-set on the
// situation, the episode id reserved once): one crisis opens; after its
// closure and a fall below the threshold, a second burst opens exactly one
// more, linked to the first.
func TestTwoInstancesOpenOneEpisode(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	cfg := earlywarning.Config{DefaultThreshold: 10, Window: 24 * time.Hour, Horizon: 30 * 24 * time.Hour}
	a := startService(t, srv.URL(), cfg, opener)
	b := startService(t, srv.URL(), cfg, opener)
	ctx := context.Background()
	burst := func(prefix string, at time.Time) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 30)
		for i := range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := a
				if i%2 == 1 {
					svc = b
				}
				resp, err := svc.Ingest(ctx, []*demarchev1.Signal{signal("ecowarn", fmt.Sprintf("%s-%02d", prefix, i), "GN", coup, 1, at.Add(time.Duration(i)*time.Minute))})
				if err == nil && resp.GetAccepted() != 1 {
					err = fmt.Errorf("signal %d: %v", i, resp.GetResults())
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	burst("a", t0)
	_, opened := opener.snapshot()
	if len(opened) != 1 {
		t.Fatalf("%d crises opened by one burst on two instances, want 1", len(opened))
	}
	var first string
	for id := range opened {
		first = id
	}
	opener.close(first)
	burst("b", t0.Add(3*24*time.Hour)) // the window (1 day) let the first burst go
	_, opened = opener.snapshot()
	if len(opened) != 2 {
		t.Fatalf("%d crises after the second burst, want 2", len(opened))
	}
	for id, in := range opened {
		if id != first && in.GetCrisis().GetPreviousCrisisId() != first {
			t.Fatalf("second episode %s linked to %q, want %s", id, in.GetCrisis().GetPreviousCrisisId(), first)
		}
	}
}

// TestClosedCrisisAboveThresholdTakesNoSignals: a crisis closed while its
// situation stays above the threshold takes no more signals; a live signal
// that raises the score by less than the rules' margin (a quarter of the
// threshold by default) is accepted with the reason and the score it takes;
// the signal that reaches it opens the next episode, linked to the closed
// one, and the batch's later signals go to that episode. No point of the
// score's history names the closed crisis after its closure. With a margin of
// 0 the first live signal opens it.
func TestClosedCrisisAboveThresholdTakesNoSignals(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 20}, opener)
	ctx := context.Background()
	ingest := func(sigs ...*demarchev1.Signal) *demarchev1.IngestResponse {
		t.Helper()
		resp, err := svc.Ingest(ctx, sigs)
		if err != nil || int(resp.GetAccepted()) != len(sigs) {
			t.Fatalf("ingest: %v %v", resp, err)
		}
		return resp
	}
	first := ingest(signal("ecowarn", "a", "GN", coup, 25, t0)).GetResults()[0]
	if !first.GetCrisisOpened() {
		t.Fatalf("first crossing: %v", first)
	}
	x := first.GetCrisisId()
	opener.close(x)
	callsAtClosure, _ := opener.snapshot()

	// The score is 25, above 20, when the crisis closes. Score says so at once.
	sc, err := svc.Score(ctx, "GN", coup)
	if err != nil || !sc.GetCrisisClosed() || sc.GetNextEpisodeScore() != 30 || sc.GetCrisisId() != x {
		t.Fatalf("score after the closure: closed %v next %g crisis %s (%v)", sc.GetCrisisClosed(), sc.GetNextEpisodeScore(), sc.GetCrisisId(), err)
	}
	// +2 (27 < 25 + 5): accepted, attached to nothing, with the reason.
	r := ingest(signal("ecowarn", "b", "GN", coup, 2, t0.Add(time.Hour))).GetResults()[0]
	if r.GetCrisisId() != "" || !strings.Contains(r.GetReason(), "crisis "+x+" is closed") || !strings.Contains(r.GetReason(), "take the score to 30.0") {
		t.Fatalf("a signal below the margin: %v", r)
	}
	// 27 + 4 = 31 ≥ 30: the next episode; the batch's second signal goes to it.
	resp := ingest(signal("ecowarn", "c", "GN", coup, 4, t0.Add(2*time.Hour)), signal("ecowarn", "d", "GN", coup, 4, t0.Add(3*time.Hour)))
	c, d := resp.GetResults()[0], resp.GetResults()[1]
	y := c.GetCrisisId()
	if !c.GetCrisisOpened() || y == "" || y == x || d.GetCrisisId() != y || d.GetCrisisOpened() {
		t.Fatalf("the rise past the margin: %v, then %v (closed: %s)", c, d, x)
	}
	calls, opened := opener.snapshot()
	if prev := opened[y].GetCrisis().GetPreviousCrisisId(); prev != x {
		t.Fatalf("episode 2 linked to %q, want %s", prev, x)
	}
	for _, call := range calls[len(callsAtClosure):] {
		if call.in.GetCrisis().GetId() == x {
			t.Fatalf("a warning went to the closed crisis %s: %v", x, call.w)
		}
	}
	sc, err = svc.Score(ctx, "GN", coup)
	if err != nil || sc.GetCrisisId() != y || sc.GetPreviousCrisisId() != x || sc.GetEpisodes() != 2 || sc.GetCrisisClosed() || sc.GetCrossings() != 2 {
		t.Fatalf("score after episode 2: %v %v", sc, err)
	}
	var named []string
	for _, p := range sc.GetHistory() {
		named = append(named, p.GetCrisisId())
	}
	if strings.Join(named, ",") != strings.Join([]string{x, "", y, y}, ",") {
		t.Fatalf("the history's points name %v, want [%s  %s %s]", named, x, y, y)
	}

	// Margin 0: the first live signal after the closure opens the next episode.
	rules, err := earlywarning.ParseRules("margin0.yaml", []byte(strings.Replace(string(earlywarning.DefaultRules().Source),
		"new_episode_margin: 0.25", "new_episode_margin: 0", 1)))
	if err != nil {
		t.Fatal(err)
	}
	srv0 := natstest.Server(t)
	opener0 := newFakeOpener()
	svc0 := startService(t, srv0.URL(), earlywarning.Config{Rules: rules, DefaultThreshold: 20}, opener0)
	if _, err := svc0.Ingest(ctx, []*demarchev1.Signal{signal("ecowarn", "a", "GN", coup, 25, t0)}); err != nil {
		t.Fatal(err)
	}
	_, opened = opener0.snapshot()
	for id := range opened {
		opener0.close(id)
	}
	resp, err = svc0.Ingest(ctx, []*demarchev1.Signal{signal("ecowarn", "b", "GN", coup, 1, t0.Add(time.Hour))})
	if r := resp.GetResults()[0]; err != nil || !r.GetCrisisOpened() || opened[r.GetCrisisId()] != nil {
		t.Fatalf("margin 0: %v %v", r, err)
	}
}
