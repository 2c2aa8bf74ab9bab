package metrics

import "github.com/prometheus/client_golang/prometheus"

// Refusals of what did not come from who it claims (issue "trust inside the
// walls"): each is also a log line at error level ("ALARM") and a dead
// letter or a 4xx naming the rule.
var (
	// ForgedEvents: crisis events a consumer refused as not the workflow's
	// (pkg/origin), per consumer (the partners service). The audit trail counts its own in
	// demarche_audit_alarms_total too.
	ForgedEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Name: "forged_events_total",
		Help: "Crisis events refused as not what the crisis workflow published (pkg/origin), per consumer.",
	}, []string{"consumer"})
	// SignalsRefused: signals refused because their body claims a source
	// other than the credential that sent them, per way in (stream, request).
	SignalsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Name: "signals_refused_total",
		Help: "Signals refused because their body claims a source other than the credential that sent them, per way in (stream, request).",
	}, []string{"via"})
)

// At 0 from the start, so an alert can compare with the last scrape
// (registered with everything else in metrics.go's all).
func init() {
	ForgedEvents.WithLabelValues("partners")
	SignalsRefused.WithLabelValues("stream")
	SignalsRefused.WithLabelValues("request")
}
