package funding_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/funding"
)

var smallFund = &demarchev1.Fund{Id: "small-fund", Name: "Small fund", OpeningBalanceUsd: 1_000, PerCrisisCeilingUsd: 10_000}

// crises is the fake crises' workflows of the test running (tests that start
// a service do not run in parallel).
var crises = newFakeCrises()

func start(t *testing.T, dir string, funds ...*demarchev1.Fund) (*natsembed.Server, *funding.Service, *nats.Conn) {
	t.Helper()
	srv := natstest.ServerIn(t, dir)
	openFunds(t, srv.URL(), funds...)
	svc, err := serve(srv.URL(), funds...)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(); svc.Stop(); srv.Stop() })
	return srv, svc, nc
}

// serve starts the funding service on funds opened before (openFunds).
func serve(url string, funds ...*demarchev1.Fund) (*funding.Service, error) {
	return funding.StartWith(context.Background(), funding.Config{NATSURL: url, Funds: funds, Decisions: crises}, zap.NewNop())
}

// openFunds opens funds as provisioning does (funding.OpenFund), with a
// stand-in for the audit service's fund-opened endpoint (the stack's tests
// check the real record on the real chain).
func openFunds(t *testing.T, url string, funds ...*demarchev1.Fund) []*demarchev1.LedgerEntry {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var recorded []*demarchev1.LedgerEntry
	var mu sync.Mutex
	sub, err := nc.Subscribe(natsrpc.AuditFundOpened, func(m *nats.Msg) {
		var line demarchev1.LedgerEntry
		if err := protojson.Unmarshal(m.Data, &line); err == nil && funding.OpeningLine(&line) == nil {
			mu.Lock()
			recorded = append(recorded, &line)
			mu.Unlock()
		}
		b, _ := protojson.Marshal(&demarchev1.AuditOperationResponse{Record: &demarchev1.AuditRecord{EventType: funding.FundOpenedEventType}})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, f := range funds {
		if _, err := funding.OpenFund(context.Background(), nc, f, "test provisioning", zap.NewNop()); err != nil {
			t.Fatalf("open %s: %v", f.GetId(), err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return recorded
}

// approved files and approves a request, as two different people.
func approved(t *testing.T, nc *nats.Conn, crisis, id, fund string, amount int64) {
	t.Helper()
	ctx := context.Background()
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingRequest, crises.fileCall(crisis, id, fund, amount, "alice"), &demarchev1.FundingRecord{}); err != nil {
		t.Fatalf("request %s: %v", id, err)
	}
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingDecide, crises.decideCall(crisis, id, true, "bob"), &demarchev1.FundingRecord{}); err != nil {
		t.Fatalf("approve %s: %v", id, err)
	}
}

func checkLedgerBalances(t *testing.T, nc *nats.Conn, fund string, opening int64) []*demarchev1.LedgerEntry {
	t.Helper()
	var l demarchev1.LedgerResponse
	if err := natsrpc.Call(context.Background(), nc, natsrpc.FundingLedger, &demarchev1.FundQuery{Fund: fund}, &l); err != nil {
		t.Fatal(err)
	}
	bal := int64(0)
	keys := map[string]bool{}
	for i, e := range l.GetEntries() {
		switch e.GetKind() {
		case demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING:
			if i != 0 || e.GetAmountUsd() != opening {
				t.Fatalf("line %d: opening %v", i, e)
			}
			bal = e.GetAmountUsd()
		case demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT:
			bal -= e.GetAmountUsd()
		}
		if e.GetBalanceAfterUsd() != bal || bal < 0 {
			t.Fatalf("line %d: balance after %d, running sum %d", i, e.GetBalanceAfterUsd(), bal)
		}
		if keys[e.GetKey()] {
			t.Fatalf("key %s paid twice", e.GetKey())
		}
		keys[e.GetKey()] = true
	}
	return l.GetEntries()
}

func TestConcurrentDisbursementsNeverOverdraw(t *testing.T) {
	_, svc, nc := start(t, t.TempDir(), smallFund)
	// 12 approved requests of 100 against a balance of 1000: at most 10 can be paid.
	for i := range 12 {
		approved(t, nc, fmt.Sprintf("C%02d-crisis", i), "FR-1", "small-fund", 100)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	paid, refused := 0, 0
	for i := range 12 {
		for _, viaStore := range []bool{false, true} { // each twice: through NATS and straight at the store
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := disburseCall(fmt.Sprintf("C%02d-crisis", i), "FR-1", fmt.Sprintf("C%02d-FR-1", i), false)
				var res *demarchev1.DisburseResult
				var err error
				if viaStore {
					res, err = svc.Store.Disburse(context.Background(), c)
				} else {
					res = &demarchev1.DisburseResult{}
					err = natsrpc.Call(context.Background(), nc, natsrpc.FundingDisburse, c, res)
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && !res.GetReplayed():
					paid++
				case err == nil:
				case errors.Is(err, errs.ErrRule) && strings.Contains(err.Error(), "balance"):
					refused++
				default:
					t.Errorf("disburse: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	entries := checkLedgerBalances(t, nc, "small-fund", 1_000)
	var bal demarchev1.BalanceResponse
	if err := natsrpc.Call(context.Background(), nc, natsrpc.FundingBalance, &demarchev1.FundQuery{Fund: "small-fund"}, &bal); err != nil {
		t.Fatal(err)
	}
	if paid != 10 || len(entries) != 11 || bal.GetFunds()[0].GetBalanceUsd() != 0 || bal.GetFunds()[0].GetDisbursedUsd() != 1_000 {
		t.Fatalf("paid %d (want 10), ledger lines %d (want 11), balance %v", paid, len(entries), bal.GetFunds()[0])
	}
	if refused < 2 {
		t.Fatalf("%d refusals for the two requests the balance cannot cover", refused)
	}
}

func TestRetriedDisbursementPaysOnce(t *testing.T) {
	_, _, nc := start(t, t.TempDir(), smallFund)
	approved(t, nc, "GN-crisis", "FR-7", "small-fund", 250)
	var first *demarchev1.LedgerEntry
	for i := range 10 {
		var res demarchev1.DisburseResult
		if err := natsrpc.Call(context.Background(), nc, natsrpc.FundingDisburse, disburseCall("GN-crisis", "FR-7", "GN-crisis-FR-7", false), &res); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		if i == 0 {
			first = res.GetEntry()
		} else if !res.GetReplayed() || res.GetEntry().GetSequence() != first.GetSequence() {
			t.Fatalf("attempt %d paid again: %v", i+1, res.GetEntry())
		}
	}
	if entries := checkLedgerBalances(t, nc, "small-fund", 1_000); len(entries) != 2 || entries[1].GetBalanceAfterUsd() != 750 {
		t.Fatalf("ledger after 10 attempts: %v", entries)
	}
}

func TestFourEyesAndRules(t *testing.T) {
	_, _, nc := start(t, t.TempDir(), smallFund)
	ctx := context.Background()
	req := crises.fileCall("ML-crisis", "FR-1", "small-fund", 500, "alice")
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingRequest, req, &demarchev1.FundingRecord{}); err != nil {
		t.Fatal(err)
	}
	// The funding service keeps four-eyes even if a workflow recorded a
	// self-approval.
	err := natsrpc.Call(ctx, nc, natsrpc.FundingDecide, crises.decideCall("ML-crisis", "FR-1", true, "alice"), &demarchev1.FundingRecord{})
	if !errors.Is(err, errs.ErrRule) || !strings.Contains(err.Error(), "four-eyes") {
		t.Fatalf("self-approval: %v", err)
	}
	err = natsrpc.Call(ctx, nc, natsrpc.FundingDisburse, disburseCall("ML-crisis", "FR-1", "k-1", false), &demarchev1.DisburseResult{})
	if !errors.Is(err, errs.ErrRule) || !strings.Contains(err.Error(), "not approved") {
		t.Fatalf("disbursing a pending request: %v", err)
	}
	// Another request under a used id: the crisis decided it, the service
	// has the first on file.
	again := crises.fileCall("ML-crisis", "FR-1", "small-fund", 600, "alice")
	again.Decision = ref("ML-crisis", "req-FR-1-again")
	crises.record("ML-crisis", "req-FR-1-again", "alice", &demarchev1.DecisionRequest{Principal: "alice",
		Decision: &demarchev1.DecisionRequest_FundingRequest{FundingRequest: again.GetRequest()}})
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingRequest, again, &demarchev1.FundingRecord{}); !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("same id, other terms: %v", err)
	}
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingRequest, crises.fileCall("ML-crisis", "FR-3", "nope", 600, "alice"), &demarchev1.FundingRecord{}); !errors.Is(err, errs.ErrNotFound) || !strings.Contains(err.Error(), "small-fund") {
		t.Fatalf("unknown fund: %v", err)
	}
	bad := crises.fileCall("ML-crisis", "FR-2", "small-fund", -1, "alice")
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingRequest, bad, &demarchev1.FundingRecord{}); !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), "amount_usd") {
		t.Fatalf("negative amount: %v", err)
	}
	// Per-crisis ceiling.
	tight := &demarchev1.Fund{Id: "tight-fund", Name: "Tight", OpeningBalanceUsd: 10_000, PerCrisisCeilingUsd: 300}
	_, _, nc2 := start(t, t.TempDir(), tight)
	approved(t, nc2, "SD-crisis", "FR-1", "tight-fund", 200)
	approved(t, nc2, "SD-crisis", "FR-2", "tight-fund", 200)
	if err := natsrpc.Call(ctx, nc2, natsrpc.FundingDisburse, disburseCall("SD-crisis", "FR-1", "SD-1", false), &demarchev1.DisburseResult{}); err != nil {
		t.Fatal(err)
	}
	err = natsrpc.Call(ctx, nc2, natsrpc.FundingDisburse, disburseCall("SD-crisis", "FR-2", "SD-2", false), &demarchev1.DisburseResult{})
	if !errors.Is(err, errs.ErrRule) || !strings.Contains(err.Error(), "ceiling") {
		t.Fatalf("ceiling: %v", err)
	}
}

func TestLedgerSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.ServerIn(t, dir) // stopped below, before the restart
	openFunds(t, srv.URL(), smallFund)
	svc, err := serve(srv.URL(), smallFund)
	if err != nil {
		t.Fatal(err)
	}
	nc, _ := nats.Connect(srv.URL())
	approved(t, nc, "NE-crisis", "FR-1", "small-fund", 300)
	if err := natsrpc.Call(context.Background(), nc, natsrpc.FundingDisburse, disburseCall("NE-crisis", "FR-1", "NE-1", false), &demarchev1.DisburseResult{}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	svc.Stop()
	srv.Stop()
	_, _, nc2 := start(t, dir, smallFund) // opening again must not re-credit the fund
	entries := checkLedgerBalances(t, nc2, "small-fund", 1_000)
	if len(entries) != 2 || entries[1].GetBalanceAfterUsd() != 700 {
		t.Fatalf("ledger after restart: %v", entries)
	}
	var res demarchev1.DisburseResult
	if err := natsrpc.Call(context.Background(), nc2, natsrpc.FundingDisburse, disburseCall("NE-crisis", "FR-1", "NE-1", false), &res); err != nil || !res.GetReplayed() {
		t.Fatalf("retry after restart: %v replayed=%v", err, res.GetReplayed())
	}
}

func TestMicroDiscovery(t *testing.T) {
	_, _, nc := start(t, t.TempDir(), smallFund)
	msg, err := nc.Request("$SRV.INFO.funding", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{natsrpc.FundingRequest, natsrpc.FundingDecide, natsrpc.FundingDisburse, natsrpc.FundingBalance, natsrpc.FundingLedger} {
		if !strings.Contains(string(msg.Data), `"`+subj+`"`) {
			t.Fatalf("$SRV.INFO.funding lacks %s: %s", subj, msg.Data)
		}
	}
	if _, err := nc.Request("$SRV.STATS.funding", nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if msg, err := nc.Request("$SRV.PING", nil, 5*time.Second); err != nil || !strings.Contains(string(msg.Data), "funding") {
		t.Fatalf("ping: %v %s", err, msg.Data)
	}
}

// TestDrillsOnlyDrawFromDrillFunds: a drill's calls carry its drill flag; the
// funding service pays drills from drill funds only and real crises from real
// funds only, on each of request and disbursement.
func TestDrillsOnlyDrawFromDrillFunds(t *testing.T) {
	drillFund := &demarchev1.Fund{Id: "drill-fund", Name: "Drill fund", OpeningBalanceUsd: 1_000_000, PerCrisisCeilingUsd: 100_000, Drill: true}
	_, _, nc := start(t, t.TempDir(), smallFund, drillFund)
	ctx := context.Background()
	file := func(crisisID, id, fund string, drill bool) error {
		crises.open(crisisID, drill)
		return natsrpc.Call(ctx, nc, natsrpc.FundingRequest, crises.fileCall(crisisID, id, fund, 500, "alice"), &demarchev1.FundingRecord{})
	}
	for _, tc := range []struct {
		name   string
		crisis string
		fund   string
		drill  bool
	}{{"drill on a real fund", "XD-crisis", "small-fund", true}, {"real crisis on the drill fund", "XR-crisis", "drill-fund", false}} {
		if err := file(tc.crisis, "FR-x", tc.fund, tc.drill); !errors.Is(err, errs.ErrRule) || !strings.Contains(err.Error(), "drill-fund") {
			t.Fatalf("%s: %v, want the drill-fund rule", tc.name, err)
		}
	}
	// A drill's request is paid from the drill fund; the real fund is untouched.
	if err := file("DR-crisis", "FR-1", "drill-fund", true); err != nil {
		t.Fatal(err)
	}
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingDecide, crises.decideCall("DR-crisis", "FR-1", true, "bob"), &demarchev1.FundingRecord{}); err != nil {
		t.Fatal(err)
	}
	// Disbursing a drill's request as a real crisis is refused too: the
	// drill flag is the crisis's own.
	err := natsrpc.Call(ctx, nc, natsrpc.FundingDisburse, disburseCall("DR-crisis", "FR-1", "DR-1", false), &demarchev1.DisburseResult{})
	if !errors.Is(err, errs.ErrRule) || !strings.Contains(err.Error(), "drill-flag") {
		t.Fatalf("drill request disbursed as real: %v", err)
	}
	var paid demarchev1.DisburseResult
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingDisburse, disburseCall("DR-crisis", "FR-1", "DR-1", true), &paid); err != nil {
		t.Fatal(err)
	}
	if paid.GetEntry().GetFund() != "drill-fund" || paid.GetEntry().GetBalanceAfterUsd() != 1_000_000-500 {
		t.Fatalf("drill paid %v", paid.GetEntry())
	}
	if l := checkLedgerBalances(t, nc, "small-fund", 1_000); len(l) != 1 {
		t.Fatalf("real fund has %d lines after a drill, want its opening only", len(l))
	}
}
