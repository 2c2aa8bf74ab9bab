// Package metrics holds Démarche's Prometheus metrics, one registry per
// process (every service of `demarche dev` shares it), and the HTTP handler
// that serves them at /metrics, with pprof beside them only when asked.
//
// The metrics name what an operations centre and an operator watch: how long
// a warning takes to become a crisis, time per stage, deadline breaches,
// consumer lag, redeliveries and dead letters, fund balances; the Temporal
// SDK's own metrics join them through TemporalHandler.
package metrics

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Registry is the process's registry: Go runtime and process collectors plus
// every metric below.
var Registry = prometheus.NewRegistry()

// latencyBuckets run from 1 ms to about 20 minutes.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 16)

// stageBuckets run from 1 s to about 90 days.
var stageBuckets = prometheus.ExponentialBuckets(1, 3.2, 16)

var (
	// WarningToAction: from a crisis's first signal to its CrisisOpened event
	// on the stream (milestone "opened"; opened_by says who opened it:
	// earlywarning for a threshold crossing).
	WarningToAction = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "demarche", Name: "warning_to_action_seconds",
		Help:    "Time from a crisis's first signal to an action: milestone=opened is its CrisisOpened on the stream.",
		Buckets: latencyBuckets,
	}, []string{"milestone", "opened_by", "region", "crisis_type", "drill"})
	// StageDuration: time a crisis spent in a stage, observed when it left it.
	StageDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "demarche", Name: "stage_duration_seconds",
		Help:    "Time a crisis spent in a lifecycle stage, observed when the stage completed.",
		Buckets: stageBuckets,
	}, []string{"stage", "region"})
	// Decisions recorded, per kind.
	Decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Name: "decisions_total", Help: "Decisions recorded, per kind.",
	}, []string{"kind"})
	// DeadlineBreaches per deadline and stage.
	DeadlineBreaches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Name: "deadline_breaches_total", Help: "Deadlines breached, per deadline name and stage.",
	}, []string{"deadline", "stage"})
	// EventsPublished by the workflow's activities, per event type.
	EventsPublished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Name: "events_published_total", Help: "Crisis events published, per type (duplicates of a retry not counted).",
	}, []string{"type"})

	// ConsumerHandled, per durable consumer and outcome (ack, retry, dead_letter).
	ConsumerHandled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Name: "consumer_events_total", Help: "Events handled by a durable consumer, per outcome: ack, retry, dead_letter.",
	}, []string{"consumer", "outcome"})
	// ConsumerRedeliveries counts deliveries after the first.
	ConsumerRedeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Name: "consumer_redeliveries_total", Help: "Deliveries of an event after its first, per consumer.",
	}, []string{"consumer"})
	// ConsumerLag is how many events were waiting behind the last one delivered.
	ConsumerLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "demarche", Name: "consumer_lag_events", Help: "Events waiting for a consumer behind the last one delivered to it.",
	}, []string{"consumer"})
	// ConsumerHandleSeconds is how long handlers take.
	ConsumerHandleSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "demarche", Name: "consumer_handle_seconds", Help: "Time a consumer's handler took for one event.",
		Buckets: latencyBuckets,
	}, []string{"consumer"})
	// DeadLetters per consumer.
	DeadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Name: "dead_letters_total", Help: "Events a consumer gave up on and copied to its dead-letter subject.",
	}, []string{"consumer"})

	// OpenCrisesIndexSequence: the crisis stream's sequence of the last
	// event early warning's index of open crises applied, per event type
	// (crisis_opened, crisis_closed; services/earlywarning/openindex.go).
	// Compared with the stream's own sequence of the newest such event, it
	// says whether crossings already know of a crisis opened a moment ago.
	OpenCrisesIndexSequence = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "demarche", Subsystem: "earlywarning", Name: "open_crises_index_sequence",
		Help: "Stream sequence of the last crisis_opened or crisis_closed event early warning's index of open crises applied, per event type.",
	}, []string{"event"})

	// FundBalance per fund, in USD, after each ledger line.
	FundBalance = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "demarche", Name: "fund_balance_usd", Help: "A fund's balance after its latest ledger line.",
	}, []string{"fund"})

	// Alarms. They live here, on the one registry /metrics serves, with
	// every label value they can take present at 0 from the start: an alarm
	// metric that appears only when it first fires cannot be alerted on
	// (rate() of a series that did not exist is nothing, not a rise), and
	// one registered on Prometheus's default registry is never served at all.

	// AuditAlarms: alarms the audit service raised, per kind (AuditAlarmKinds).
	AuditAlarms = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Subsystem: "audit", Name: "alarms_total",
		Help: "Audit alarms raised, per kind: forged-event (an event that is not the workflow's, refused), chain-isolated (a stored record is bad), consumer-changed (a durable consumer deleted, edited or created outside provisioning), ledger-broken (the funding service found a fund's ledger broken).",
	}, []string{"kind"})
	// AuditIsolatedChains: chains this process isolated because a stored record is bad.
	AuditIsolatedChains = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "demarche", Subsystem: "audit", Name: "isolated_chains",
		Help: "Audit chains isolated in this process because a stored record is bad.",
	})
	// FundingLedgerAlarms: funds refused because their ledger is broken,
	// missing or never opened, per alarm (LedgerAlarmKinds); the fund is in
	// the ALARM log line (a label per fund would appear only once it broke).
	FundingLedgerAlarms = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "demarche", Subsystem: "funding", Name: "ledger_alarms_total",
		Help: "Funds refused because their ledger is broken, missing or not opened, per alarm (the fund is in the ALARM log line).",
	}, []string{"alarm"})
)

// AuditAlarmKinds are the values of demarche_audit_alarms_total's kind label
// (services/audit names them; pre-initialised at 0).
var AuditAlarmKinds = []string{"forged-event", "chain-isolated", "consumer-changed", "ledger-broken"}

// LedgerAlarmKinds are the values of demarche_funding_ledger_alarms_total's
// alarm label (services/funding names them; pre-initialised at 0).
var LedgerAlarmKinds = []string{"broken", "missing", "not-opened"}

// all is everything registered on Registry: one place.
var all = []prometheus.Collector{
	WarningToAction, StageDuration, Decisions, DeadlineBreaches, EventsPublished,
	ConsumerHandled, ConsumerRedeliveries, ConsumerLag, ConsumerHandleSeconds, DeadLetters, FundBalance, OpenCrisesIndexSequence,
	AuditAlarms, AuditIsolatedChains, FundingLedgerAlarms, ForgedEvents, SignalsRefused, temporalSDK,
	HTTPRequests, HTTPDuration, RPCRequests, RPCErrors, RPCDuration, Ready,
}

// All is every collector of ours on Registry (for tests: which names are served).
func All() []prometheus.Collector { return slices.Clone(all) }

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	Registry.MustRegister(all...)
	for _, k := range AuditAlarmKinds {
		AuditAlarms.WithLabelValues(k)
	}
	for _, k := range LedgerAlarmKinds {
		FundingLedgerAlarms.WithLabelValues(k)
	}
	for _, k := range demarchev1.DecisionKinds() {
		Decisions.WithLabelValues(k)
	}
}

// Consumer makes a durable consumer's series present at 0 (lag,
// redeliveries, dead letters, handled per outcome) before its first event,
// so a consumer that never moves is visible as such.
func Consumer(durable string) {
	ConsumerLag.WithLabelValues(durable)
	ConsumerRedeliveries.WithLabelValues(durable)
	DeadLetters.WithLabelValues(durable)
	for _, o := range []string{"ack", "retry", "dead_letter"} {
		ConsumerHandled.WithLabelValues(durable, o)
	}
}

// Handler serves /metrics and, when withPprof, /debug/pprof/ (pprof exposes
// the process's memory and goroutines: opt-in, on a port of its own).
func Handler(withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry, ErrorHandling: promhttp.ContinueOnError}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Serve serves Handler on addr until the returned stop is called; addr ""
// serves nothing. The listener is opened before Serve returns, so a taken
// port is an error here, not later in a log.
func Serve(addr string, withPprof bool) (url string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: Handler(withPprof), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // Serve returns when Close is called; a failed listener shows as failed scrapes
	// stopping: nothing to do about a close error
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// Bool is a label value for a flag.
func Bool(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
