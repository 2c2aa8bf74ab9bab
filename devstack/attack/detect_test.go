package attack_test

// Wall 6, detection: every alarm metric is on the registry /metrics serves,
// at 0 from the start, and rises after its fault; `audit verify` fails on a
// truncated chain and on a chain its anchors no longer cover; a durable
// consumer edited or deleted outside provisioning is an alarm.

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/metrics/metricstest"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/cli"
	"github.com/demarche/demarche/workflows/crisis"
)

const wallDetect = "detect"

// startDetectStack is startStack with /metrics served and chains anchored
// every second (so a test of anchoring need not wait the default 30s).
func startDetectStack(t *testing.T) *stack.Stack {
	t.Helper()
	s := startStack(t, func(c *stack.Config) {
		c.NoUI, c.MetricsAddr, c.AuditAnchorEvery = true, "127.0.0.1:0", time.Second
	})
	if s.MetricsURL() == "" {
		t.Fatal("the stack serves no /metrics")
	}
	return s
}

// scrapeMetrics reads /metrics into series (name{labels} as served) -> value.
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	out, err := metricstest.Scrape(url)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitMetric waits until a served series rises above before; it answers its value.
func waitMetric(t *testing.T, s *stack.Stack, series string, before float64) float64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if v, ok := scrapeMetrics(t, s.MetricsURL())[series]; ok && v > before {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never rose above %v on /metrics", series, before)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runCLIAs runs the demarche CLI against the stack's gateway with a demo
// identity's token.
func runCLIAs(t *testing.T, s *stack.Stack, identity string, args ...string) (string, error) {
	t.Helper()
	b, err := os.ReadFile(s.TokenFile(identity))
	if err != nil {
		t.Fatal(err)
	}
	root := cli.NewRoot(stack.NewDevCmd)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--server", s.APIURL(), "--token", strings.TrimSpace(string(b)), "--log-level", "error"))
	err = root.ExecuteContext(context.Background())
	return out.String(), err
}

// alarmsOn collects the AuditAlarm events published on demarche.audit.alarm.
func alarmsOn(t *testing.T, nc *nats.Conn) chan *demarchev1.AuditAlarm {
	t.Helper()
	ch := make(chan *demarchev1.AuditAlarm, 256)
	if _, err := nc.Subscribe(audit.SubjectAlarm, func(m *nats.Msg) {
		var a demarchev1.AuditAlarm
		if proto.Unmarshal(m.Data, &a) == nil {
			ch <- &a
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

// waitAlarm waits for an alarm event of kind whose reason holds every word.
func waitAlarm(t *testing.T, ch chan *demarchev1.AuditAlarm, kind string, words ...string) *demarchev1.AuditAlarm {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case a := <-ch:
			if a.GetKind() != kind {
				continue
			}
			ok := true
			for _, w := range words {
				ok = ok && strings.Contains(a.GetReason(), w)
			}
			if ok {
				return a
			}
		case <-timeout:
			t.Fatalf("no %s alarm naming %q", kind, words)
		}
	}
}

func alarmSeries(kind string) string {
	return `demarche_audit_alarms_total{kind="` + kind + `"}`
}

// TestDetectAlarmsFire: on the real stack, each alarm metric is served from
// the start, at 0 (at what the process counted before this stack started:
// the counters are the process's), and rises after its fault, each fault
// tried with the credential an attacker or an insider would hold.
func TestDetectAlarmsFire(t *testing.T) {
	before := map[string]float64{}
	for _, k := range metrics.AuditAlarmKinds {
		before[alarmSeries(k)] = testutilValue(metrics.AuditAlarms.WithLabelValues(k))
	}
	for _, k := range metrics.LedgerAlarmKinds {
		before[`demarche_funding_ledger_alarms_total{alarm="`+k+`"}`] = testutilValue(metrics.FundingLedgerAlarms.WithLabelValues(k))
	}
	before[`demarche_audit_isolated_chains`] = testutilValue(metrics.AuditIsolatedChains)
	s := startDetectStack(t)
	ctx := context.Background()

	// At start: every alarm series served, none raised by the start itself.
	start := scrapeMetrics(t, s.MetricsURL())
	for series, want := range before {
		got, ok := start[series]
		if !ok {
			t.Fatalf("/metrics does not serve %s at start", series)
		}
		if got != want {
			t.Fatalf("%s is %v at start, want %v: the stack raised an alarm while starting", series, got, want)
		}
	}
	attempt(t, wallDetect, "scrape /metrics right after start", "-", "every alarm series served from the start, none raised (demarche_audit_alarms_total{kind}, demarche_audit_isolated_chains, demarche_funding_ledger_alarms_total{alarm})")

	alarms := alarmsOn(t, natsAs(t, s, natsauth.Observer))

	// 1. A forged crisis event: the worker's credential (the only one NATS
	// lets publish crisis events) publishing one that says no workflow run.
	wjs, err := jetstream.New(natsAs(t, s, natsauth.Worker))
	if err != nil {
		t.Fatal(err)
	}
	const fake = "GN-20261207-FORGD"
	forged := eventbus.Event{ID: "detect-forged-origin", Subject: fake, Time: time.Now(),
		Data: &demarchev1.CrisisClosed{CrisisId: fake, ClosedAt: timestamppb.Now(), Outcome: demarchev1.Outcome_OUTCOME_AVERTED}}
	if _, err := eventbus.NewPublisher(wjs, crisis.EventSource).Publish(ctx, eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "GN", CrisisID: fake}, forged); err != nil {
		t.Fatal(err)
	}
	v := waitMetric(t, s, alarmSeries(audit.AlarmForgedEvent), start[alarmSeries(audit.AlarmForgedEvent)])
	a := waitAlarm(t, alarms, audit.AlarmForgedEvent)
	if a.GetEventId() != forged.ID {
		t.Fatalf("forged-event alarm for %q, want %q", a.GetEventId(), forged.ID)
	}
	attempt(t, wallDetect, "publish a CrisisClosed without workflow origin", string(natsauth.Worker),
		"detected: forged-event alarm ("+a.GetReason()+"), "+alarmSeries(audit.AlarmForgedEvent)+" = "+strconv.FormatFloat(v, 'f', -1, 64))

	// 2. A broken ledger line: the funding credential appends a line that is
	// no ledger line. Nobody reads the fund: the ledger watchdog raises it.
	fnc := natsAs(t, s, natsauth.Funding)
	fjs, err := jetstream.New(fnc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fjs.Publish(ctx, "demarche.ledger.flexible-financing", []byte("\xff\xff not a ledger line")); err != nil {
		t.Fatal(err)
	}
	broken := `demarche_funding_ledger_alarms_total{alarm="broken"}`
	v = waitMetric(t, s, broken, start[broken])
	a = waitAlarm(t, alarms, audit.AlarmLedgerBroken, "flexible-financing")
	ledgerAlarm := waitMetric(t, s, alarmSeries(audit.AlarmLedgerBroken), start[alarmSeries(audit.AlarmLedgerBroken)])
	var bal demarchev1.BalanceResponse
	obs := natsAs(t, s, natsauth.Observer)
	err = callFunding(ctx, obs, &bal)
	refused := false
	for _, f := range bal.GetFunds() {
		refused = refused || (f.GetFund().GetId() == "flexible-financing" && strings.Contains(f.GetProblem(), "ledger breaks"))
	}
	if err != nil || !refused {
		t.Fatalf("balance after a broken line: %v %v", err, bal.GetFunds())
	}
	attempt(t, wallDetect, "append a garbage line to fund flexible-financing's ledger", string(natsauth.Funding),
		"detected: ALARM logged (fund, reason), "+broken+" = "+strconv.FormatFloat(v, 'f', -1, 64)+
			", audit alarm ("+a.GetReason()+") recorded, "+alarmSeries(audit.AlarmLedgerBroken)+" = "+strconv.FormatFloat(ledgerAlarm, 'f', -1, 64)+"; the fund is refused")

	// 3. Consumers changed outside provisioning, by the provisioner's
	// credential (the one identity still allowed to: an insider).
	pjs, err := jetstream.New(natsAs(t, s, natsauth.Provisioner))
	if err != nil {
		t.Fatal(err)
	}
	changed := alarmSeries(audit.AlarmConsumerChanged)
	pc, err := pjs.Consumer(ctx, eventbus.StreamName, "partners")
	if err != nil {
		t.Fatal(err)
	}
	cfg := pc.CachedInfo().Config
	cfg.FilterSubjects = []string{eventbus.SubjectRoot + ".europe.>"}
	cfg.FilterSubject = ""
	if _, err := pjs.UpdateConsumer(ctx, eventbus.StreamName, cfg); err != nil {
		t.Fatal(err)
	}
	a = waitAlarm(t, alarms, audit.AlarmConsumerChanged, "partners", "europe")
	v = waitMetric(t, s, changed, start[changed])
	attempt(t, wallDetect, "narrow the partners consumer's filter to one region", string(natsauth.Provisioner),
		"detected: consumer-changed alarm ("+a.GetReason()+"), "+changed+" = "+strconv.FormatFloat(v, 'f', -1, 64))
	if err := pjs.DeleteConsumer(ctx, eventbus.StreamName, "eventlog"); err != nil {
		t.Fatal(err)
	}
	a = waitAlarm(t, alarms, audit.AlarmConsumerChanged, "eventlog", "deleted")
	v = waitMetric(t, s, changed, v)
	attempt(t, wallDetect, "delete the eventlog consumer", string(natsauth.Provisioner),
		"detected: consumer-changed alarm ("+a.GetReason()+"), "+changed+" = "+strconv.FormatFloat(v, 'f', -1, 64))
}

// callFunding asks the funding service for every fund's balance.
func callFunding(ctx context.Context, nc *nats.Conn, out *demarchev1.BalanceResponse) error {
	return natsrpc.Call(ctx, nc, natsrpc.FundingBalance, &demarchev1.FundQuery{}, out)
}

func testutilValue(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// TestDetectTruncatedChain: with the provisioner's credential (the one
// identity that may still remove and make streams) an insider cuts the last
// record off a crisis's audit chain — JetStream refuses to delete records
// (deny delete cannot be lifted), so the stream is copied, the record
// removed from the copy, and the stream made again from it — then removes
// the chain's anchors too. `audit verify` fails both times, naming the chain
// and the record, and the anchoring round isolates the chain with an alarm.
func TestDetectTruncatedChain(t *testing.T) {
	s := startDetectStack(t)
	ctx := context.Background()
	pub, err := os.ReadFile(s.AuditPublicKeyFile())
	if err != nil {
		t.Fatalf("dev made no audit public key: %v", err)
	}
	key := strings.TrimSpace(string(pub))
	out, err := runCLIAs(t, s, "duty", "crisis", "open", "--title", "Coup attempt", "--country", "GN", "--type", "unconstitutional-change", "--severity", "3")
	if err != nil {
		t.Fatalf("crisis open: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`opened crisis (\S+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no crisis id in %q", out)
	}
	id := m[1]
	chain := audit.ChainOf(id)
	verify := func(extra ...string) (string, error) {
		return runCLIAs(t, s, "auditor", append([]string{"audit", "verify", "--crisis", id, "--public-key", key}, extra...)...)
	}
	// Wait for the chain to be anchored (every second here).
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err = verify()
		if err != nil {
			t.Fatalf("audit verify of an intact chain: %v\n%s", err, out)
		}
		if strings.Contains(out, "holds its anchor at record") && strings.Contains(out, "head signed by key") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the chain was never anchored: %s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Anchored up to the current head (the reads above grew it).
	pjs, err := jetstream.New(natsAs(t, s, natsauth.Provisioner))
	if err != nil {
		t.Fatal(err)
	}
	anchors, err := pjs.Stream(ctx, audit.AnchorStream)
	if err != nil {
		t.Fatal(err)
	}
	auditStream, err := pjs.Stream(ctx, audit.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		last, err1 := auditStream.GetLastMsgForSubject(ctx, audit.SubjectOf(chain))
		anc, err2 := anchors.GetLastMsgForSubject(ctx, audit.AnchorSubject(chain))
		if err1 == nil && err2 == nil {
			var r demarchev1.AuditRecord
			var h demarchev1.ChainHead
			if proto.Unmarshal(last.Data, &r) == nil && proto.Unmarshal(anc.Data, &h) == nil && h.GetSequence() == r.GetSequence() {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the chain's head was never anchored")
		}
		time.Sleep(200 * time.Millisecond)
	}

	obs := natsAs(t, s, natsauth.Observer)
	alarms := alarmsOn(t, obs)
	isolatedBefore := scrapeMetrics(t, s.MetricsURL())["demarche_audit_isolated_chains"]
	truncateChain(t, pjs, chain)

	out, err = verify()
	if err == nil || !strings.Contains(err.Error(), "chain "+chain) || !strings.Contains(err.Error(), "anchor") ||
		!(strings.Contains(err.Error(), "truncated") || strings.Contains(err.Error(), "rewritten")) {
		t.Fatalf("audit verify of a truncated chain: %v\n%s", err, out)
	}
	attempt(t, wallDetect, "truncate a crisis's audit chain (copy the stream, drop its last record, make the stream again)", string(natsauth.Provisioner),
		"detected: audit verify fails: "+err.Error())
	a := waitAlarm(t, alarms, audit.AlarmChainIsolated, chain)
	v := waitMetric(t, s, "demarche_audit_isolated_chains", isolatedBefore)
	attempt(t, wallDetect, "(same) the audit service's own checks (watchdog, anchoring round)", string(natsauth.Provisioner),
		"detected: chain-isolated alarm ("+a.GetReason()+"), demarche_audit_isolated_chains = "+strconv.FormatFloat(v, 'f', -1, 64))

	// Now unanchored: the anchors go too (the anchor stream made again, empty).
	if err := pjs.DeleteStream(ctx, audit.AnchorStream); err != nil {
		t.Fatal(err)
	}
	if _, err := pjs.CreateStream(ctx, audit.Resources().Streams[1]); err != nil {
		t.Fatal(err)
	}
	// Records older than the interval plus grace (1s + 1s here) must be covered.
	deadline = time.Now().Add(60 * time.Second)
	for {
		out, err = verify("--anchor-every", "1s", "--anchor-grace", "1s")
		if err != nil && strings.Contains(err.Error(), "not covered") {
			break
		}
		if err == nil && time.Now().After(deadline) {
			t.Fatalf("audit verify passes a truncated chain with its anchors removed:\n%s", out)
		}
		if err != nil && !strings.Contains(err.Error(), "not covered") && time.Now().After(deadline) {
			t.Fatalf("audit verify of an unanchored truncated chain: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(err.Error(), "chain "+chain) || !strings.Contains(err.Error(), "records 1 to ") {
		t.Fatalf("the failure does not name the chain and the records: %v", err)
	}
	attempt(t, wallDetect, "truncate a crisis's audit chain and remove its anchors (unanchored)", string(natsauth.Provisioner),
		"detected: audit verify fails: "+err.Error())
}

// truncateChain removes the last record of chain from the audit stream as
// an insider with the provisioner's rights can: copy the stream (a sourced
// stream), delete the record in the copy (the copy does not deny deletes),
// remove the audit stream and make it again from the copy.
func truncateChain(t *testing.T, pjs jetstream.JetStream, chain string) {
	t.Helper()
	ctx := context.Background()
	const copyName = "ATTACK_AUDIT_COPY"
	src, err := pjs.Stream(ctx, audit.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := src.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: copyName, Storage: jetstream.FileStorage,
		Sources: []*jetstream.StreamSource{{Name: audit.StreamName}}})
	if err != nil {
		t.Fatal(err)
	}
	waitMsgs(t, cp, info.State.Msgs)
	cpCfg := cp.CachedInfo().Config
	cpCfg.Sources = nil // the audit stream will source the copy: no cycle
	if cp, err = pjs.UpdateStream(ctx, cpCfg); err != nil {
		t.Fatal(err)
	}
	last, err := cp.GetLastMsgForSubject(ctx, audit.SubjectOf(chain))
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.DeleteMsg(ctx, last.Sequence); err != nil {
		t.Fatal(err)
	}
	cpInfo, err := cp.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := pjs.DeleteStream(ctx, audit.StreamName); err != nil {
		t.Fatal(err)
	}
	cfg := audit.Resources().Streams[0]
	cfg.Sources = []*jetstream.StreamSource{{Name: copyName}}
	made, err := pjs.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitMsgs(t, made, cpInfo.State.Msgs)
	cfg.Sources = nil
	if _, err := pjs.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := pjs.DeleteStream(ctx, copyName); err != nil {
		t.Fatal(err)
	}
}

func waitMsgs(t *testing.T, st jetstream.Stream, n uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := st.Info(context.Background())
		if err == nil && info.State.Msgs >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s never held %d messages: %v %v", st.CachedInfo().Config.Name, n, info, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
