package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/metrics"
)

// TestHTTPMetrics: each answer is counted under its route pattern (not its
// path: two crises are one series), method and status, with its time; a
// path no route matches and a made-up method fall under bounded labels; a
// route's 200 counter is served at 0 before its first request.
func TestHTTPMetrics(t *testing.T) {
	iss := issuer(t)
	api := httptest.NewServer((&Service{log: zap.NewNop(), authn: iss.Verifier()}).Handler())
	defer api.Close()
	const route = "/v1/crises/{id}/controls/{control}"
	if got := testutil.ToFloat64(metrics.HTTPRequests.WithLabelValues(route, "POST", "200")); got != 0 {
		t.Fatalf("%s's 200 counter at start: %v, want 0", route, got)
	}
	before := func(route, method, code string) float64 {
		return testutil.ToFloat64(metrics.HTTPRequests.WithLabelValues(route, method, code))
	}
	forbidden := before(route, "POST", "403")
	unmatched := before("unmatched", "GET", "404")
	other := before("unmatched", "other", "405")
	auditor := "Bearer " + mint(t, iss, "auditor", "auditor")
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/crises/X-1/controls/escalate"},
		{"POST", "/v1/crises/X-2/controls/escalate"},
		{"GET", "/no/such/path/X-3"},
		{"BREW", "/v1/crises/X-1/controls/escalate"},
	} {
		req, _ := http.NewRequest(c.method, api.URL+c.path, strings.NewReader("{}"))
		req.Header.Set("Authorization", auditor)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := before(route, "POST", "403") - forbidden; got != 2 {
		t.Errorf("two escalations refused to an auditor counted %v times under %s", got, route)
	}
	if got := before("unmatched", "GET", "404") - unmatched; got != 1 {
		t.Errorf("an unknown path counted %v times under unmatched", got)
	}
	if got := before("unmatched", "other", "405") - other; got != 1 {
		t.Errorf("a made-up method counted %v times under unmatched/other", got)
	}
	rec := httptest.NewRecorder()
	metrics.Handler(false).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if strings.Contains(body, "X-1") || strings.Contains(body, "X-2") || strings.Contains(body, "/no/such/path") {
		t.Error("a raw path or crisis id is a label value on /metrics")
	}
	if !strings.Contains(body, `demarche_http_request_duration_seconds_count{method="POST",route="`+route+`"}`) {
		t.Error("the request's time is not on /metrics")
	}
}

// TestHTTPSpans: each request is a server span named by its method and route
// pattern (never the raw path), in the caller's trace when it sends a
// traceparent, else in a trace of its own.
func TestHTTPSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(prev)
	iss := issuer(t)
	api := httptest.NewServer((&Service{log: zap.NewNop(), authn: iss.Verifier()}).Handler())
	defer api.Close()
	const caller = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, traceparent := range []string{"00-" + caller + "-00f067aa0ba902b7-01", ""} {
		req, _ := http.NewRequest("POST", api.URL+"/v1/crises/X-1/controls/escalate", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+mint(t, iss, "auditor", "auditor"))
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want one per request", len(spans))
	}
	for i, sp := range spans {
		if sp.Name() != "POST /v1/crises/{id}/controls/{control}" || sp.SpanKind() != trace.SpanKindServer {
			t.Errorf("span %q of kind %v, want the route's server span", sp.Name(), sp.SpanKind())
		}
		if joined := sp.SpanContext().TraceID().String() == caller; joined != (i == 0) {
			t.Errorf("request %d: span in trace %s; the caller's traceparent named %s", i, sp.SpanContext().TraceID(), caller)
		}
	}
}
