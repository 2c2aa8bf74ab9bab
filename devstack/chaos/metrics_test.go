package chaos_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/metrics/metricstest"
)

// TestEachServiceServesItsMetrics runs the services as their own processes,
// as deploy/ does, and scrapes each one's /metrics: every metric
// docs/operations.md's "What to watch" names is served from its start by the
// service that owns it (metricstest.Watched: its consumers' lag and dead
// letters at 0, its endpoints' request counters at 0, the worker's deadline
// breaches and warning-to-action series, the audit and ledger alarms),
// and each process says it is ready (demarche_ready 1). A series that a
// process registers only in `demarche dev`, or only once something
// happened, fails here. Funding and the gateway stay in `demarche dev` (it
// opens the funds of a new data folder and answers the gateway this
// platform waits for): their series are read from dev's /metrics.
func TestEachServiceServesItsMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes of the real stack; skipped with -short")
	}
	bin := buildBinary(t)
	p := newPlatform(t, bin, t.TempDir())
	p.separate = []string{"roster", "audit", "schema", "eventlog", "partners", "earlywarning", "worker"}
	taken := map[int]bool{p.ports.nats: true, p.ports.temporal: true, p.ports.temporalHTTP: true, p.ports.http: true}
	for _, port := range p.metrics {
		taken[port] = true
	}
	for _, name := range p.separate {
		if _, ok := p.metrics[name]; !ok {
			p.metrics[name] = stablePort(t, taken)
		}
	}
	t.Cleanup(func() {
		p.stopAll()
		if t.Failed() {
			t.Logf("logs:\n%s", p.logTails(20))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := p.startDev(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range p.separate {
		if err := p.startService(name); err != nil {
			t.Fatal(err)
		}
	}
	// owners is what each /metrics endpoint serves: its own service, or
	// the services dev runs.
	owners := map[string][]string{"dev": {"funding", "gateway"}}
	for _, name := range p.separate {
		owners[name] = []string{name}
	}
	covered := []string{}
	for endpoint, svcs := range owners {
		covered = append(covered, svcs...)
		url := "http://" + p.metricsAddr(endpoint)
		err := eventually(ctx, 3*time.Minute, endpoint+" serves its watched metrics ("+url+"/metrics)", func() (bool, string) {
			served, err := metricstest.Scrape(url)
			if err != nil {
				return false, err.Error()
			}
			var missing []string
			for _, svc := range svcs {
				missing = append(missing, metricstest.Missing(served, svc, true)...)
			}
			if served["demarche_ready"] != 1 {
				missing = append(missing, fmt.Sprintf("demarche_ready 1 (is %v)", served["demarche_ready"]))
			}
			if len(missing) == 0 {
				t.Logf("%s (%s): %d series, every watched metric of its own", endpoint, strings.Join(svcs, ", "), len(served))
			}
			return len(missing) == 0, strings.Join(missing, ", ")
		})
		if err != nil {
			t.Error(err)
		}
	}
	for _, svc := range metricstest.Services {
		if !slices.Contains(covered, svc) {
			t.Errorf("no process of this test runs %s: its metrics were not scraped", svc)
		}
	}
}
