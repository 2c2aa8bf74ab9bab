package stack_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/devstack/stack"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// TestOneTraceFromSignalToCrisis publishes a signal inside a span and finds
// the same trace on the CrisisOpened event the crisis's workflow published
// (NATS headers → early warning → Temporal signal-with-start → workflow →
// local activity → NATS headers), and the Temporal spans in that trace.
func TestOneTraceFromSignalToCrisis(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	defer func() { _ = tp.Shutdown(context.Background()) }()

	s, err := stack.Start(context.Background(), stack.Config{DataDir: t.TempDir(), TemporalLogLevel: "error", NoUI: true}, fileLogger(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	nc := natsConn(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Early warning opens the situation's crisis as a new episode: its
	// WarningRaised names the crisis, whose CrisisOpened carries the trace.
	watch := watchCrossing(t, nc, "TG", demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE)

	ctx, span := tp.Tracer("test").Start(context.Background(), "partner early-warning system reports")
	if err := earlywarning.PublishSignal(ctx, js, "/test", &demarchev1.Signal{Source: demarchev1.OperatorSource, CountryCode: "TG",
		CrisisType: demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE, Weight: 100, ObservedAt: timestamppb.Now(),
		Summary: "polling stations attacked", Location: "Lomé"}); err != nil {
		t.Fatal(err)
	}
	span.End()
	want := span.SpanContext().TraceID()

	id, m := watch.openedMsg(60 * time.Second)
	got := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(context.Background(),
		propagation.HeaderCarrier(http.Header(m.Header)))).TraceID()
	if got != want {
		t.Fatalf("CrisisOpened of %s carries trace %s (headers %v), want the signal's %s", id, got, m.Header, want)
	}
	var temporalSpans []string
	for _, sp := range rec.Ended() {
		if sp.SpanContext().TraceID() == want && (strings.Contains(sp.Name(), "CrisisResponse") || strings.Contains(sp.Name(), "PublishCrisisEvent")) {
			temporalSpans = append(temporalSpans, sp.Name())
		}
	}
	if len(temporalSpans) == 0 {
		t.Fatal("no Temporal span (signal-with-start, workflow, publishing activity) in the signal's trace")
	}
	t.Logf("trace %s: %v", want, temporalSpans)
}
