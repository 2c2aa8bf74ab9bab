// Package memory_test checks what bounds the worker's memory, in a process of
// its own: the Temporal SDK's workflow cache is one per process, so this
// cannot share a test binary with other workers.
package memory_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/temporalembed"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/metrics/metricstest"
	"github.com/demarche/demarche/pkg/natstest"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/worker"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestWorkerHoldsAtMostItsCacheSize: with a workflow cache of 3, six waiting
// crises leave at most 3 workflows in the worker's memory (the SDK evicts the
// others, to replay them at their next task) and every crisis still answers.
func TestWorkerHoldsAtMostItsCacheSize(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded Temporal; skipped with -short")
	}
	const size, crises = 3, 6
	worker.LimitWorkflowCache(size) // before the server's own system workers make the cache
	creds := t.TempDir()
	srv, err := temporalembed.Start(temporalembed.Options{
		DatabaseFile: filepath.Join(t.TempDir(), "temporal.db"), Namespace: "demarche",
		SearchAttributes: temporalx.SearchAttributes(), LogLevel: "error", CredentialsDir: creds,
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop() }()
	defer temporalx.SetCredentialsFor(srv.HostPort(), creds)()
	bus := natstest.Server(t)
	ctx := context.Background()
	w, err := worker.Start(ctx, worker.Config{NATSURL: bus.URL(), TemporalAddress: srv.HostPort(), Namespace: "demarche",
		WorkflowCacheSize: size}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Opens crises as the gateway does.
	tc, err := temporalx.Dial(ctx, srv.HostPort(), "demarche", zap.NewNop(), temporalx.As(temporalx.IdentityGateway))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	var ids []string
	for i := range crises {
		cr := crisis.NewCrisis(crisis.NewCrisisParams{
			Title: fmt.Sprintf("Cache test %d", i), CountryCode: []string{"GN", "ML", "NE", "BF", "SN", "CI"}[i],
			CrisisType: demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE, Severity: 3, OpenedBy: "test",
			Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC,
		}, time.Now())
		if _, err := crisis.Open(ctx, tc, &demarchev1.CrisisWorkflowInput{Crisis: cr}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cr.GetId())
	}
	// Every crisis answers a query: each ran its first workflow task, so was
	// in the cache once; asked again after the cache filled, the evicted ones
	// answer by replaying their history.
	for round := range 2 {
		for _, id := range ids {
			deadline := time.Now().Add(60 * time.Second)
			for {
				v, err := tc.QueryWorkflow(ctx, crisis.WorkflowID(id), "", crisis.QueryState)
				if err == nil && v.HasValue() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("round %d: crisis %s never answered: %v", round, id, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	// Without the limit taking effect (set after the server's system workers
	// made the cache), this was 6.
	if held := scrape(t)["temporal_sticky_cache_size"]; held > size || held < 1 {
		t.Errorf("the worker holds %v workflows, want 1..%d", held, size)
	}
}

// scrape reads the process's Prometheus metrics: counters summed over their
// labels, gauges at their highest.
func scrape(t *testing.T) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	metrics.Handler(false).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	series, err := metricstest.Parse(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, v := range series {
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		if strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_sum") {
			out[name] += v
		} else {
			out[name] = max(out[name], v) // a gauge the SDK repeats per workflow type
		}
	}
	return out
}
