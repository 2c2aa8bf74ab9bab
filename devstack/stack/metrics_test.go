package stack_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/metrics/metricstest"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/workflows/crisis"
)

// scrape reads /metrics into series (name{labels} sorted as served) → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	out, err := metricstest.Scrape(url)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsAfterACrisis opens a crisis from a warning on the real stack,
// triages it, and finds on /metrics the warning-to-action histogram of that
// opening and the duration of its warning stage, with their labels, beside
// the consumers' and the Temporal SDK's metrics. It also checks that the
// partners service handled the automatically opened crisis (its WarningRaised
// comes before its CrisisOpened) within seconds, not minutes, with nothing
// dead-lettered.
func TestMetricsAfterACrisis(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	s, err := stack.Start(context.Background(), stack.Config{DataDir: t.TempDir(), TemporalLogLevel: "error", NoUI: true,
		MetricsAddr: "127.0.0.1:0"}, fileLogger(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.MetricsURL() == "" || s.PprofURL() != "" {
		t.Fatalf("metrics at %q, pprof at %q: want metrics on, pprof off unless asked", s.MetricsURL(), s.PprofURL())
	}
	ctx := context.Background()
	tc := temporalClient(t, s)
	js, err := jetstream.New(natsConn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	opened := `demarche_warning_to_action_seconds_count{crisis_type="border-dispute",drill="false",milestone="opened",opened_by="earlywarning",region="africa"}`
	stage := `demarche_stage_duration_seconds_count{region="africa",stage="warning"}`
	before := scrape(t, s.MetricsURL())

	// One signal heavy enough to cross the threshold opens the situation's
	// crisis: a new episode, whose id its WarningRaised names.
	watch := watchCrossing(t, natsConn(t, s), "BJ", demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE)
	started := time.Now()
	if err := earlywarning.PublishSignal(ctx, js, "/test", &demarchev1.Signal{Source: demarchev1.OperatorSource, CountryCode: "BJ",
		CrisisType: demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE, Weight: 100, ObservedAt: timestamppb.Now(),
		Summary: "troops massed at the border", Location: "Malanville"}); err != nil {
		t.Fatal(err)
	}
	id := watch.crisisID(30 * time.Second)

	// Partners learn of it within seconds (generous bound: not a speed test).
	_, pjs := jsAs(t, s, natsauth.Partners) // its bucket is its own to read
	kv, err := pjs.KeyValue(ctx, partners.CrisisBucket)
	if err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 30*time.Second, "the partners service handled the automatically opened crisis", func() bool {
		_, err := kv.Get(ctx, id)
		return err == nil
	})
	t.Logf("partners handled %s %v after its signal", id, time.Since(started).Round(time.Millisecond))
	_, obs := jsAs(t, s, natsauth.Observer) // the observer reads every consumer's state
	cons, err := obs.Consumer(ctx, eventbus.StreamName, partners.Durable)
	if err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 30*time.Second, "the partners consumer caught up", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if dlq, err := js.Stream(ctx, eventbus.DeadLetterStreamName); err == nil {
		if info, err := dlq.Info(ctx, jetstream.WithSubjectFilter(eventbus.DeadLetterSubject(partners.Durable))); err == nil && len(info.State.Subjects) > 0 {
			t.Fatalf("partner delivery dead-lettered events: %v", info.State.Subjects)
		}
	}

	waitPendingKind(t, tc, id, "triage")
	if _, err := crisis.Decide(ctx, tc, id, "metrics-triage", &demarchev1.DecisionRequest{Principal: "duty", Rationale: "credible",
		Roles:    []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER},
		Decision: &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "confirmed"}}}); err != nil {
		t.Fatal(err)
	}
	waitPendingKind(t, tc, id, "good-offices") // the warning stage completed

	var after map[string]float64
	waitWithin(t, 30*time.Second, "the crisis's metrics on /metrics", func() bool {
		after = scrape(t, s.MetricsURL())
		return after[opened] > before[opened] && after[stage] > before[stage]
	})
	for _, want := range []string{
		`demarche_decisions_total{kind="triage"}`,
		`demarche_events_published_total{type="crisis_opened"}`,
		`demarche_consumer_events_total{consumer="partners",outcome="ack"}`,
		`demarche_consumer_lag_events{consumer="earlywarning-signals"}`,
		`demarche_fund_balance_usd{fund="peacebuilding-irf"}`,
	} {
		if _, ok := after[want]; !ok {
			t.Errorf("/metrics has no %s", want)
		}
	}
	sdk := 0
	for k := range after {
		if strings.HasPrefix(k, "temporal_") {
			sdk++
		}
	}
	if sdk == 0 {
		t.Error("/metrics has none of the Temporal SDK's metrics")
	}

	// What is served from a first observation on: a gateway request's time,
	// a micro service request's time (a refusal counts too), the worker's
	// workflow-task latency (Sizing) once the crisis ran.
	resp, err := http.Get(s.APIURL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, _ = natsrpc.Request(ctx, natsConn(t, s), natsrpc.SchemaGet, &demarchev1.GetSchemaRequest{Name: "demarche.v1.NoSuchMessage"})
	after = scrape(t, s.MetricsURL())
	for _, svc := range []string{"gateway", "schema", "worker"} {
		if missing := metricstest.Missing(after, svc, false); len(missing) > 0 {
			t.Errorf("%s: watched metrics not served after a crisis and a request: %v", svc, missing)
		}
	}
	if !metricstest.Has(after, "demarche_http_request_duration_seconds", `route="/healthz"`) {
		t.Error("the gateway's /healthz request is not timed under its route")
	}
	if !metricstest.Has(after, "demarche_rpc_request_duration_seconds", `endpoint="demarche.schema.get"`) {
		t.Error("the schema request is not timed under its endpoint")
	}
}

// documentedMetrics is every demarche_* metric named in docs/*.md.
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("docs: %v %v", files, err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricstest.NamesIn(string(b)) {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// TestMetricsServedAtStart: right after `demarche dev` starts, /metrics
// serves every metric the docs name, and every alarm series at 0 (the
// counters are this test process's: at what they held before the stack
// started, so the start itself raised no alarm). The two histograms whose
// labels (region, crisis type, who opened) exist only once observed appear
// at their first observation; pkg/metrics' unit test checks they are on
// the served registry.
func TestMetricsServedAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	alarms := map[string]float64{`demarche_audit_isolated_chains`: testutil.ToFloat64(metrics.AuditIsolatedChains)}
	for _, k := range metrics.AuditAlarmKinds {
		alarms[`demarche_audit_alarms_total{kind="`+k+`"}`] = testutil.ToFloat64(metrics.AuditAlarms.WithLabelValues(k))
	}
	for _, k := range metrics.LedgerAlarmKinds {
		alarms[`demarche_funding_ledger_alarms_total{alarm="`+k+`"}`] = testutil.ToFloat64(metrics.FundingLedgerAlarms.WithLabelValues(k))
	}
	s, err := stack.Start(context.Background(), stack.Config{DataDir: t.TempDir(), TemporalLogLevel: "error", NoUI: true,
		MetricsAddr: "127.0.0.1:0"}, fileLogger(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	served := scrape(t, s.MetricsURL())
	// Histograms whose labels exist only once observed: a stage's duration
	// (stage, region), a request's time (route or endpoint).
	firstObservation := []string{"demarche_stage_duration_seconds", "demarche_http_request_duration_seconds", "demarche_rpc_request_duration_seconds"}
	docs := documentedMetrics(t)
	if !slices.Contains(docs, "demarche_audit_alarms_total") {
		t.Fatalf("the docs name %v, not the alarm metrics", docs)
	}
	for _, name := range docs {
		if slices.Contains(firstObservation, name) {
			continue
		}
		if !metricstest.Has(served, name, "") {
			t.Errorf("%s is named in the docs but not served at start", name)
		}
	}
	// What "What to watch" names, each service's own series (its consumers,
	// endpoints, routes, deadlines): `demarche dev` runs every service in
	// one process, so its one /metrics serves what each owns.
	for _, svc := range metricstest.Services {
		if missing := metricstest.Missing(served, svc, true); len(missing) > 0 {
			t.Errorf("%s's watched metrics are not served at start: %v", svc, missing)
		}
	}
	if served["demarche_ready"] != 1 {
		t.Errorf("demarche_ready is %v once the stack started, want 1", served["demarche_ready"])
	}
	for series, want := range alarms {
		got, ok := served[series]
		if !ok {
			t.Errorf("/metrics does not serve %s at start", series)
		} else if got != want {
			t.Errorf("%s is %v at start, want %v", series, got, want)
		}
	}
	// Every durable consumer the stack made is declared (eventbus.Durables),
	// as declared: the audit service's consumer watchdog compares with it.
	_, js := jsAs(t, s, natsauth.Observer) // a consumer watcher: reads every consumer's state
	durables := 0
	var streams []string
	for name := range js.StreamNames(context.Background()).Name() {
		streams = append(streams, name) // every stream: a durable anywhere must be declared
	}
	for _, name := range streams {
		st, err := js.Stream(context.Background(), name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		for info := range st.ListConsumers(context.Background()).Info() {
			if info.Config.Durable == "" {
				continue
			}
			durables++
			spec := eventbus.SpecOf(name, info.Name)
			if spec == nil {
				t.Errorf("durable %s on %s is not declared in eventbus.Durables", info.Name, name)
				continue
			}
			if spec.Filter == nil {
				continue // its owner chooses its filter
			}
			if got, want := strings.Join(info.Config.FilterSubjects, " "), strings.Join(spec.Filter(info.Name), " "); got != want || info.Config.AckPolicy != spec.AckPolicy {
				t.Errorf("durable %s on %s: filter %q ack %v, declared %q %v", info.Name, name, got, info.Config.AckPolicy, want, spec.AckPolicy)
			}
		}
	}
	if durables < 4 {
		t.Errorf("%d durables on the stack, want at least audit, eventlog, partners and earlywarning-signals", durables)
	}
	for _, c := range []string{"audit", "eventlog", "partners", "earlywarning-signals"} {
		if _, ok := served[`demarche_dead_letters_total{consumer="`+c+`"}`]; !ok {
			t.Errorf("consumer %s's dead letters are not served at 0 from the start", c)
		}
	}
}
