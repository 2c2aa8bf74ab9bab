package earlywarning_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// BenchmarkIngest times an ACLED file of b.N rows through the whole import
// path (parse, classify, validate, batches of 500 over the ingest endpoint,
// de-duplication and scoring in JetStream key-value buckets) against a bare
// baseline in the same run: reading the same file with encoding/csv. It
// reports signals/s and the ratio to the baseline (x-baseline). Rows spread
// over 40 countries and 4 crisis types, 30 days, well below the threshold
// (the opener is a no-op fake; Temporal is not measured here).
func BenchmarkIngest(b *testing.B) {
	srv := natstest.Server(b)
	startService(b, srv.URL(), earlywarning.Config{DefaultThreshold: earlywarning.MaxThreshold, Now: time.Now}, newFakeOpener())
	nc, _ := natstest.Connect(b, srv.URL())
	ingest := earlywarning.IngestOver(nc)
	countries := []string{"Guinea", "Mali", "Niger", "Burkina Faso", "Nigeria", "Chad", "Sudan", "South Sudan", "Ethiopia", "Somalia",
		"Kenya", "Uganda", "Cameroon", "Democratic Republic of Congo", "Central African Republic", "Mozambique", "Libya", "Yemen", "Syria", "Iraq",
		"Ukraine", "Myanmar", "Afghanistan", "Pakistan", "India", "Bangladesh", "Philippines", "Colombia", "Mexico", "Haiti",
		"Venezuela", "Brazil", "Ecuador", "Peru", "Georgia", "Armenia", "Azerbaijan", "Lebanon", "Palestine", "Benin"}
	notes := []string{"Clashes between militias, \"heavy\" gunfire, several killed.", "Supporters of a candidate attacked a polling station.",
		"Soldiers attempted a coup, officials said.", "Protesters marched; police used tear gas.\nNo casualties."}
	var sb strings.Builder
	sb.WriteString(acledHeader)
	for i := range b.N {
		day := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i%30)
		sb.WriteString(acledRow(fmt.Sprintf("EV%d", i), day.Format("2006-01-02"), "Battles", "Armed clash", "A", "B", "44", "",
			countries[i%len(countries)], "Town", notes[i%len(notes)], fmt.Sprint(i%7)))
	}
	data := sb.String()
	ctx := context.Background()
	b.ResetTimer()

	start := time.Now()
	r := csv.NewReader(strings.NewReader(data))
	rows := 0
	for {
		if _, err := r.Read(); err == io.EOF {
			break
		} else if err != nil {
			b.Fatal(err)
		}
		rows++
	}
	base := time.Since(start)

	start = time.Now()
	sum, err := earlywarning.ImportWith(ctx, strings.NewReader(data), earlywarning.FormatACLED, ingest, earlywarning.ImportOptions{Batch: earlywarning.DefaultBatch, Source: demarchev1.PersonSource("bench")})
	if err != nil {
		b.Fatal(err)
	}
	ours := time.Since(start)
	if rows != b.N+1 || sum.Accepted != b.N {
		b.Fatalf("baseline read %d rows, import accepted %d of %d: %v", rows, sum.Accepted, b.N, sum.Rejected)
	}
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "baseline-ns/op")
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N), "demarche-ns/op")
	b.ReportMetric(float64(ours)/float64(base), "x-baseline")
	b.ReportMetric(float64(b.N)/ours.Seconds(), "signals/s")
}
