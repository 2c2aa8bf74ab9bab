package earlywarning_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// eventRows are 24 coup events in Guinea, two a day from t0, with
// fatalities that differ, in event-time order.
func eventRows() []string {
	var rows []string
	for i := range 24 {
		day := t0.Add(time.Duration(i/2) * 24 * time.Hour)
		rows = append(rows, acledRow(fmt.Sprintf("GIN%04d", i+1), day.Format("2006-01-02"), "Battles", "Armed clash", "Military Forces of Guinea", "Mutineers", "11", "324", "Guinea", "Conakry",
			"Soldiers attempted a coup near the palace.", fmt.Sprint(1+(i*7)%13)))
	}
	return rows
}

// importedCrossing imports a file into a service of its own and answers the
// crossing's event time, the opened crisis's first signal, and how many
// sorted chunks the import went through.
func importedCrossing(t *testing.T, file string, chunk int) (crossedAt, first time.Time, history []*demarchev1.ScorePoint, chunks int) {
	t.Helper()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	s := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 25}, opener)
	ctx := context.Background()
	sum, err := earlywarning.ImportWith(ctx, strings.NewReader(file), earlywarning.FormatACLED, s.Ingest, earlywarning.ImportOptions{Batch: 5, SortChunk: chunk})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Accepted != 24 || sum.Live != 24 {
		t.Fatalf("import: %d accepted, %d live, want 24, 24 (%v)", sum.Accepted, sum.Live, sum.Rejected)
	}
	if !sum.From.AsTime().Equal(t0) || !sum.To.AsTime().Equal(t0.Add(11*24*time.Hour)) {
		t.Fatalf("import sent events from %s to %s, want %s to %s", sum.From.AsTime(), sum.To.AsTime(), t0, t0.Add(11*24*time.Hour))
	}
	sc, err := s.Score(ctx, "GN", coup)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sc.GetHistory() {
		if p.GetCrossing() {
			crossedAt = p.GetAt().AsTime()
		}
	}
	_, opened := opener.snapshot()
	if len(opened) != 1 {
		t.Fatalf("%d crises opened, want 1", len(opened))
	}
	for _, in := range opened {
		first = in.GetCrisis().GetFirstSignalAt().AsTime()
	}
	return crossedAt, first, sc.GetHistory(), sum.Sorted
}

// TestOutOfOrderFileCrossesAtTheSameEventTime: a file listing its events in
// any order scores as the sorted file does: the same crossing (in event
// time, the same as a backtest's), the same first signal, a score history in
// event-time order, also when the import sorts it through temporary files
// (a chunk of 4 signals: 6 chunks merged).
func TestOutOfOrderFileCrossesAtTheSameEventTime(t *testing.T) {
	t.Parallel()
	rows := eventRows()
	sorted := acledHeader + strings.Join(rows, "")
	shuffled := append([]string(nil), rows...)
	r := rand.New(rand.NewPCG(22, 2))
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	// The newest event first: file order would date every point on 12 Feb.
	for i, row := range shuffled {
		if strings.HasPrefix(row, "GIN0024,") {
			shuffled[0], shuffled[i] = shuffled[i], shuffled[0]
		}
	}
	outOfOrder := acledHeader + strings.Join(shuffled, "")

	bt, err := earlywarning.Backtest(strings.NewReader(sorted), earlywarning.FormatACLED, earlywarning.BacktestOptions{DefaultThreshold: 25})
	if err != nil {
		t.Fatal(err)
	}
	if len(bt.Situations) != 1 || bt.Situations[0].FirstCrossing == nil {
		t.Fatalf("backtest: %+v", bt.Situations)
	}
	want := *bt.Situations[0].FirstCrossing
	if want.Equal(t0) || want.Equal(t0.Add(11*24*time.Hour)) {
		t.Fatalf("the backtest crosses on %s: the test wants a crossing inside the file's span", want)
	}

	sortedAt, sortedFirst, _, _ := importedCrossing(t, sorted, 0)
	for _, chunk := range []int{0, 4} {
		at, first, history, chunks := importedCrossing(t, outOfOrder, chunk)
		if chunk == 4 && chunks != 6 {
			t.Fatalf("chunk 4: sorted through %d chunks, want 6", chunks)
		}
		if !at.Equal(want) || !sortedAt.Equal(want) {
			t.Fatalf("chunk %d: the out-of-order file crossed at %s, the sorted one at %s, the backtest at %s", chunk, at, sortedAt, want)
		}
		if !first.Equal(t0) || !sortedFirst.Equal(t0) {
			t.Fatalf("chunk %d: first signal %s (sorted file: %s), want the earliest event %s", chunk, first, sortedFirst, t0)
		}
		for i := 1; i < len(history); i++ {
			if history[i].GetAt().AsTime().Before(history[i-1].GetAt().AsTime()) {
				t.Fatalf("chunk %d: score history not in event time: point %d at %s after %s", chunk, i, history[i].GetAt().AsTime(), history[i-1].GetAt().AsTime())
			}
		}
		if len(history) != 24 || !history[0].GetAt().AsTime().Equal(t0) {
			t.Fatalf("chunk %d: %d points from %s, want 24 from %s", chunk, len(history), history[0].GetAt().AsTime(), t0)
		}
	}
}

// TestOneWarningPerCrossingAndASummaryPerImport: an import of 40 events in
// batches of 5 that crosses early raises one warning for the crossing and
// attaches one summary warning at its end, not one per batch; every signal
// it attached names the crisis in the score's history, and a second import
// attaches its own summary.
func TestOneWarningPerCrossingAndASummaryPerImport(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	s := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 10}, opener)
	ctx := context.Background()
	file := func(prefix string, from, n int) string {
		var b strings.Builder
		b.WriteString(acledHeader)
		for i := range n {
			day := t0.Add(time.Duration((from+i)/4) * 24 * time.Hour)
			b.WriteString(acledRow(fmt.Sprintf("%s%03d", prefix, i), day.Format("2006-01-02"), "Battles", "Armed clash", "Military Forces of Guinea", "Mutineers", "11", "324", "Guinea", "Conakry",
				"Soldiers attempted a coup near the palace.", "2"))
		}
		return b.String()
	}
	sum, err := earlywarning.ImportWith(ctx, strings.NewReader(file("GINA", 0, 40)), earlywarning.FormatACLED, s.Ingest, earlywarning.ImportOptions{Batch: 5})
	if err != nil {
		t.Fatal(err)
	}
	calls, opened := opener.snapshot()
	if sum.Accepted != 40 || len(opened) != 1 || len(sum.Crises) != 1 || !sum.Crises[0].GetOpened() {
		t.Fatalf("import: %d accepted, %d crises opened, touched %v", sum.Accepted, len(opened), sum.Crises)
	}
	if len(calls) != 2 {
		t.Fatalf("%d warnings attached, want 2 (the crossing's and the import's summary): %v", len(calls), calls)
	}
	if w := calls[0].w.GetSummary(); !strings.HasPrefix(w, "Threshold crossed") {
		t.Fatalf("first warning: %q", w)
	}
	sc, err := s.Score(ctx, "GN", coup)
	if err != nil {
		t.Fatal(err)
	}
	crossedAt := 0
	for i, p := range sc.GetHistory() {
		if p.GetCrossing() {
			crossedAt = i
		}
	}
	after := len(sc.GetHistory()) - crossedAt - 1 // signals attached after the crossing
	if w := calls[1].w.GetSummary(); !strings.Contains(w, "Import "+sum.ImportID+": "+fmt.Sprint(after)+" more signal(s) ("+fmt.Sprint(2*after)+" deaths)") || !strings.Contains(w, "% of the threshold") {
		t.Fatalf("summary warning: %q (%d signals after the crossing)", w, after)
	}
	for _, p := range sc.GetHistory()[crossedAt:] {
		if p.GetCrisisId() != sc.GetCrisisId() {
			t.Fatalf("a point after the crossing names crisis %q, not %s", p.GetCrisisId(), sc.GetCrisisId())
		}
	}
	// The next import, above the threshold all along: one summary.
	if _, err := earlywarning.ImportWith(ctx, strings.NewReader(file("GINB", 40, 12)), earlywarning.FormatACLED, s.Ingest, earlywarning.ImportOptions{Batch: 5}); err != nil {
		t.Fatal(err)
	}
	if calls, _ = opener.snapshot(); len(calls) != 3 || !strings.Contains(calls[2].w.GetSummary(), ": 12 more signal(s) (24 deaths)") {
		t.Fatalf("after the second import: %d warnings, last %q", len(calls), calls[len(calls)-1].w.GetSummary())
	}
}
