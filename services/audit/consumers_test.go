package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/metrics"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"google.golang.org/protobuf/proto"
)

// TestConsumerChangedOutsideProvisioningIsAnAlarm: the audit consumer's
// filter narrowed (a crisis's events would never be chained), a durable
// nobody declared created, the eventlog consumer deleted: each is one
// consumer-changed alarm (counted on the served registry, recorded on the
// global chain), raised once however many checks follow.
func TestConsumerChangedOutsideProvisioningIsAnAlarm(t *testing.T) {
	e := newEnv(t)
	svc, err := Start(context.Background(), Config{NATSURL: e.srv.URL(), ConsumerWatchEvery: -1, AnchorEvery: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	ctx := context.Background()
	// eventlog provisions its consumer as declared.
	if _, err := e.js.CreateOrUpdateConsumer(ctx, eventbus.StreamName, jetstream.ConsumerConfig{Durable: "eventlog",
		FilterSubjects: []string{eventbus.AllEvents()}, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	counter := metrics.AuditAlarms.WithLabelValues(AlarmConsumerChanged)
	before := testutil.ToFloat64(counter)
	check := func(want ...string) {
		t.Helper()
		got, err := svc.Store.CheckConsumers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("changes %q, want %d matching %q", got, len(want), want)
		}
		for i, w := range want {
			if !strings.Contains(got[i], w) {
				t.Fatalf("change %q does not say %q", got[i], w)
			}
		}
	}
	check() // as provisioned: nothing to say
	check()

	// The audit consumer's filter narrowed to one region.
	if _, err := e.js.UpdateConsumer(ctx, eventbus.StreamName, jetstream.ConsumerConfig{Durable: Durable,
		FilterSubjects: []string{eventbus.SubjectRoot + ".europe.>"}, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1, MaxAckPending: 1,
		AckWait: 30e9, Description: "Démarche consumer audit"}); err != nil {
		t.Fatal(err)
	}
	check("durable consumer audit on stream DEMARCHE_CRISIS: its configuration is filter [demarche.crisis.europe.>]")
	check() // once per change, not on every poll

	// A durable nobody declared.
	if _, err := e.js.CreateOrUpdateConsumer(ctx, eventbus.StreamName, jetstream.ConsumerConfig{Durable: "siphon", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	check("durable consumer siphon on stream DEMARCHE_CRISIS: a durable consumer nobody declared appeared")
	check()

	// The eventlog consumer deleted.
	if err := e.js.DeleteConsumer(ctx, eventbus.StreamName, "eventlog"); err != nil {
		t.Fatal(err)
	}
	check("durable consumer eventlog on stream DEMARCHE_CRISIS: it was deleted")
	check()

	if got := testutil.ToFloat64(counter) - before; got != 3 {
		t.Fatalf("demarche_audit_alarms_total{kind=consumer-changed} rose by %v, want 3", got)
	}
	// Nothing of ours hides on Prometheus's default registry (never served).
	if mfs, err := prometheus.DefaultGatherer.Gather(); err == nil {
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "demarche_") {
				t.Errorf("%s is on the default registry, which /metrics does not serve", mf.GetName())
			}
		}
	}
	global, err := svc.Store.Records(ctx, GlobalChain, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var recorded int
	for _, r := range global {
		if strings.HasPrefix(r.GetDetail(), AlarmConsumerChanged+":") {
			recorded++
		}
	}
	if recorded != 3 {
		t.Fatalf("%d consumer-changed alarm records on the global chain, want 3", recorded)
	}
}

// TestConsumerRecreatedBetweenChecksIsAnAlarm: deleted and made again under
// the same name and configuration between two checks (so its deletion is
// never seen), a consumer's acknowledgement floor goes back: its events
// would be delivered again. One alarm.
func TestConsumerRecreatedBetweenChecksIsAnAlarm(t *testing.T) {
	e := newEnv(t)
	svc, err := Start(context.Background(), Config{NATSURL: e.srv.URL(), ConsumerWatchEvery: -1, AnchorEvery: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	ctx := context.Background()
	cfg := jetstream.ConsumerConfig{Durable: "eventlog", FilterSubjects: []string{eventbus.AllEvents()}, AckPolicy: jetstream.AckExplicitPolicy}
	c, err := e.js.CreateOrUpdateConsumer(ctx, eventbus.StreamName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.publish(crisisA, 1)
	e.publish(crisisA, 2)
	batch, err := c.Fetch(2)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Store.CheckConsumers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteConsumer(ctx, eventbus.StreamName, "eventlog"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateOrUpdateConsumer(ctx, eventbus.StreamName, cfg); err != nil {
		t.Fatal(err)
	}
	got, err := svc.Store.CheckConsumers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.Contains(got[0], "deleted and re-created between two checks") || !strings.Contains(got[0], "acknowledgement floor went from 2 to 0") {
		t.Fatalf("changes %q", got)
	}
	if got, _ := svc.Store.CheckConsumers(ctx); len(got) != 0 {
		t.Fatalf("alarmed again: %q", got)
	}
}

// TestReportedLedgerAlarmIsRecorded: a broken ledger the funding service
// reports on demarche.audit.alarm is counted and recorded on the global
// chain as reported by funding; an alarm of audit's own kinds sent there by
// someone else is not recorded (audit records its own when it raises them).
func TestReportedLedgerAlarmIsRecorded(t *testing.T) {
	e := newEnv(t)
	svc, err := Start(context.Background(), Config{NATSURL: e.srv.URL(), ConsumerWatchEvery: -1, AnchorEvery: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	ctx := context.Background()
	counter := metrics.AuditAlarms.WithLabelValues(AlarmLedgerBroken)
	before := testutil.ToFloat64(counter)
	for _, a := range []*demarchev1.AuditAlarm{
		{Kind: AlarmForgedEvent, EventId: "not-mine", Reason: "someone else's forged-event"},
		{Kind: AlarmLedgerBroken, EventId: "ledger-flexible-financing", Reason: "fund flexible-financing (broken): line 7 does not decode"},
	} {
		b, _ := proto.Marshal(a)
		if err := e.nc.Publish(SubjectAlarm, b); err != nil {
			t.Fatal(err)
		}
	}
	var recs []*demarchev1.AuditRecord
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err = svc.Store.Records(ctx, GlobalChain, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(recs) != 1 || recs[0].GetPrincipal() != "funding" || !strings.HasPrefix(recs[0].GetDetail(), AlarmLedgerBroken+":") || !strings.Contains(recs[0].GetDetail(), "line 7") {
		t.Fatalf("global chain %v, want the ledger alarm alone, reported by funding", recs)
	}
	if got := testutil.ToFloat64(counter) - before; got != 1 {
		t.Fatalf("demarche_audit_alarms_total{kind=ledger-broken} rose by %v, want 1", got)
	}
}
