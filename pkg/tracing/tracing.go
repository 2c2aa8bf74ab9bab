// Package tracing carries OpenTelemetry trace context through Démarche: in
// NATS message headers (W3C traceparent/tracestate, beside the CloudEvents
// ce- headers) and through Temporal (the SDK's OpenTelemetry interceptor, so
// workflow and activity spans join the trace of whoever started or signalled
// the workflow). One trace then shows a signal becoming a crisis becoming an
// envoy booking.
//
// Spans are recorded by whatever TracerProvider the process installs
// (otel.SetTracerProvider, or Export's OTLP exporter, which gives each service
// its own service.name); none is installed by default, so nothing is
// exported, but the context still travels.
package tracing

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

func init() {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
}

// Inject writes ctx's trace context into NATS message headers.
func Inject(ctx context.Context, h nats.Header) {
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(http.Header(h)))
}

// Extract returns ctx carrying the trace context of NATS message headers.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(http.Header(h)))
}

// TemporalInterceptor is the Temporal SDK's OpenTelemetry interceptor, for
// clients (starts, signals, updates) and, through them, workers (workflows
// and activities). Its spans are those of the service whose Temporal identity
// the client has (Tracer's provider of that name, at the time of the call).
func TemporalInterceptor(identity string) (interceptor.Interceptor, error) {
	return temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{Tracer: providerFor(identity).Tracer("temporal-sdk-go")})
}
