package metrics

import "github.com/prometheus/client_golang/prometheus"

// Requests served: the gateway's HTTP API and the NATS micro services'
// endpoints, and whether the process is ready. Labels are bounded by what
// the code declares: a route is the pattern it was registered under
// (never the raw path, which carries crisis ids and would grow without
// bound), an endpoint is its fixed subject.
var (
	// HTTPRequests: the gateway's requests per route pattern, method and status.
	HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests the gateway answered, per route pattern (\"unmatched\" when none), method and status code.",
	}, []string{"route", "method", "code"})
	// HTTPDuration: how long the gateway took to answer, per route pattern and method.
	HTTPDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "demarche", Subsystem: "http", Name: "request_duration_seconds",
		Help:    "Time the gateway took to answer an HTTP request, per route pattern and method.",
		Buckets: latencyBuckets,
	}, []string{"route", "method"})
	// RPCRequests: requests a NATS micro service answered, per endpoint
	// subject and code ("200", or the errs code of the error: 400, 404, 503, 500...).
	RPCRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Subsystem: "rpc", Name: "requests_total",
		Help: "Requests a NATS micro service answered, per endpoint subject and code (200, or the error's code).",
	}, []string{"endpoint", "code"})
	// RPCErrors: the requests among RPCRequests answered with an error, per
	// endpoint (at 0 per endpoint from its start, so an error ratio is
	// defined before the first error).
	RPCErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Subsystem: "rpc", Name: "errors_total",
		Help: "Requests a NATS micro service answered with an error, per endpoint subject.",
	}, []string{"endpoint"})
	// RPCDuration: how long an endpoint's handler took, per endpoint subject.
	RPCDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "demarche", Subsystem: "rpc", Name: "request_duration_seconds",
		Help:    "Time a NATS micro service took to answer a request, per endpoint subject.",
		Buckets: latencyBuckets,
	}, []string{"endpoint"})
	// Ready: 1 while the process's /readyz would answer 200, 0 otherwise
	// (starting, stopping, or a check failing). Prometheus scrapes /metrics,
	// not /readyz: this is how a readiness failure reaches an alert.
	Ready = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "demarche", Name: "ready",
		Help: "1 while the process is ready (its /readyz answers 200), 0 while starting, stopping or a readiness check fails.",
	})
)

// Endpoint makes a micro endpoint's series present at 0 (requests answered
// 200, errors) before its first request.
func Endpoint(subject string) {
	RPCRequests.WithLabelValues(subject, "200")
	RPCErrors.WithLabelValues(subject)
}

// Route makes an HTTP route's request counter present at 0 (answered 200)
// before its first request.
func Route(pattern, method string) {
	HTTPRequests.WithLabelValues(pattern, method, "200")
}
