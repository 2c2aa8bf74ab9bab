package natsrpc

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/metrics/metricstest"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestRequestMetrics: an endpoint's request and error counters are on
// /metrics at 0 once Ready is called with its service, and each answer is
// counted under its endpoint subject and code, errors apart, with its time.
func TestRequestMetrics(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	svc, err := micro.AddService(nc, micro.Config{Name: "metered", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	const subject = "metered.score"
	h := Handler(func() *demarchev1.ScoreRequest { return &demarchev1.ScoreRequest{} },
		func(_ context.Context, req *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error) {
			if req.GetCountryCode() == "ML" {
				return nil, fmt.Errorf("%w: no such situation", errs.ErrNotFound)
			}
			return &demarchev1.ScoreResponse{Score: 1}, nil
		})
	if err := svc.AddGroup("metered").AddEndpoint("score", h); err != nil {
		t.Fatal(err)
	}
	if err := Ready(nc, svc); err != nil {
		t.Fatal(err)
	}
	served, err := metricstestScrape()
	if err != nil {
		t.Fatal(err)
	}
	for _, series := range []string{
		`demarche_rpc_requests_total{code="200",endpoint="metered.score"}`,
		`demarche_rpc_errors_total{endpoint="metered.score"}`,
	} {
		if v, ok := served[series]; !ok || v != 0 {
			t.Errorf("%s: %v (served %v), want 0 from the start", series, v, ok)
		}
	}
	ctx := context.Background()
	var resp demarchev1.ScoreResponse
	for range 3 {
		if err := Call(ctx, nc, subject, valid, &resp); err != nil {
			t.Fatal(err)
		}
	}
	if err := Call(ctx, nc, subject, &demarchev1.ScoreRequest{CountryCode: "ML", CrisisType: valid.GetCrisisType()}, &resp); err == nil {
		t.Fatal("ML answered, want not found")
	}
	if got := testutil.ToFloat64(metrics.RPCRequests.WithLabelValues(subject, "200")); got != 3 {
		t.Errorf("200s counted %v, want 3", got)
	}
	if got := testutil.ToFloat64(metrics.RPCRequests.WithLabelValues(subject, errs.Code(errs.ErrNotFound))); got != 1 {
		t.Errorf("404s counted %v, want 1", got)
	}
	if got := testutil.ToFloat64(metrics.RPCErrors.WithLabelValues(subject)); got != 1 {
		t.Errorf("errors counted %v, want 1", got)
	}
	if n := testutil.CollectAndCount(metrics.RPCDuration, "demarche_rpc_request_duration_seconds"); n == 0 {
		t.Error("no request duration observed")
	}
}

// metricstestScrape reads what the process's /metrics handler serves.
func metricstestScrape() (map[string]float64, error) {
	rec := httptest.NewRecorder()
	metrics.Handler(false).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return metricstest.Parse(rec.Body)
}
