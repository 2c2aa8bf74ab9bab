package funding_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/funding"
)

var otherFund = &demarchev1.Fund{Id: "other-fund", Name: "Other fund", OpeningBalanceUsd: 5_000, PerCrisisCeilingUsd: 10_000}

// pay files, approves and disburses a request.
func pay(t *testing.T, nc *nats.Conn, crisis, id, fund string, amount int64) (*demarchev1.DisburseResult, error) {
	t.Helper()
	approved(t, nc, crisis, id, fund, amount)
	var res demarchev1.DisburseResult
	err := natsrpc.Call(context.Background(), nc, natsrpc.FundingDisburse, disburseCall(crisis, id, crisis+"-"+id, false), &res)
	return &res, err
}

func balances(t *testing.T, nc *nats.Conn, fund string) (*demarchev1.BalanceResponse, error) {
	t.Helper()
	var res demarchev1.BalanceResponse
	err := natsrpc.Call(context.Background(), nc, natsrpc.FundingBalance, &demarchev1.FundQuery{Fund: fund}, &res)
	return &res, err
}

// forge appends a line to a fund's ledger as an attacker with write access
// to the subject would: correctly encoded, its own hash right.
func forge(t *testing.T, nc *nats.Conn, fund string, e *demarchev1.LedgerEntry) {
	t.Helper()
	h, err := funding.LineHash(e)
	if err != nil {
		t.Fatal(err)
	}
	e.Hash = h
	b, _ := proto.Marshal(e)
	if _, err := nc.Request("demarche.ledger."+fund, b, 5e9); err != nil {
		t.Fatal(err)
	}
}

func ledgerOf(t *testing.T, nc *nats.Conn, fund string) ([]*demarchev1.LedgerEntry, error) {
	var l demarchev1.LedgerResponse
	err := natsrpc.Call(context.Background(), nc, natsrpc.FundingLedger, &demarchev1.FundQuery{Fund: fund}, &l)
	return l.GetEntries(), err
}

// TestLedgerLinesAreHashLinked: every line links to the one before.
func TestLedgerLinesAreHashLinked(t *testing.T) {
	_, _, nc := start(t, t.TempDir(), smallFund)
	for _, id := range []string{"FR-1", "FR-2"} {
		if _, err := pay(t, nc, "NE-crisis", id, "small-fund", 100); err != nil {
			t.Fatal(err)
		}
	}
	lines, err := ledgerOf(t, nc, "small-fund")
	if err != nil || len(lines) != 3 {
		t.Fatalf("%d lines, %v", len(lines), err)
	}
	if err := funding.VerifyLines("small-fund", lines, nil); err != nil {
		t.Fatal(err)
	}
	if lines[0].GetOpenedBy() == "" || lines[2].GetLine() != 3 || !proto.Equal(&demarchev1.LedgerEntry{PrevHash: lines[1].GetHash()}, &demarchev1.LedgerEntry{PrevHash: lines[2].GetPrevHash()}) {
		t.Fatalf("lines not linked: %v", lines)
	}
}

// TestBrokenLinkRefusedAtItsLine: the attack, a correctly encoded
// line crediting the fund, is refused at its line; nothing is paid from the
// fund, its balance is not summed, and the other fund carries on.
func TestBrokenLinkRefusedAtItsLine(t *testing.T) {
	_, _, nc := start(t, t.TempDir(), smallFund, otherFund)
	if _, err := pay(t, nc, "NE-crisis", "FR-1", "small-fund", 100); err != nil {
		t.Fatal(err)
	}
	// The attack: a line that credits the fund, linked to nothing.
	forge(t, nc, "small-fund", &demarchev1.LedgerEntry{Fund: "small-fund", Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING,
		AmountUsd: 999_999_999_999, BalanceAfterUsd: 999_999_999_999, Key: "forged", At: timestamppb.Now(), Line: 3, PrevHash: make([]byte, 32)})
	_, err := ledgerOf(t, nc, "small-fund")
	if !errors.Is(err, funding.ErrLedgerBroken) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("ledger read: %v, want refused at line 3", err)
	}
	if _, err := balances(t, nc, "small-fund"); !errors.Is(err, funding.ErrLedgerBroken) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("balance: %v, want refused at line 3", err)
	}
	if _, err := pay(t, nc, "NE-crisis", "FR-2", "small-fund", 100); !errors.Is(err, funding.ErrLedgerBroken) {
		t.Fatalf("paid from a broken ledger: %v", err)
	}
	all, err := balances(t, nc, "")
	if err != nil || len(all.GetFunds()) != 2 {
		t.Fatalf("all balances: %v %v", all, err)
	}
	for _, f := range all.GetFunds() {
		switch f.GetFund().GetId() {
		case "small-fund":
			if !strings.Contains(f.GetProblem(), "line 3") || f.GetBalanceUsd() != 0 {
				t.Fatalf("broken fund shown as %v", f)
			}
		case "other-fund":
			if f.GetProblem() != "" || f.GetBalanceUsd() != 5_000 {
				t.Fatalf("healthy fund shown as %v", f)
			}
		}
	}
	if _, err := pay(t, nc, "NE-crisis", "FR-3", "other-fund", 100); err != nil {
		t.Fatalf("the other fund stopped: %v", err)
	}
}

// TestPerfectlyLinkedForgeryStillBalances: a forger who links correctly
// still cannot raise the balance, re-open the fund or reset the ceilings.
func TestPerfectlyLinkedForgeryStillBalances(t *testing.T) {
	_, _, nc := start(t, t.TempDir(), smallFund)
	if _, err := pay(t, nc, "NE-crisis", "FR-1", "small-fund", 100); err != nil {
		t.Fatal(err)
	}
	lines, _ := ledgerOf(t, nc, "small-fund")
	last := lines[len(lines)-1]
	forged := &demarchev1.LedgerEntry{Fund: "small-fund", Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT, AmountUsd: 1,
		BalanceAfterUsd: last.GetBalanceAfterUsd() - 1, CrisisId: "NE-crisis", Key: "forged", At: timestamppb.Now(),
		Line: last.GetLine() + 1, PrevHash: last.GetHash()} // ceilings reset: no crisis totals
	forge(t, nc, "small-fund", forged)
	if _, err := ledgerOf(t, nc, "small-fund"); !errors.Is(err, funding.ErrLedgerBroken) || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "per-crisis") {
		t.Fatalf("ceiling reset: %v", err)
	}
}

// TestGarbageOnOneFundIsCorruptionAtItsSequence: a line that does not decode
// is reported at its line and stream sequence, for its fund only.
func TestGarbageOnOneFundIsCorruptionAtItsSequence(t *testing.T) {
	_, _, nc := start(t, t.TempDir(), smallFund, otherFund)
	msg, err := nc.Request("demarche.ledger.small-fund", []byte("\xff\xff garbage"), 5e9)
	if err != nil {
		t.Fatal(err)
	}
	var ack struct{ Seq uint64 }
	_ = jsonUnmarshal(msg.Data, &ack)
	_, err = ledgerOf(t, nc, "small-fund")
	if !errors.Is(err, funding.ErrLedgerBroken) || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "does not decode") ||
		!strings.Contains(err.Error(), "stream sequence "+itoa(ack.Seq)) {
		t.Fatalf("garbage line: %v (stored at %d)", err, ack.Seq)
	}
	if _, err := pay(t, nc, "NE-crisis", "FR-1", "other-fund", 100); err != nil {
		t.Fatalf("the other fund stopped: %v", err)
	}
	if l, err := ledgerOf(t, nc, "other-fund"); err != nil || len(l) != 2 {
		t.Fatalf("other fund's ledger: %v %v", l, err)
	}
}

// TestVanishedLedgerIsNotReopened: the issue's `nats stream rm
// DEMARCHE_LEDGER`. A service never opens a fund: started with a configured
// fund never opened, it refuses to start, saying how to open it, and raises
// the alarm; once opened (explicitly, OpenFund) it serves. After the ledger
// vanished, it refuses to start again (missing: an alarm on the served
// registry and on demarche.audit.alarm), and opening the fund again is
// refused too: a vanished ledger is restored from a backup, never re-opened.
func TestVanishedLedgerIsNotReopened(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.ServerIn(t, dir)
	ctx := context.Background()
	nc, js := natstest.Connect(t, srv.URL())
	reported := make(chan *demarchev1.AuditAlarm, 8)
	if _, err := nc.Subscribe(funding.AlarmSubject, func(m *nats.Msg) {
		var a demarchev1.AuditAlarm
		if proto.Unmarshal(m.Data, &a) == nil {
			reported <- &a
		}
	}); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	notOpened := metrics.FundingLedgerAlarms.WithLabelValues("not-opened")
	missing := metrics.FundingLedgerAlarms.WithLabelValues("missing")
	before := testutil.ToFloat64(notOpened)
	if svc, err := serve(srv.URL(), smallFund); err == nil {
		svc.Stop()
		t.Fatal("a service started with a configured fund never opened")
	} else if !errors.Is(err, funding.ErrNotOpened) || !strings.Contains(err.Error(), "demarche admin open-fund") || !strings.Contains(err.Error(), "small-fund") {
		t.Fatalf("never-opened fund: %v, want the refusal saying how to open it", err)
	}
	if got := testutil.ToFloat64(notOpened) - before; got != 1 {
		t.Fatalf("demarche_funding_ledger_alarms_total{alarm=not-opened} rose by %v, want 1", got)
	}
	expectAlarm(t, reported, "small-fund", "never been opened")

	openFunds(t, srv.URL(), smallFund)
	svc, err := serve(srv.URL(), smallFund)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pay(t, nc, "NE-crisis", "FR-1", "small-fund", 300); err != nil {
		t.Fatal(err)
	}
	svc.Stop()
	if err := js.DeleteStream(ctx, funding.LedgerStream); err != nil {
		t.Fatal(err)
	}
	before = testutil.ToFloat64(missing)
	if svc, err := serve(srv.URL(), smallFund); err == nil {
		svc.Stop()
		t.Fatal("a service started with a fund whose ledger vanished")
	} else if !errors.Is(err, funding.ErrLedgerMissing) || !strings.Contains(err.Error(), "test provisioning") || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("vanished ledger: %v, want the refusal naming who opened it", err)
	}
	if got := testutil.ToFloat64(missing) - before; got != 1 {
		t.Fatalf("demarche_funding_ledger_alarms_total{alarm=missing} rose by %v, want 1", got)
	}
	expectAlarm(t, reported, "small-fund", "ledger is gone")
	// Nor does an explicit opening re-open it.
	if _, err := funding.OpenFund(ctx, nc, smallFund, "a second try", zap.NewNop()); !errors.Is(err, funding.ErrLedgerMissing) {
		t.Fatalf("re-opening a fund whose ledger vanished: %v, want ErrLedgerMissing", err)
	}
	if st, err := js.Stream(ctx, funding.LedgerStream); err == nil && st.CachedInfo().State.Msgs != 0 {
		t.Fatalf("the ledger was re-opened: %d lines", st.CachedInfo().State.Msgs)
	}
}

// TestOpeningIsOnceAndIdempotent: opening a fund again with the same balance
// writes nothing (a retry after a lost answer) and asks audit to record the
// same act again; with another balance it is refused.
func TestOpeningIsOnceAndIdempotent(t *testing.T) {
	srv := natstest.ServerIn(t, t.TempDir())
	first := openFunds(t, srv.URL(), smallFund)
	again := openFunds(t, srv.URL(), smallFund)
	if len(first) != 1 || len(again) != 1 || !proto.Equal(first[0], again[0]) || first[0].GetOpenedBy() != "test provisioning" || first[0].GetAmountUsd() != 1_000 {
		t.Fatalf("opening lines recorded: %v then %v", first, again)
	}
	nc, _ := natstest.Connect(t, srv.URL())
	other := proto.Clone(smallFund).(*demarchev1.Fund)
	other.OpeningBalanceUsd = 2_000
	if _, err := funding.OpenFund(context.Background(), nc, other, "someone", zap.NewNop()); !errors.Is(err, funding.ErrOpenedOtherwise) || !strings.Contains(err.Error(), "test provisioning") {
		t.Fatalf("opening with another balance: %v", err)
	}
	svc, err := serve(srv.URL(), smallFund)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	if l, err := ledgerOf(t, nc, "small-fund"); err != nil || len(l) != 1 {
		t.Fatalf("ledger after two openings: %v %v", l, err)
	}
}

func expectAlarm(t *testing.T, reported <-chan *demarchev1.AuditAlarm, fund, says string) {
	t.Helper()
	select {
	case a := <-reported:
		if a.GetKind() != funding.LedgerAlarmKind || a.GetEventId() != "ledger-"+fund || !strings.Contains(a.GetReason(), says) {
			t.Fatalf("reported alarm %v, want %s's saying %q", a, fund, says)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alarm published on " + funding.AlarmSubject)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
