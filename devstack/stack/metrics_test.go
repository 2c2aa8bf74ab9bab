package stack_test

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/workflows/crisis"
)

// scrape reads /metrics into series (name{labels} sorted as served) → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
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
	kv, err := js.KeyValue(ctx, partners.CrisisBucket)
	if err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 30*time.Second, "the partners service handled the automatically opened crisis", func() bool {
		_, err := kv.Get(ctx, id)
		return err == nil
	})
	t.Logf("partners handled %s %v after its signal", id, time.Since(started).Round(time.Millisecond))
	cons, err := js.Consumer(ctx, eventbus.StreamName, partners.Durable)
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
}
