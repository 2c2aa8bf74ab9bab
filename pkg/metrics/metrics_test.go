package metrics_test

import (
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/metrics/metricstest"
)

// documented is every demarche_* metric named in docs/*.md and README.md.
func documented(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("docs: %v %v", files, err)
	}
	files = append(files, "../../README.md")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricstest.NamesIn(string(b)) {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	slices.Sort(out)
	return out
}

// registered is every metric name described by the registry /metrics serves.
func registered() map[string]bool {
	ch := make(chan *prometheus.Desc, 1024)
	go func() {
		for _, c := range metrics.All() {
			c.Describe(ch)
		}
		close(ch)
	}()
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	out := map[string]bool{}
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

// TestEveryDocumentedMetricIsOnTheServedRegistry: a metric the docs tell an
// operator to watch must be on the registry /metrics serves (not on
// Prometheus's default registry, which nothing serves).
func TestEveryDocumentedMetricIsOnTheServedRegistry(t *testing.T) {
	docs := documented(t)
	if !slices.Contains(docs, "demarche_audit_alarms_total") || !slices.Contains(docs, "demarche_funding_ledger_alarms_total") {
		t.Fatalf("the docs name %v: the alarm metrics are missing from them", docs)
	}
	reg := registered()
	for _, name := range docs {
		if !reg[name] {
			t.Errorf("%s is named in the docs but not registered on metrics.Registry", name)
		}
	}
	// And nothing of ours hides on the default registry.
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "demarche_") {
			t.Errorf("%s is on Prometheus's default registry, which /metrics does not serve", mf.GetName())
		}
	}
}

// TestAlarmMetricsServedAtZeroFromStart: before anything happened, /metrics
// serves every alarm series at 0 (so an alert on its rise works from the
// first alarm on).
func TestAlarmMetricsServedAtZeroFromStart(t *testing.T) {
	srv := httptest.NewServer(metrics.Handler(false))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	if _, err := io.Copy(&body, resp.Body); err != nil {
		t.Fatal(err)
	}
	want := []string{`demarche_audit_isolated_chains 0`}
	for _, k := range metrics.AuditAlarmKinds {
		want = append(want, `demarche_audit_alarms_total{kind="`+k+`"} 0`)
	}
	for _, k := range metrics.LedgerAlarmKinds {
		want = append(want, `demarche_funding_ledger_alarms_total{alarm="`+k+`"} 0`)
	}
	for _, w := range want {
		if !strings.Contains(body.String(), w+"\n") {
			t.Errorf("/metrics does not serve %q at start", w)
		}
	}
	if !strings.Contains(body.String(), `demarche_decisions_total{kind="triage"} 0`) {
		t.Error("decision kinds are not served at 0 from the start")
	}
}
