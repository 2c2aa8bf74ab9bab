package attack_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/funding"
)

const wallFunds = "funds"

// TestFundsOpenOnceByTheProvisionerAlone: opening a fund is the
// provisioner's audited act. Every other internal credential asking audit to
// record a fund opening (a forged record in the global chain) is refused by a
// permission naming the subject; the provisioner's credential re-opening a
// live fund at another balance is refused by open-fund, and a second opening
// line written straight to the ledger is detected at once (the ledger
// watchdog's alarm, on /metrics and demarche.audit.alarm) and the fund
// refused, never paid from at a fresh balance.
func TestFundsOpenOnceByTheProvisionerAlone(t *testing.T) {
	s := startDetectStack(t)
	ctx := context.Background()
	line := &demarchev1.LedgerEntry{Fund: "flexible-financing", Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING,
		AmountUsd: 50_000_000, BalanceAfterUsd: 50_000_000, Key: "open-flexible-financing", At: timestamppb.Now(), OpenedBy: "mallory",
		Line: 1, PrevHash: make([]byte, 32)}
	h, err := funding.LineHash(line)
	if err != nil {
		t.Fatal(err)
	}
	line.Hash = h
	b, err := proto.Marshal(line)
	if err != nil {
		t.Fatal(err)
	}

	// 1. Another credential asks audit to record a fund opening.
	for _, id := range []natsauth.Identity{natsauth.Worker, natsauth.Funding, natsauth.Gateway, natsauth.Operator} {
		nc, errs := natsWatched(t, s, id)
		if err := nc.Publish(natsrpc.AuditFundOpened, b); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		msg, ok := violation(t, errs, natsrpc.AuditFundOpened)
		if !ok {
			t.Fatalf("%s asked audit to record a fund opening without a permissions violation", id)
		}
		attempt(t, wallFunds, "ask audit to record a forged fund opening (50M into flexible-financing)", string(id), "refused: "+msg)
	}

	// 2. The provisioner re-opens a live fund at another balance with open-fund.
	pnc := natsAs(t, s, natsauth.Provisioner)
	bigger := &demarchev1.Fund{Id: "flexible-financing", Name: "Flexible", OpeningBalanceUsd: 50_000_000, PerCrisisCeilingUsd: 1_000_000}
	if _, err := funding.OpenFund(ctx, pnc, bigger, "mallory", zap.NewNop()); !errors.Is(err, funding.ErrOpenedOtherwise) {
		t.Fatalf("re-opening a live fund at another balance: %v", err)
	} else {
		attempt(t, wallFunds, "demarche admin open-fund on a live fund at another balance", string(natsauth.Provisioner), "refused: "+err.Error())
	}

	// 3. The provisioner writes a second opening line straight to the ledger.
	alarms := alarmsOn(t, natsAs(t, s, natsauth.Observer))
	broken := `demarche_funding_ledger_alarms_total{alarm="broken"}`
	before := scrapeMetrics(t, s.MetricsURL())[broken]
	pjs, err := jetstream.New(pnc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pjs.Publish(ctx, "demarche.ledger.flexible-financing", b); err != nil {
		t.Fatal(err)
	}
	v := waitMetric(t, s, broken, before)
	a := waitAlarm(t, alarms, audit.AlarmLedgerBroken, "flexible-financing")
	var bal demarchev1.BalanceResponse
	if err := callFunding(ctx, natsAs(t, s, natsauth.Observer), &bal); err != nil {
		t.Fatal(err)
	}
	for _, f := range bal.GetFunds() {
		if f.GetFund().GetId() == "flexible-financing" && (f.GetProblem() == "" || f.GetBalanceUsd() != 0) {
			t.Fatalf("flexible-financing after a second opening line: balance %d, problem %q", f.GetBalanceUsd(), f.GetProblem())
		}
	}
	if !strings.Contains(a.GetReason(), "line") {
		t.Fatalf("alarm %v does not say where the ledger breaks", a)
	}
	attempt(t, wallFunds, "write a second opening line (50M) to flexible-financing's ledger", string(natsauth.Provisioner),
		"detected: "+a.GetReason()+"; "+broken+" = "+strconv.FormatFloat(v, 'f', -1, 64)+"; the fund is refused")
}
