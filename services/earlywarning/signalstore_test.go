package earlywarning_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

const violence = demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE

// acledSignal is an imported event with its deaths and the weight a file's
// row of them gets.
func acledSignal(id string, deaths int32, at time.Time) *demarchev1.Signal {
	sig := signal("acled", id, "GN", violence, earlywarning.Weight(deaths), at)
	sig.Fatalities, sig.Rule = deaths, "acled/violence-against-civilians"
	return sig
}

// storeAll reads every stored signal of a query, page after page.
func storeAll(t *testing.T, svc *earlywarning.Service, q *demarchev1.SignalsQuery) []*demarchev1.StoredSignal {
	t.Helper()
	var out []*demarchev1.StoredSignal
	for {
		page, err := svc.Signals(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.GetSignals()...)
		if page.GetNext() == "" {
			return out
		}
		q.After = page.GetNext()
	}
}

// TestRevisionChangesScoreAndExplanation: ACLED revises an event's deaths
// (162 → 260) under the same id. The revision is accepted (not dropped as a
// duplicate), replaces the event's contribution (the score moves by the
// difference of the two weights, and may cross), the explanation says
// "rev 2: 162→260 deaths", and the store keeps revision 2; the same revised
// content again is a duplicate.
func TestRevisionChangesScoreAndExplanation(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 12}, opener)
	ctx := context.Background()
	first := []*demarchev1.Signal{acledSignal("GIN1001", 162, t0), acledSignal("GIN1002", 3, t0.Add(time.Hour))}
	if resp, err := svc.Ingest(ctx, first); err != nil || resp.GetAccepted() != 2 {
		t.Fatalf("first: %v %v", resp, err)
	}
	before, err := svc.Score(ctx, "GN", violence)
	if err != nil {
		t.Fatal(err)
	}
	want := earlywarning.Weight(162) + earlywarning.Weight(3)
	if math.Abs(before.GetScore()-want) > 1e-9 || before.GetAboveThreshold() {
		t.Fatalf("before: score %v above %v, want %v below 12", before.GetScore(), before.GetAboveThreshold(), want)
	}
	resp, err := svc.Ingest(ctx, []*demarchev1.Signal{acledSignal("GIN1001", 260, t0)})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetResults()[0]
	if r.GetStatus() != demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED || r.GetRevision() != 2 || resp.GetRevised() != 1 {
		t.Fatalf("revision: %v", resp)
	}
	after, err := svc.Score(ctx, "GN", violence)
	if err != nil {
		t.Fatal(err)
	}
	want = earlywarning.Weight(260) + earlywarning.Weight(3)
	if math.Abs(after.GetScore()-want) > 1e-9 || len(after.GetContributions()) != 2 {
		t.Fatalf("after: score %v from %d signals, want %v from 2", after.GetScore(), len(after.GetContributions()), want)
	}
	var line *demarchev1.SignalContribution
	for _, c := range after.GetContributions() {
		if c.GetSourceId() == "GIN1001" {
			line = c
		}
	}
	if line == nil || line.GetFatalities() != 260 || line.GetRevision() != 2 || line.GetRevised() != "rev 2: 162→260 deaths" {
		t.Fatalf("explanation line: %v", line)
	}
	stored := storeAll(t, svc, &demarchev1.SignalsQuery{CountryCode: "GN"})
	if len(stored) != 2 || stored[0].GetSignal().GetFatalities() != 260 || stored[0].GetRevision() != 2 || stored[0].GetRevised() != "rev 2: 162→260 deaths" {
		t.Fatalf("store: %v", stored)
	}
	if resp, err := svc.Ingest(ctx, []*demarchev1.Signal{acledSignal("GIN1001", 260, t0)}); err != nil || resp.GetDuplicates() != 1 {
		t.Fatalf("the revision again: %v %v", resp, err)
	}
	// A third revision takes the score across the threshold: a crossing as any.
	resp, err = svc.Ingest(ctx, []*demarchev1.Signal{acledSignal("GIN1002", 400, t0.Add(time.Hour))})
	if err != nil || resp.GetResults()[0].GetRevision() != 2 || resp.GetResults()[0].GetCrisisId() == "" {
		t.Fatalf("revision across the threshold: %v %v", resp, err)
	}
	// A revision may not move the signal to another situation.
	moved := acledSignal("GIN1001", 300, t0)
	moved.CountryCode = "ML"
	resp, err = svc.Ingest(ctx, []*demarchev1.Signal{moved})
	if err != nil || resp.GetRejected() != 1 || !strings.Contains(resp.GetResults()[0].GetReason(), "another situation") {
		t.Fatalf("moved: %v %v", resp, err)
	}
}

// TestRevisionOnTheStream: a source republishes a signal still in the window
// with changed deaths: the redelivery is a revision, not a duplicate.
func TestRevisionOnTheStream(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	svc := startService(t, srv.URL(), earlywarning.Config{}, newFakeOpener())
	_, js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	if err := earlywarning.PublishSignal(ctx, js, "/test", acledSignal("GIN7", 10, t0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first signal scored", func() bool {
		sc, err := svc.Score(ctx, "GN", violence)
		return err == nil && len(sc.GetContributions()) == 1
	})
	if err := earlywarning.PublishSignal(ctx, js, "/test", acledSignal("GIN7", 25, t0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revision scored", func() bool {
		sc, err := svc.Score(ctx, "GN", violence)
		return err == nil && len(sc.GetContributions()) == 1 && sc.GetContributions()[0].GetRevised() == "rev 2: 10→25 deaths" &&
			math.Abs(sc.GetScore()-earlywarning.Weight(25)) < 1e-9
	})
}

// TestOldSignalsScoreInTheirOwnWindow: a 2009 file imported after 2023
// signals is not "older than the window, does not count": each old signal
// is scored in the window ending at its own time, from the store (a second
// import's 2009 signal counts the first's), recorded as a point of the
// history at that time; today's score is unchanged.
func TestOldSignalsScoreInTheirOwnWindow(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 100}, newFakeOpener())
	ctx := context.Background()
	if resp, err := svc.Ingest(ctx, []*demarchev1.Signal{signal("acled", "NOW1", "GN", violence, 4, t0)}); err != nil || resp.GetAccepted() != 1 {
		t.Fatalf("today: %v %v", resp, err)
	}
	old := time.Date(2009, 9, 28, 12, 0, 0, 0, time.UTC)
	resp, err := svc.Ingest(ctx, []*demarchev1.Signal{signal("acled", "OLD1", "GN", violence, 5, old), signal("acled", "OLD2", "GN", violence, 6, old.Add(24*time.Hour))})
	if err != nil || resp.GetAccepted() != 2 || resp.GetHistorical() != 2 {
		t.Fatalf("2009, first import: %v %v", resp, err)
	}
	rules := earlywarning.DefaultRules()
	want2 := 6 + rules.Decayed(5, 24*time.Hour)
	if got := resp.GetResults()[1].GetReason(); !strings.Contains(got, fmt.Sprintf("scored in its own window ending 2009-09-29: %.1f", want2)) {
		t.Fatalf("reason: %q, want its own window's score %.1f", got, want2)
	}
	// Another import, a day later: the store gives it the first import's signals.
	resp, err = svc.Ingest(ctx, []*demarchev1.Signal{signal("acled", "OLD3", "GN", violence, 7, old.Add(48*time.Hour))})
	if err != nil || resp.GetAccepted() != 1 {
		t.Fatalf("2009, second import: %v %v", resp, err)
	}
	want3 := 7 + rules.Decayed(6, 24*time.Hour) + rules.Decayed(5, 48*time.Hour)
	if got := resp.GetResults()[0].GetReason(); !strings.Contains(got, fmt.Sprintf("own window ending 2009-09-30: %.1f", want3)) {
		t.Fatalf("reason: %q, want %.1f (the first import's signals from the store)", got, want3)
	}
	sc, err := svc.Score(ctx, "GN", violence)
	if err != nil {
		t.Fatal(err)
	}
	if sc.GetScore() != 4 || len(sc.GetContributions()) != 1 {
		t.Fatalf("today's score %v from %d signals, want 4 from 1", sc.GetScore(), len(sc.GetContributions()))
	}
	var points []string
	for _, p := range sc.GetHistory() {
		points = append(points, fmt.Sprintf("%s %.3f", p.GetAt().AsTime().Format(time.DateOnly), p.GetScore()))
	}
	wantPoints := []string{"2009-09-28 5.000", fmt.Sprintf("2009-09-29 %.3f", want2), fmt.Sprintf("2009-09-30 %.3f", want3), "2023-02-01 4.000"}
	if !reflect.DeepEqual(points, wantPoints) {
		t.Fatalf("history %v, want %v (in event time)", points, wantPoints)
	}
}

// TestSignalStoreSurvivesRestartAndPages: the store is on file storage: after
// the NATS server and the service restart, a query finds every signal, with
// its filters (country, type, event-time range) and page after page in event
// time.
func TestSignalStoreSurvivesRestartAndPages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	var sigs []*demarchev1.Signal
	for i := range 7 {
		sigs = append(sigs, acledSignal(fmt.Sprintf("GIN%d", i), int32(i), t0.AddDate(0, 0, -20*i)))
	}
	sigs = append(sigs, signal("ucdp", "77", "ML", demarchev1.CrisisType_CRISIS_TYPE_GENERAL, 1, t0))
	{
		srv := natstest.ServerIn(t, dir)
		svc, err := earlywarning.Start(ctx, earlywarning.Config{NATSURL: srv.URL(), Now: func() time.Time { return testNow }}, newFakeOpener(), zapNop)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := svc.Ingest(ctx, sigs); err != nil || resp.GetAccepted() != 8 {
			t.Fatalf("ingest: %v %v", resp, err)
		}
		svc.Stop()
		srv.Stop()
	}
	srv := natstest.ServerIn(t, dir)
	svc := startService(t, srv.URL(), earlywarning.Config{}, newFakeOpener())
	all := storeAll(t, svc, &demarchev1.SignalsQuery{})
	if len(all) != 8 {
		t.Fatalf("after restart: %d signals, want 8", len(all))
	}
	paged := storeAll(t, svc, &demarchev1.SignalsQuery{CountryCode: "GN", CrisisType: violence, Limit: 2})
	var ids []string
	for _, s := range paged {
		ids = append(ids, s.GetSignal().GetSourceId())
	}
	if strings.Join(ids, ",") != "GIN6,GIN5,GIN4,GIN3,GIN2,GIN1,GIN0" {
		t.Fatalf("GN, two a page: %v, want oldest first", ids)
	}
	// since inclusive, until exclusive: GIN3 (t0-60d) and GIN2 (t0-40d).
	ranged := storeAll(t, svc, &demarchev1.SignalsQuery{CountryCode: "GN", Since: timestamppb.New(t0.AddDate(0, 0, -60)), Until: timestamppb.New(t0.AddDate(0, 0, -20))})
	if len(ranged) != 2 || ranged[0].GetSignal().GetSourceId() != "GIN3" || ranged[1].GetSignal().GetSourceId() != "GIN2" {
		t.Fatalf("range: %v", ranged)
	}
	if _, err := svc.Signals(ctx, &demarchev1.SignalsQuery{CountryCode: "XX", Limit: 9000}); err == nil ||
		!strings.Contains(err.Error(), "country_code") || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("bad query: %v", err)
	}
}

// TestBacktestFromTheStoreEqualsTheFile: a file imported, then backtested
// from the store, gives the backtest of the file itself.
func TestBacktestFromTheStoreEqualsTheFile(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(acledHeader)
	day := func(i int) string {
		return time.Date(2022, 3, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i).Format("2006-01-02")
	}
	for i := range 40 {
		b.WriteString(acledRow(fmt.Sprintf("GIN%d", i), day(i*2), "Battles", "Armed clash", "Military Forces of Guinea", "Mutineers", "12", "324", "Guinea", "Conakry", "Mutiny.", fmt.Sprint(i%7)))
		b.WriteString(acledRow(fmt.Sprintf("KEN%d", i), day(i*3), "Riots", "Violent demonstration", "Rioters", "", "50", "404", "Kenya", "Kisumu", "Protest.", fmt.Sprint(i%3)))
	}
	file := b.String()
	opts := earlywarning.BacktestOptions{DefaultThreshold: 10}
	fromFile, err := earlywarning.Backtest(strings.NewReader(file), earlywarning.FormatACLED, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.Server(t)
	svc := startService(t, srv.URL(), earlywarning.Config{Now: time.Now}, newFakeOpener())
	sum, err := earlywarning.ImportWith(context.Background(), strings.NewReader(file), earlywarning.FormatACLED, svc.Ingest, earlywarning.ImportOptions{Batch: 17})
	if err != nil || sum.Accepted != 80 {
		t.Fatalf("import: %+v %v", sum, err)
	}
	var sigs []*demarchev1.Signal
	for _, s := range storeAll(t, svc, &demarchev1.SignalsQuery{Limit: 25}) {
		sigs = append(sigs, s.GetSignal())
	}
	fromStore, err := earlywarning.BacktestRows(earlywarning.StoredRows(sigs), opts)
	if err != nil {
		t.Fatal(err)
	}
	if fromStore.Events != 80 || fromStore.Read != 80 || !fromStore.From.Equal(fromFile.From) || !fromStore.To.Equal(fromFile.To) {
		t.Fatalf("store: %d events of %d read, %s to %s; file %s to %s", fromStore.Events, fromStore.Read, fromStore.From, fromStore.To, fromFile.From, fromFile.To)
	}
	if !reflect.DeepEqual(fromStore.Situations, fromFile.Situations) {
		t.Fatalf("situations differ:\nstore %+v\nfile  %+v", fromStore.Situations, fromFile.Situations)
	}
	crossings := 0
	for _, s := range fromFile.Situations {
		crossings += len(s.Crossings)
	}
	if crossings == 0 {
		t.Fatal("the file crosses nowhere: the comparison would prove little")
	}
}
