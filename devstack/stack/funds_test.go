package stack_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/funding"
)

// fundOpenings are the fund-opening records of the global audit chain, by fund.
func fundOpenings(t *testing.T, s *stack.Stack) map[string][]*demarchev1.AuditRecord {
	t.Helper()
	nc, _ := jsAs(t, s, natsauth.Gateway) // chains are read through the gateway
	chain, err := audit.FetchChain(context.Background(), nc, "", "auditor-test")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*demarchev1.AuditRecord{}
	for _, r := range chain.GetRecords() {
		if r.GetEventType() == funding.FundOpenedEventType {
			fund := strings.Fields(strings.TrimPrefix(r.GetDetail(), funding.FundOpenedEventType+": fund "))[0]
			out[fund] = append(out[fund], r)
		}
	}
	return out
}

func ledgerLines(t *testing.T, js jetstream.JetStream, fund string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), funding.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("demarche.ledger."+fund))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects["demarche.ledger."+fund]
}

// TestDevOpensDemoFundsOnceAndRecordsIt: `demarche dev` on the data folder it
// creates opens the demo funds, each recorded in its opening line and on the
// global audit chain (which fund, which balance, who: the provisioner);
// restarted on the same folder it opens nothing (no new line, no new record).
func TestDevOpensDemoFundsOnceAndRecordsIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created by the stack
	s := startStack(t, dir)
	if _, err := os.Stat(filepath.Join(dir, stack.FundsPendingFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there after the funds were opened: %v", stack.FundsPendingFile, err)
	}
	opened := fundOpenings(t, s)
	for _, f := range funding.DemoFunds() {
		recs := opened[f.GetId()]
		if len(recs) != 1 {
			t.Fatalf("fund %s: %d fund-opened records on the global chain, want 1 (%v)", f.GetId(), len(recs), opened)
		}
		r := recs[0]
		if r.GetPrincipal() != audit.FundOpenerIdentity || r.GetKind() != demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION ||
			!strings.Contains(r.GetDetail(), fmt.Sprintf("opened with %d USD", f.GetOpeningBalanceUsd())) ||
			!strings.Contains(r.GetDetail(), "demarche dev, new data folder "+dir) {
			t.Fatalf("fund %s's record: %v", f.GetId(), r)
		}
	}
	out, err := runCLI(t, s, "audit", "verify", "--as", "auditor-ada")
	if err != nil || !strings.Contains(out, "chain global verifies") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	s.Stop()

	s = startStack(t, dir)
	defer s.Stop()
	again := fundOpenings(t, s)
	_, js := jsOf(t, s)
	for _, f := range funding.DemoFunds() {
		if n := len(again[f.GetId()]); n != 1 {
			t.Fatalf("after a restart on the same folder fund %s has %d fund-opened records, want 1", f.GetId(), n)
		}
		if n := ledgerLines(t, js, f.GetId()); n != 1 {
			t.Fatalf("after a restart fund %s's ledger holds %d lines, want its one opening line", f.GetId(), n)
		}
	}
}

// TestOpenFundIsAnAuditedAdminAct: on a running platform, a fund of a funds
// file is opened only by `demarche admin open-fund` as the provisioner: its
// opening line and a global-chain record (principal provisioner, the
// balance, the reason) are written, and a funding service configured with it
// then starts; a funding service configured with a fund nobody opened
// refuses to start, saying how to open it, and the alarm counter rises.
// Nobody else may open a fund (the CLI refuses the operator; NATS refuses
// every identity but the provisioner the record's subject).
func TestOpenFundIsAnAuditedAdminAct(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	defer s.Stop()
	file := filepath.Join(t.TempDir(), "funds.yaml")
	if err := os.WriteFile(file, []byte("funds:\n  - id: relief-window\n    name: Relief window\n    opening_balance_usd: 750_000\n    per_crisis_ceiling_usd: 250_000\n"+
		"  - id: never-opened\n    name: Never opened\n    opening_balance_usd: 10\n    per_crisis_ceiling_usd: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	startFunding := func(ids ...string) (*funding.Service, error) {
		all, err := funding.LoadFunds(file)
		if err != nil {
			t.Fatal(err)
		}
		var funds []*demarchev1.Fund
		for _, f := range all {
			for _, id := range ids {
				if f.GetId() == id {
					funds = append(funds, f)
				}
			}
		}
		return funding.StartWith(ctx, funding.Config{NATSURL: s.NATSURLFor(natsauth.Funding), Funds: funds, TemporalAddress: s.TemporalAddress()}, zap.NewNop())
	}
	// Not opened: the service refuses to start, with the alarm.
	notOpened := metrics.FundingLedgerAlarms.WithLabelValues("not-opened")
	before := testutil.ToFloat64(notOpened)
	if svc, err := startFunding("relief-window"); err == nil {
		svc.Stop()
		t.Fatal("a funding service started with a fund nobody opened")
	} else if !errors.Is(err, funding.ErrNotOpened) || !strings.Contains(err.Error(), "demarche admin open-fund") {
		t.Fatalf("start with a never-opened fund: %v", err)
	}
	if got := testutil.ToFloat64(notOpened) - before; got != 1 {
		t.Fatalf("demarche_funding_ledger_alarms_total{alarm=not-opened} rose by %v, want 1", got)
	}

	// The operator's credentials cannot open a fund.
	if out, err := runCLI(t, s, "admin", "open-fund", "--funds", file, "--fund", "relief-window", "--reason", "x"); err == nil || !strings.Contains(err.Error(), "runs as the provisioner") {
		t.Fatalf("open-fund as the operator: %v\n%s", err, out)
	}
	onc, _ := jsOf(t, s)
	if err := natsrpc.Call(ctx, onc, natsrpc.AuditFundOpened, &demarchev1.LedgerEntry{Fund: "relief-window"}, &demarchev1.AuditOperationResponse{}); err == nil {
		t.Fatal("the operator asked audit to record a fund opening")
	}
	// The provisioner opens it: one line, one record.
	provisioner := natsauth.FileName(filepath.Join(dir, stack.CredentialsDir), natsauth.Provisioner)
	out, err := runCLI(t, s, "admin", "open-fund", "--funds", file, "--fund", "relief-window", "--reason", "board decision 42", "--nats-creds", provisioner)
	if err != nil || !strings.Contains(out, "fund relief-window opened with 750000 USD") || !strings.Contains(out, "principal provisioner") {
		t.Fatalf("open-fund: %v\n%s", err, out)
	}
	recs := fundOpenings(t, s)["relief-window"]
	if len(recs) != 1 || recs[0].GetPrincipal() != "provisioner" || !strings.Contains(recs[0].GetDetail(), "opened with 750000 USD") ||
		!strings.Contains(recs[0].GetDetail(), "board decision 42") || !strings.Contains(recs[0].GetDetail(), "demarche-provisioner via demarche admin open-fund") {
		t.Fatalf("audit record of the opening: %v", recs)
	}
	// Again: nothing written, the same record.
	out, err = runCLI(t, s, "admin", "open-fund", "--funds", file, "--fund", "relief-window", "--reason", "retry", "--nats-creds", provisioner)
	if err != nil || !strings.Contains(out, "was already open") {
		t.Fatalf("open-fund again: %v\n%s", err, out)
	}
	_, js := jsOf(t, s)
	if n := ledgerLines(t, js, "relief-window"); n != 1 {
		t.Fatalf("relief-window's ledger holds %d lines after two openings, want 1", n)
	}
	if n := len(fundOpenings(t, s)["relief-window"]); n != 1 {
		t.Fatalf("%d records of relief-window's opening, want 1", n)
	}
	svc, err := startFunding("relief-window")
	if err != nil {
		t.Fatalf("funding with an opened fund: %v", err)
	}
	defer svc.Stop()
	bal, err := svc.Store.Balance(ctx, &demarchev1.FundQuery{Fund: "relief-window"})
	if err != nil || bal.GetFunds()[0].GetBalanceUsd() != 750_000 {
		t.Fatalf("balance of the opened fund: %v %v", bal, err)
	}
}

// TestVanishedLedgerIsAnAlarm: the issue's `nats stream rm DEMARCHE_LEDGER`
// then a restart of `demarche dev`: the funding service refuses to start
// (the error names each fund and who opened it) and raises the alarm; the
// funds are never re-opened at their opening balances.
func TestVanishedLedgerIsAnAlarm(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	out, err := runCLI(t, s, "fund", "balance")
	if err != nil || !strings.Contains(out, "flexible-financing") || strings.Contains(out, "REFUSED") {
		t.Fatalf("fund balance on a new data folder: %v\n%s", err, out)
	}
	// Only the provisioner may remove a stream.
	pnc, err := nats.Connect(s.NATSURLFor(natsauth.Provisioner), natsx.InboxOption(s.NATSURLFor(natsauth.Provisioner)))
	if err != nil {
		t.Fatal(err)
	}
	pjs, _ := jetstream.New(pnc)
	if err := pjs.DeleteStream(context.Background(), funding.LedgerStream); err != nil {
		t.Fatal(err)
	}
	pnc.Close()
	s.Stop()

	missing := metrics.FundingLedgerAlarms.WithLabelValues("missing")
	before := testutil.ToFloat64(missing)
	cfg := stack.Config{DataDir: dir, TemporalLogLevel: "error", Codec: testCodec(t, dir), NoUI: true}
	if s, err := stack.Start(context.Background(), cfg, fileLogger(t, t.TempDir())); err == nil {
		s.Stop()
		t.Fatal("demarche dev started with its funds' ledger gone")
	} else if !errors.Is(err, funding.ErrLedgerMissing) || !strings.Contains(err.Error(), "refusing to start") ||
		!strings.Contains(err.Error(), "ledger is gone") || !strings.Contains(err.Error(), "demarche dev, new data folder") {
		t.Fatalf("restart after the ledger vanished: %v", err)
	}
	if got := testutil.ToFloat64(missing) - before; got != float64(len(funding.DemoFunds())) {
		t.Fatalf("demarche_funding_ledger_alarms_total{alarm=missing} rose by %v, want %d (one per fund)", got, len(funding.DemoFunds()))
	}
	// Nothing was re-opened (looked at without the funding service).
	cfg.Without = []string{"funding"}
	s, err = stack.Start(context.Background(), cfg, fileLogger(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	_, js := jsOf(t, s)
	for _, f := range funding.DemoFunds() {
		if n := ledgerLines(t, js, f.GetId()); n != 0 {
			t.Fatalf("fund %s was re-opened: %d ledger lines", f.GetId(), n)
		}
	}
	// The funding service run on its own (as in production) refuses too, at once.
	t.Setenv("DEMARCHE_DATA_DIR", dir) // its Temporal key, as demarche dev's CLI finds it
	out, err = runCLI(t, s, "serve", "funding", "--funds", filepath.Join(dir, stack.DemoFundsFile), "--metrics-listen", "",
		"--nats-creds", natsauth.FileName(filepath.Join(dir, stack.CredentialsDir), natsauth.Funding))
	if err == nil || !errors.Is(err, funding.ErrLedgerMissing) || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("serve funding with its ledger gone: %v\n%s", err, out)
	}
}
