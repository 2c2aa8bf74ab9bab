package tracing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
)

// ErrBadEndpoint is returned by Export for an OTLP endpoint it cannot use.
var ErrBadEndpoint = errors.New("bad OTLP endpoint")

// EndpointHelp says what Export takes, for flags' help and errors.
const EndpointHelp = `host:port (OTLP/gRPC in plaintext, e.g. 127.0.0.1:4317) or a URL: http://host:port (plaintext), https://host:port (TLS)`

// ServiceNamePrefix begins every service.name Démarche exports
// ("demarche-earlywarning", "demarche-worker", ...).
const ServiceNamePrefix = "demarche-"

// scope is the instrumentation scope of Démarche's own spans.
const scope = "github.com/demarche/demarche"

// providers maps a service to the TracerProvider of its spans while Export's
// exporter runs (several services in one process: demarche dev); nil
// otherwise, when every service's spans go to the global TracerProvider.
var providers atomic.Pointer[map[string]trace.TracerProvider]

func providerFor(service string) trace.TracerProvider {
	if m := providers.Load(); m != nil {
		if p, ok := (*m)[service]; ok {
			return p
		}
	}
	return otel.GetTracerProvider()
}

// Tracer is the tracer of a service's own spans (early warning's threshold
// crossings, the gateway's requests, a request service's answers): the
// service's own TracerProvider under Export, else the global one (a no-op
// unless the process installed one).
func Tracer(service string) trace.Tracer { return providerFor(service).Tracer(scope) }

// Exporter sends the spans of a process's services over OTLP/gRPC. Shutdown
// flushes what is buffered.
type Exporter struct {
	exp       *otlptrace.Exporter
	providers []*sdktrace.TracerProvider
}

// Export starts exporting spans over OTLP/gRPC to endpoint (EndpointHelp),
// with a batch span processor: the process's own spans (the global
// TracerProvider) as service.name "demarche-<process>", and each of services
// (run in the same process) as "demarche-<service>". An empty endpoint
// exports nothing and returns a nil *Exporter, whose Shutdown does nothing:
// no exporter, no span processor, the global TracerProvider left as it is.
// The exporter's other settings come from the standard environment
// (OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_CERTIFICATE, ...).
func Export(ctx context.Context, endpoint, process string, services ...string) (*Exporter, error) {
	if endpoint == "" {
		return nil, nil
	}
	opts, err := endpointOptions(endpoint)
	if err != nil {
		return nil, err
	}
	// The gRPC connection is made lazily: a collector that is not up yet
	// delays nothing here, and the batches wait for it (with retries).
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter to %s: %w", endpoint, err)
	}
	e := &Exporter{exp: exp}
	shared := sharedExporter{exp}
	newProvider := func(service string) (*sdktrace.TracerProvider, error) {
		res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(),
			resource.WithAttributes(semconv.ServiceName(ServiceNamePrefix+service), semconv.ServiceNamespace("demarche")))
		if err != nil {
			return nil, fmt.Errorf("trace resource of %s: %w", service, err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(shared), sdktrace.WithResource(res))
		e.providers = append(e.providers, tp)
		return tp, nil
	}
	global, err := newProvider(process)
	if err != nil {
		_ = exp.Shutdown(ctx) // the start already failed: that error is the one to report
		return nil, err
	}
	m := map[string]trace.TracerProvider{process: global}
	for _, s := range services {
		if _, ok := m[s]; ok {
			continue
		}
		tp, err := newProvider(s)
		if err != nil {
			_ = e.Shutdown(ctx) // the start already failed: that error is the one to report
			return nil, err
		}
		m[s] = tp
	}
	otel.SetTracerProvider(global)
	providers.Store(&m)
	return e, nil
}

// endpointOptions reads an endpoint as EndpointHelp says.
func endpointOptions(endpoint string) ([]otlptracegrpc.Option, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s; give %s", ErrBadEndpoint, endpoint, why, EndpointHelp)
	}
	hostPort := endpoint
	secure := false
	if u, err := url.Parse(endpoint); err == nil && u.Scheme != "" && u.Host != "" {
		switch u.Scheme {
		case "http":
		case "https":
			secure = true
		default:
			return nil, bad("scheme " + u.Scheme + " is neither http nor https")
		}
		if u.Path != "" && u.Path != "/" {
			return nil, bad("OTLP/gRPC takes no path")
		}
		hostPort = u.Host
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil, bad("no port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || host == "" {
		return nil, bad("host and port 1-65535 needed")
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(hostPort), otlptracegrpc.WithTimeout(10 * time.Second)}
	if !secure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	return opts, nil
}

// Shutdown flushes the spans buffered and stops exporting; the services'
// spans go to the global TracerProvider again (a stopped one: spans started
// from then on are not recorded). Nil-safe.
func (e *Exporter) Shutdown(ctx context.Context) error {
	if e == nil {
		return nil
	}
	providers.Store(nil)
	var errs []error
	for _, tp := range e.providers {
		errs = append(errs, tp.Shutdown(ctx))
	}
	errs = append(errs, e.exp.Shutdown(ctx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// sharedExporter is the one exporter behind every service's batch span
// processor: a processor shutting down flushes through it, and Exporter's
// Shutdown stops it once, after them all.
type sharedExporter struct{ *otlptrace.Exporter }

func (sharedExporter) Shutdown(context.Context) error { return nil }
