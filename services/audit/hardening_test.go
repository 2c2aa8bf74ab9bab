package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/origin"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/workflows/crisis"
)

const crisisB = "GN-20261127-AUD02"

// alarmsOn collects the alarms published on demarche.audit.alarm.
func alarmsOn(t *testing.T, nc *nats.Conn) <-chan *demarchev1.AuditAlarm {
	t.Helper()
	ch := make(chan *demarchev1.AuditAlarm, 100)
	sub, err := nc.Subscribe(SubjectAlarm, func(m *nats.Msg) {
		var a demarchev1.AuditAlarm
		if proto.Unmarshal(m.Data, &a) == nil {
			ch <- &a
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

func waitAlarm(t *testing.T, ch <-chan *demarchev1.AuditAlarm, kind, contains string) *demarchev1.AuditAlarm {
	t.Helper()
	timeout := time.After(30 * time.Second) // generous: the alarm comes within moments
	for {
		select {
		case a := <-ch:
			if a.GetKind() == kind && strings.Contains(a.GetReason(), contains) {
				return a
			}
		case <-timeout:
			t.Fatalf("no %s alarm mentioning %q", kind, contains)
		}
	}
}

func TestEarlyWarningSourceIsEarlyWarnings(t *testing.T) {
	if EarlyWarningSource != earlywarning.EventSource {
		t.Fatalf("audit accepts WarningRaised from %q, early warning publishes as %q", EarlyWarningSource, earlywarning.EventSource)
	}
}

// TestForgedEventsAreRefused: the forged CloudEvents (a decision, a
// CrisisClosed for an open crisis) are not chained as genuine: each raises
// an alarm (event and global-chain record) and is dead-lettered, and the
// crisis's genuine events are chained as before.
func TestForgedEventsAreRefused(t *testing.T) {
	e := newEnv(t)
	alarms := alarmsOn(t, e.nc)
	svc := e.start(nil)
	defer svc.Stop()
	e.publish(crisisA, 1)
	closed := func(id string) eventbus.Event {
		ev := testEvent(crisisA, 2)
		ev.ID, ev.Data = id, &demarchev1.CrisisClosed{CrisisId: crisisA, Outcome: demarchev1.Outcome_OUTCOME_AVERTED, ClosedAt: timestamppb.Now(), Lessons: []string{"forged"}}
		return ev
	}
	forgeries := map[string]func(eventbus.Event) eventbus.Event{
		"ce-subject":                   func(ev eventbus.Event) eventbus.Event { ev.Subject = crisisB; return ev },
		"is not the crisis workflow's": func(ev eventbus.Event) eventbus.Event { ev.Source = "/mallory"; return ev },
		"does not say which workflow":  func(ev eventbus.Event) eventbus.Event { ev.Origin = eventbus.Origin{}; return ev },
		"not from crisis":              func(ev eventbus.Event) eventbus.Event { ev.Origin.WorkflowID = crisis.WorkflowID(crisisB); return ev },
		"WarningRaised only":           func(ev eventbus.Event) eventbus.Event { ev.Source = EarlyWarningSource; return ev },
	}
	n := 0
	for reason, forge := range forgeries {
		n++
		ev := forge(closed("forged-" + strings.ReplaceAll(reason, " ", "-")))
		if _, err := e.pub.Publish(context.Background(), route(crisisA), ev); err != nil {
			t.Fatal(err)
		}
		waitAlarm(t, alarms, AlarmForgedEvent, reason)
	}
	e.publish(crisisA, 3) // genuine, after the forgeries
	recs := waitChain(t, svc.Store, ChainOf(crisisA), 2)
	for _, r := range recs {
		if strings.HasPrefix(r.GetEventId(), "forged") {
			t.Fatalf("forged event chained: %v", r)
		}
		if r.GetWorkflowId() != crisis.WorkflowID(crisisA) || r.GetHistoryEventId() == 0 || r.GetRunId() == "" {
			t.Fatalf("record without its origin: %v", r)
		}
	}
	if len(recs) != 2 {
		t.Fatalf("crisis chain holds %d records, want the 2 genuine events", len(recs))
	}
	var alarmRecords int
	for _, r := range waitChain(t, svc.Store, GlobalChain, 2+n) {
		if r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_ALARM {
			alarmRecords++
		}
	}
	if alarmRecords != n {
		t.Fatalf("%d alarm records on the global chain, want %d", alarmRecords, n)
	}
	if _, err := Verify(ChainOf(crisisA), recs, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestForgedRecordIsFlagged: a record appended to a crisis chain by anything
// but the audit service, perfectly linked, is caught by the watchdog (the
// chain is isolated, the alarm raised) and by Verify at that record.
func TestForgedRecordIsFlagged(t *testing.T) {
	e := newEnv(t)
	alarms := alarmsOn(t, e.nc)
	_, key, _ := ed25519.GenerateKey(nil)
	svc := e.start(key)
	defer svc.Stop()
	for n := 1; n <= 3; n++ {
		e.publish(crisisA, n)
	}
	recs := waitChain(t, svc.Store, ChainOf(crisisA), 3)
	forged := proto.Clone(recs[2]).(*demarchev1.AuditRecord)
	forged.EventId, forged.EventType, forged.Principal, forged.Signature = "forged-closure", "org.demarche.crisis.crisis_closed.v1", "mallory", nil
	if err := link(forged, recs[2]); err != nil {
		t.Fatal(err)
	}
	b, _ := Encode(forged)
	if _, err := e.js.Publish(context.Background(), SubjectOf(ChainOf(crisisA)), b); err != nil {
		t.Fatal(err)
	}
	waitAlarm(t, alarms, AlarmChainIsolated, "not signed by the audit service's key")
	if svc.Store.Isolated()[ChainOf(crisisA)] == "" {
		t.Fatal("chain not isolated")
	}
	chain, err := svc.Store.ReadChain(context.Background(), &demarchev1.AuditChainRequest{CrisisId: crisisA, Reader: "auditor"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(ChainOf(crisisA), chain.GetRecords(), VerifyOptions{Head: chain.GetHead(), TrustedKey: key.Public().(ed25519.PublicKey)})
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Record != 4 || ve.Field != "signature" {
		t.Fatalf("verify: %v, want a break at record 4 (signature)", err)
	}
	t.Log(err)
}

// TestGarbageOnOneChainDoesNotHoldUpAnother: the garbage message on
// demarche.audit.crisis.<A> isolates A's chain (alarm); B's events are
// chained while A is isolated, and A's events still reach the global chain.
func TestGarbageOnOneChainDoesNotHoldUpAnother(t *testing.T) {
	e := newEnv(t)
	alarms := alarmsOn(t, e.nc)
	svc := e.start(nil)
	defer svc.Stop()
	e.publish(crisisA, 1)
	e.publish(crisisB, 1)
	waitChain(t, svc.Store, ChainOf(crisisB), 1)
	waitChain(t, svc.Store, ChainOf(crisisA), 1)
	garbageAt := time.Now()
	if _, err := e.js.Publish(context.Background(), SubjectOf(ChainOf(crisisA)), []byte("\xff\xffgarbage")); err != nil {
		t.Fatal(err)
	}
	// Events of both crises, A's first: in one-at-a-time stream order, B's
	// come after A's, so B's arriving proves A's did not hold them up.
	for n := 2; n <= 6; n++ {
		e.publish(crisisA, n)
	}
	for n := 2; n <= 6; n++ {
		e.publish(crisisB, n)
	}
	waitAlarm(t, alarms, AlarmChainIsolated, "does not decode")
	t.Logf("alarm %v after the garbage was stored", time.Since(garbageAt).Round(time.Millisecond)) // a figure, not a bound
	recsB := waitChain(t, svc.Store, ChainOf(crisisB), 6)
	t.Logf("B's 5 later events chained %v after the garbage", time.Since(garbageAt).Round(time.Millisecond))
	if _, err := Verify(ChainOf(crisisB), recsB, VerifyOptions{}); err != nil {
		t.Fatalf("B's chain: %v", err)
	}
	if svc.Store.Isolated()[ChainOf(crisisA)] == "" {
		t.Fatal("A's chain not isolated")
	}
	// A's events went on the global chain, each saying its chain is isolated.
	var aOnGlobal int
	for _, r := range waitChain(t, svc.Store, GlobalChain, 12) {
		if r.GetCrisisId() == crisisA && r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT && strings.Contains(r.GetDetail(), "isolated") {
			aOnGlobal++
		}
	}
	if aOnGlobal != 5 {
		t.Fatalf("%d of A's 5 later events on the global chain", aOnGlobal)
	}
	// Verify names the garbage record.
	chain, err := svc.Store.ReadChain(context.Background(), &demarchev1.AuditChainRequest{CrisisId: crisisA, Reader: "auditor"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(ChainOf(crisisA), chain.GetRecords(), VerifyOptions{Head: chain.GetHead()})
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Record != 2 || ve.Field != "encoding" {
		t.Fatalf("verify: %v, want the garbage at record 2", err)
	}
	// A restarted service finds the bad head again by itself.
	svc.Stop()
	svc2 := e.start(nil)
	defer svc2.Stop()
	e.publish(crisisA, 7)
	waitAlarm(t, alarms, AlarmChainIsolated, "does not decode")
}

// TestTruncationDetectedAgainstAnchor: a chain anchored, then cut short
// (its last records deleted) or rewritten, verifies against its own head but
// not against its anchor, from the stream or from the anchor file.
func TestTruncationDetectedAgainstAnchor(t *testing.T) {
	e := newEnv(t)
	_, key, _ := ed25519.GenerateKey(nil)
	file := filepath.Join(t.TempDir(), "anchors.jsonl")
	svc, err := Start(context.Background(), Config{NATSURL: e.srv.URL(), SigningKey: key, AnchorEvery: -1, AnchorFile: file}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	for n := 1; n <= 6; n++ {
		e.publish(crisisA, n)
	}
	waitChain(t, svc.Store, ChainOf(crisisA), 6)
	if n, err := svc.Store.Anchor(context.Background()); err != nil || n < 2 {
		t.Fatalf("anchored %d chains: %v", n, err)
	}
	if n, _ := svc.Store.Anchor(context.Background()); n != 0 {
		t.Fatalf("anchored %d unchanged chains again", n)
	}
	pub := key.Public().(ed25519.PublicKey)
	read := func() *demarchev1.AuditChain {
		c, err := svc.Store.ReadChain(context.Background(), &demarchev1.AuditChainRequest{CrisisId: crisisA, Reader: "auditor"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	before := read()
	if before.GetAnchor().GetSequence() != 6 {
		t.Fatalf("anchor %v", before.GetAnchor())
	}
	if res, err := Verify(ChainOf(crisisA), before.GetRecords(), VerifyOptions{Head: before.GetHead(), Anchor: before.GetAnchor(), TrustedKey: pub}); err != nil || res.Anchored != 6 {
		t.Fatalf("intact chain against its anchor: %v", err)
	}
	// The attack: JetStream refuses to delete records (deny delete cannot be
	// lifted), so whoever holds the provisioner's rights removes the stream and
	// writes back the chain's first four records, exactly as they were
	// (reading the chain then appends its audit-read record: five).
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, StreamName); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateStream(ctx, Resources().Streams[0]); err != nil {
		t.Fatal(err)
	}
	for _, r := range before.GetRecords()[:4] {
		b, _ := Encode(r)
		if _, err := e.js.Publish(ctx, SubjectOf(ChainOf(crisisA)), b); err != nil {
			t.Fatal(err)
		}
	}
	after := read()
	if _, err := Verify(ChainOf(crisisA), after.GetRecords(), VerifyOptions{Head: after.GetHead(), TrustedKey: pub}); err != nil {
		t.Fatalf("the truncated chain should still match its (new) head: %v", err)
	}
	_, err = Verify(ChainOf(crisisA), after.GetRecords(), VerifyOptions{Head: after.GetHead(), Anchor: after.GetAnchor(), TrustedKey: pub})
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Field != "anchor" || ve.Record != 6 || !strings.Contains(err.Error(), "truncated") || after.GetHead().GetSequence() != 5 {
		t.Fatalf("truncation against the anchor: %v", err)
	}
	t.Log(err)
	// The same from the exported anchor file, off the server.
	fromFile, err := ReadAnchorFile(file, ChainOf(crisisA))
	if err != nil || fromFile.GetSequence() != 6 {
		t.Fatalf("anchor file: %v %v", fromFile, err)
	}
	if _, err := Verify(ChainOf(crisisA), after.GetRecords(), VerifyOptions{Anchor: fromFile, TrustedKey: pub}); !errors.As(err, &ve) || ve.Field != "anchor" {
		t.Fatalf("truncation against the anchor file: %v", err)
	}
	// The anchor stream refuses anyone deleting anchors.
	as, _ := e.js.Stream(ctx, AnchorStream)
	if err := as.Purge(ctx); err == nil {
		t.Fatal("anchors purged")
	}
	if b, _ := os.ReadFile(file); len(b) == 0 {
		t.Fatal("anchor file empty")
	}
}

// TestOperationRecords: AppendOperation (the demarche.audit.operation
// endpoint) records a terminate on the crisis's chain and the global chain,
// once however often it is sent.
func TestOperationRecords(t *testing.T) {
	e := newEnv(t)
	svc := e.start(nil)
	defer svc.Stop()
	e.publish(crisisA, 1)
	waitChain(t, svc.Store, ChainOf(crisisA), 1)
	req := &demarchev1.AuditOperationRequest{CrisisId: crisisA, WorkflowId: crisis.WorkflowID(crisisA), RunId: "run-1", HistoryEventId: 42,
		Operation: "terminate", Identity: "mallory@laptop", Reason: "oops", Time: timestamppb.Now(), EventId: "run-1/42"}
	for i := 0; i < 2; i++ {
		if _, err := RecordOperation(context.Background(), Over(e.nc), req); err != nil {
			t.Fatal(err)
		}
	}
	recs := waitChain(t, svc.Store, ChainOf(crisisA), 2)
	if len(recs) != 2 || recs[1].GetKind() != demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION || recs[1].GetHistoryEventId() != 42 ||
		recs[1].GetPrincipal() != "mallory@laptop" || !strings.HasPrefix(recs[1].GetDetail(), "terminate") {
		t.Fatalf("operation records: %v", recs)
	}
	bad := proto.Clone(req).(*demarchev1.AuditOperationRequest)
	bad.Operation = "delete"
	if err := Over(e.nc)(context.Background(), SubjectOperation, bad, &demarchev1.AuditOperationResponse{}); err == nil || !strings.Contains(err.Error(), "operation") {
		t.Fatalf("bad operation: %v", err)
	}
}

// TestSharedGuardNamesTheWorkflow keeps pkg/origin's publishers equal to
// the workflow's and the worker's (pkg cannot import workflows).
func TestSharedGuardNamesTheWorkflow(t *testing.T) {
	if origin.WorkflowSource != crisis.EventSource || origin.OutsideWatchSource != crisis.OutsideWatchSource ||
		origin.WorkflowIDPrefix+crisisB != crisis.WorkflowID(crisisB) {
		t.Fatalf("pkg/origin names %q, %q, %q; the workflow %q, %q, %q", origin.WorkflowSource, origin.OutsideWatchSource,
			origin.WorkflowIDPrefix+crisisB, crisis.EventSource, crisis.OutsideWatchSource, crisis.WorkflowID(crisisB))
	}
}
