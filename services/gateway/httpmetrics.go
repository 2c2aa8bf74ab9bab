package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/tracing"
)

// tracingService names the gateway's spans (tracing.Tracer).
const tracingService = "gateway"

// observeHTTP traces and counts every request the gateway answers (demarche_http_*):
// per route pattern as registered on mux ("/v1/crises/{id}", never the raw
// path, whose crisis ids would make a series per crisis), method and status,
// with its time. A request no route matches (404, 405, or refused before
// routing) is counted under route "unmatched"; a method outside the
// standard ones under "other": neither label grows with what clients send.
func observeHTTP(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := "unmatched"
		if _, pattern := mux.Handler(r); pattern != "" {
			// "GET /v1/crises/{id}" → "/v1/crises/{id}": the method has its own label.
			if i := strings.IndexByte(pattern, ' '); i >= 0 {
				pattern = pattern[i+1:]
			}
			route = pattern
		}
		method := knownMethod(r.Method)
		// A span per request, in the caller's trace when it sends a W3C
		// traceparent (a tool acting on a warning), else a trace of its own.
		ctx, span := tracing.Tracer(tracingService).Start(tracing.Extract(r.Context(), nats.Header(r.Header)), method+" "+route,
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		if sw.code == 0 {
			sw.code = http.StatusOK // nothing written: net/http answers 200
		}
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
		if sw.code >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(sw.code))
		}
		metrics.HTTPRequests.WithLabelValues(route, method, strconv.Itoa(sw.code)).Inc()
		metrics.HTTPDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	})
}

func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// statusWriter remembers the status code written. It keeps Flush (the
// console's live page streams) and Unwrap (http.ResponseController).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
