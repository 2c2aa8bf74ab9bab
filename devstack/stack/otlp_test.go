package stack_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/devstack/stack"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// otlpCollector is an OTLP/gRPC trace collector inside the test: it keeps
// every span sent, with its resource's service.name.
type otlpCollector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []collectedSpan
}

type collectedSpan struct {
	service, name, traceID string
}

func (c *otlpCollector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		var service string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.spans = append(c.spans, collectedSpan{service: service, name: sp.GetName(), traceID: hex.EncodeToString(sp.GetTraceId())})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// trace is the spans of one trace, as "service name".
func (c *otlpCollector) trace(id string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, sp := range c.spans {
		if sp.traceID == id {
			out = append(out, sp.service+" "+sp.name)
		}
	}
	sort.Strings(out)
	return out
}

// TestOTLPOneTraceFromSignalToFunding runs the stack with --otlp-endpoint
// pointing at a collector and follows one trace across the services: a
// partner's system sends a signal that crosses the threshold (its
// traceparent on the NATS message), early warning opens the crisis, the
// worker runs it, the operations centre's tool records the triage and a
// funding request through the gateway with the same traceparent, the worker
// files the request with the funding service. Every span arrives at the
// collector, each under its service's name, in the one trace.
func TestOTLPOneTraceFromSignalToFunding(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	col := &otlpCollector{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	s, err := stack.Start(context.Background(), stack.Config{DataDir: t.TempDir(), TemporalLogLevel: "error", NoUI: true, OTLPEndpoint: l.Addr().String()},
		fileLogger(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			s.Stop()
		}
	}()
	nc := natsConn(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	watch := watchCrossing(t, nc, "TG", demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE)

	// The partner's system: a trace of its own, sent as traceparent.
	var tid trace.TraceID
	var sid trace.SpanID
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	partner := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), partner)
	if err := earlywarning.PublishSignal(ctx, js, "/test", &demarchev1.Signal{Source: demarchev1.OperatorSource, CountryCode: "TG",
		CrisisType: demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE, Weight: 100, ObservedAt: timestamppb.Now(),
		Summary: "polling stations attacked", Location: "Lomé"}); err != nil {
		t.Fatal(err)
	}
	id, _ := watch.openedMsg(60 * time.Second)

	// The operations centre's tool acts on the warning in its trace.
	traceparent := "00-" + tid.String() + "-" + sid.String() + "-01"
	desk := apiCaller{t: t, url: s.APIURL(), token: testToken(t, s, "amara")}
	waitPendingHTTP(t, desk, id, "triage")
	if code, _, raw := desk.call("POST", "/v1/crises/"+id+"/decisions", `{"rationale": "credible reports", "triage": {"assessment": "polling stations attacked"}}`,
		"traceparent", traceparent); code != http.StatusOK {
		t.Fatalf("triage: %d %s", code, raw)
	}
	waitPendingHTTP(t, desk, id, "good-offices")
	if code, _, raw := desk.call("POST", "/v1/crises/"+id+"/decisions",
		`{"rationale": "venue and travel for the dialogue", "fundingRequest": {"requestId": "FR-1", "fund": "flexible-financing", "amountUsd": 600000, "purpose": "national dialogue"}}`,
		"traceparent", traceparent); code != http.StatusOK {
		t.Fatalf("funding request: %d %s", code, raw)
	}
	waitPendingHTTP(t, desk, id, "funding-decision")

	// Stopping flushes the batches.
	s.Stop()
	stopped = true
	got := col.trace(tid.String())
	t.Logf("trace %s at the collector (%d spans):\n  %s", tid, len(got), strings.Join(got, "\n  "))
	for _, want := range []string{
		"demarche-earlywarning earlywarning threshold crossed",
		"demarche-earlywarning SignalWithStartWorkflow:",
		// The workflow's own RunWorkflow span ends with its run: a crisis
		// still open has not sent it; its children are here.
		"demarche-worker HandleSignal:crisis.warning",
		"demarche-worker StartActivity:PublishCrisisEvents",
		"demarche-gateway POST /v1/crises/{id}/decisions",
		"demarche-gateway UpdateWorkflow:",
		"demarche-worker HandleUpdate:",
		"demarche-worker RunActivity:FileFundingRequest",
		"demarche-funding demarche.funding.request",
	} {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, want)
		}
		if !found {
			t.Errorf("no span %q in the signal's trace", want)
		}
	}
}
