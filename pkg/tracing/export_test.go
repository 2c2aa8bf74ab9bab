package tracing

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// receiver is an OTLP/gRPC trace collector: it keeps every span it is sent,
// with its resource's service.name.
type receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	service, name string
	traceID       string
}

func (r *receiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		var service string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{service: service, name: sp.GetName(), traceID: string(sp.GetTraceId())})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func startReceiver(t *testing.T) (*receiver, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return r, l.Addr().String()
}

// TestExportOff: without an endpoint nothing is made: no exporter, no
// provider of a service, the global TracerProvider as it was, spans not
// recorded.
func TestExportOff(t *testing.T) {
	before := otel.GetTracerProvider()
	exp, err := Export(context.Background(), "", "dev", "funding", "gateway")
	if err != nil || exp != nil {
		t.Fatalf("Export with no endpoint = %v, %v; want nil, nil", exp, err)
	}
	if providers.Load() != nil {
		t.Error("a service's TracerProvider was installed")
	}
	if otel.GetTracerProvider() != before {
		t.Error("the global TracerProvider changed")
	}
	_, span := Tracer("funding").Start(context.Background(), "x")
	if span.IsRecording() {
		t.Error("a span is recorded with tracing off")
	}
	span.End()
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of no exporter: %v", err)
	}
}

func TestExportRefusesBadEndpoints(t *testing.T) {
	before := otel.GetTracerProvider()
	for _, ep := range []string{"localhost", "ftp://collector:4317", "http://collector:4317/v1/traces", "collector:http", ":4317", "collector:70000"} {
		exp, err := Export(context.Background(), ep, "dev")
		if !errors.Is(err, ErrBadEndpoint) || !strings.Contains(err.Error(), ep) || !strings.Contains(err.Error(), "host:port") {
			t.Errorf("Export(%q) = %v; want ErrBadEndpoint naming it and what is allowed", ep, err)
		}
		if exp != nil {
			t.Errorf("Export(%q) made an exporter", ep)
		}
	}
	if otel.GetTracerProvider() != before || providers.Load() != nil {
		t.Error("a refused endpoint changed the TracerProviders")
	}
}

// TestExportPerService sends one trace across three services of one process
// to a collector, and finds each span under its service's name.
func TestExportPerService(t *testing.T) {
	for _, form := range []string{"host:port", "http://host:port"} {
		t.Run(form, func(t *testing.T) {
			rec, addr := startReceiver(t)
			ep := addr
			if strings.HasPrefix(form, "http://") {
				ep = "http://" + addr
			}
			exp, err := Export(context.Background(), ep, "dev", "funding", "gateway")
			if err != nil {
				t.Fatal(err)
			}
			ctx, root := Tracer("gateway").Start(context.Background(), "POST /v1/crises/{id}/decisions")
			ctx, child := Tracer("funding").Start(ctx, "demarche.funding.request")
			_, other := Tracer("not-a-service-here").Start(ctx, "elsewhere")
			other.End()
			child.End()
			root.End()
			if err := exp.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if providers.Load() != nil {
				t.Error("the services' providers outlive Shutdown")
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			want := map[string]string{"POST /v1/crises/{id}/decisions": "demarche-gateway", "demarche.funding.request": "demarche-funding", "elsewhere": "demarche-dev"}
			if len(rec.spans) != len(want) {
				t.Fatalf("collector got %d spans, want %d: %+v", len(rec.spans), len(want), rec.spans)
			}
			for _, sp := range rec.spans {
				if want[sp.name] != sp.service {
					t.Errorf("span %q of service %q, want %q", sp.name, sp.service, want[sp.name])
				}
				if sp.traceID != rec.spans[0].traceID {
					t.Errorf("span %q is not in the trace of the others", sp.name)
				}
			}
		})
	}
}
