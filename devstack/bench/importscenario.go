package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// importCountries are the countries of the import scenario's file (ACLED
// names, as a real file spells them).
var importCountries = []string{"Guinea", "Mali", "Niger", "Burkina Faso", "Nigeria", "Chad", "Sudan", "South Sudan", "Ethiopia", "Somalia",
	"Kenya", "Uganda", "Cameroon", "Mozambique", "Libya", "Yemen", "Syria", "Iraq", "Myanmar", "Afghanistan"}

// importNotes vary the rows' text (and so their classification) as a real file does.
var importNotes = []struct{ eventType, sub, notes string }{
	{"Battles", "Armed clash", "Clashes between militias, heavy gunfire, several killed."},
	{"Violence against civilians", "Attack", "Gunmen attacked a village market."},
	{"Protests", "Excessive force against protesters", "Police fired on protesters after the vote count."},
	{"Strategic developments", "Change to group/activity", "Soldiers seized the state broadcaster, officials said."},
}

// importFile is an ACLED file of rows events, the i-th dated days[i%len]
// days before end, ids prefixed by prefix.
func importFile(rows int, prefix string, end time.Time, days int) string {
	var b strings.Builder
	b.WriteString("event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,interaction,civilian_targeting,iso,region,country,admin1,admin2,location,latitude,longitude,source,notes,fatalities,timestamp,tags\n")
	for i := range rows {
		day := end.AddDate(0, 0, -(i % days))
		n := importNotes[i%len(importNotes)]
		fmt.Fprintf(&b, "%s%d,%s,%d,1,Political violence,%s,%s,Actor A,Actor B,11,,0,Region,%s,Admin,,Town,9.5,-13.7,Local press,\"%s\",%d,1676900000,\n",
			prefix, i, day.Format("2006-01-02"), day.Year(), n.eventType, n.sub, importCountries[i%len(importCountries)], n.notes, i%7)
	}
	return b.String()
}

// importScenario: the same file imported twice through the ingest endpoint
// (as `demarche warning import` does through the gateway), once dated in the
// last days (live: its situations cross, crises open, the import's summary
// warnings go to them) and once three years back (historical: scored, opens
// nothing). The ratio is live ÷ historical rows per second (target ≥ 0.8).
// On the embedded stack only: the ingest endpoint answers the gateway alone,
// whose credentials a deployment does not give the bench.
func (r *runner) importScenario(ctx context.Context) error {
	if r.st == nil {
		r.progress("  import: skipped (the ingest endpoint answers the gateway alone; measured on the embedded stack)")
		return nil
	}
	rows := r.cfg.Sizes.Import
	nc, _, err := natsx.Connect(r.st.NATSURLFor(natsauth.Gateway), "demarche-bench-import", r.log)
	if err != nil {
		return fmt.Errorf("connect as the gateway: %w", err)
	}
	defer nc.Close()
	ingest := earlywarning.IngestOver(nc)
	run := func(prefix string, end time.Time) (Measure, *earlywarning.ImportSummary, error) {
		data := importFile(rows, prefix+randomHex(3)+"-", end, 10)
		start := time.Now()
		sum, err := earlywarning.ImportWith(ctx, strings.NewReader(data), earlywarning.FormatACLED, ingest,
			earlywarning.ImportOptions{Source: demarchev1.PersonSource("bench")})
		el := time.Since(start)
		if err != nil {
			return Measure{}, sum, err
		}
		failed := rows - sum.Accepted
		return measure(fmt.Sprintf("%d-row ACLED file imported over the ingest endpoint (batches of %d), rows/s", rows, earlywarning.DefaultBatch),
			sum.Accepted, failed, el, nil), sum, nil
	}
	now := time.Now().UTC()
	hist, hsum, err := run("H", now.AddDate(-3, 0, 0))
	if err != nil {
		return fmt.Errorf("historical import: %w", err)
	}
	live, lsum, err := run("L", now)
	if err != nil {
		return fmt.Errorf("live import: %w", err)
	}
	// The live import opened crises in its situations: no later scenario
	// may take them for fresh ones.
	r.mu.Lock()
	for _, c := range lsum.Crises {
		r.used[c.GetSituation()] = true
	}
	r.mu.Unlock()
	live.Extra = map[string]float64{"live": float64(lsum.Live), "crises": float64(len(lsum.Crises))}
	hist.Extra = map[string]float64{"historical": float64(hsum.Historical)}
	res := Result{Scenario: "import", Variant: fmt.Sprintf("%d rows live vs historical", rows), Demarche: live, Baseline: &hist}
	res.ratioThroughput()
	res.judge("live ≥ 0.8× historical", res.Ratio >= 0.8)
	r.add(res)
	return nil
}
