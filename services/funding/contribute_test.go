package funding_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/funding"
)

// auditContributions stands in for the audit service's fund-contribution
// endpoint (the stack's tests check the real record on the real chain): it
// keeps the lines it was asked to record, refusing any that is not a
// well-formed contribution line.
func auditContributions(t *testing.T, nc *nats.Conn) func() []*demarchev1.LedgerEntry {
	t.Helper()
	var mu sync.Mutex
	var got []*demarchev1.LedgerEntry
	sub, err := nc.Subscribe(natsrpc.AuditFundContribution, func(m *nats.Msg) {
		var line demarchev1.LedgerEntry
		if err := protojson.Unmarshal(m.Data, &line); err != nil || funding.ContributionLine(&line) != nil {
			_ = m.Respond([]byte(`{"error": "not a contribution line"}`))
			return
		}
		mu.Lock()
		got = append(got, &line)
		mu.Unlock()
		b, _ := protojson.Marshal(&demarchev1.AuditOperationResponse{Record: &demarchev1.AuditRecord{EventType: funding.FundContributionEventType,
			EventId: funding.ContributionEventID(&line), Principal: line.GetContribution().GetContributedBy()}})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() []*demarchev1.LedgerEntry {
		mu.Lock()
		defer mu.Unlock()
		return append([]*demarchev1.LedgerEntry(nil), got...)
	}
}

func TestVoluntaryContributions(t *testing.T) {
	drill := &demarchev1.Fund{Id: "drill-fund", Name: "Drill", OpeningBalanceUsd: 1_000, PerCrisisCeilingUsd: 1_000, Drill: true}
	_, svc, nc := start(t, t.TempDir(), smallFund, drill)
	recorded := auditContributions(t, nc)
	ctx := context.Background()
	gift := func(fund, donor string, amount int64, currency, ref string) *demarchev1.ContributeCall {
		return &demarchev1.ContributeCall{Fund: fund, Contribution: &demarchev1.VoluntaryContribution{
			Donor: donor, Amount: amount, Currency: currency, Reference: ref, ContributedBy: "fiona"}}
	}
	for _, tc := range []struct {
		name     string
		call     *demarchev1.ContributeCall
		is       error  // nil: credited
		says     string // the field named in the refusal
		balance  int64  // the fund's balance after
		replayed bool
	}{
		{"a member state's contribution", gift("small-fund", "NO", 250_000, "USD", "NO-2026-PD-17"), nil, "", 251_000, false},
		{"the same again changes nothing", gift("small-fund", "NO", 250_000, "USD", "NO-2026-PD-17"), nil, "", 251_000, true},
		{"an institution's", gift("small-fund", "World Bank", 40_000, "USD", "WB/SPF/0042"), nil, "", 291_000, false},
		{"the same reference, other terms", gift("small-fund", "NO", 999, "USD", "NO-2026-PD-17"), errs.ErrConflict, "contribution.reference", 291_000, false},
		{"a negative amount", gift("small-fund", "NO", -5, "USD", "NEG-1"), errs.ErrInvalid, "contribution.amount", 291_000, false},
		{"a zero amount", gift("small-fund", "NO", 0, "USD", "ZERO-1"), errs.ErrInvalid, "contribution.amount", 291_000, false},
		{"another currency", gift("small-fund", "DE", 1_000, "EUR", "DE-1"), errs.ErrInvalid, "contribution.currency", 291_000, false},
		{"an unknown fund", gift("no-such-fund", "DE", 1_000, "USD", "DE-2"), errs.ErrNotFound, "fund: no fund \"no-such-fund\"", 291_000, false},
		{"a drill fund", gift("drill-fund", "DE", 1_000, "USD", "DE-3"), errs.ErrRule, "fund: drill-fund is a drill fund", 291_000, false},
		{"no donor", gift("small-fund", "", 1_000, "USD", "DE-4"), errs.ErrInvalid, "contribution.donor", 291_000, false},
		{"no reference", gift("small-fund", "DE", 1_000, "USD", ""), errs.ErrInvalid, "contribution.reference", 291_000, false},
		{"nobody recorded it", &demarchev1.ContributeCall{Fund: "small-fund", Contribution: &demarchev1.VoluntaryContribution{Donor: "DE", Amount: 1, Currency: "USD", Reference: "DE-5"}},
			errs.ErrInvalid, "contribution.contributed_by", 291_000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res demarchev1.ContributeResult
			err := natsrpc.Call(ctx, nc, natsrpc.FundingContribute, tc.call, &res)
			if tc.is != nil {
				if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("got %v, want %v naming %q", err, tc.is, tc.says)
				}
			} else if err != nil {
				t.Fatal(err)
			} else {
				e := res.GetEntry()
				if e.GetKind() != demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_CONTRIBUTION || e.GetAmountUsd() != tc.call.GetContribution().GetAmount() ||
					e.GetContribution().GetDonor() != tc.call.GetContribution().GetDonor() || res.GetReplayed() != tc.replayed ||
					res.GetRecord().GetEventType() != funding.FundContributionEventType || res.GetRecord().GetPrincipal() != "fiona" {
					t.Fatalf("credited as %v (replayed %v, record %v)", e, res.GetReplayed(), res.GetRecord())
				}
			}
			bal, err := svc.Store.Balance(ctx, &demarchev1.FundQuery{Fund: "small-fund"})
			if err != nil {
				t.Fatal(err)
			}
			if b := bal.GetFunds()[0]; b.GetBalanceUsd() != tc.balance || b.GetContributedUsd() != tc.balance-smallFund.GetOpeningBalanceUsd() {
				t.Fatalf("balance %d contributed %d, want %d and %d", b.GetBalanceUsd(), b.GetContributedUsd(), tc.balance, tc.balance-smallFund.GetOpeningBalanceUsd())
			}
		})
	}
	// The ledger holds the opening and the two contributions, and verifies.
	led, err := svc.Store.Ledger(ctx, &demarchev1.FundQuery{Fund: "small-fund"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(led.GetEntries()); n != 3 {
		t.Fatalf("ledger has %d lines, want 3: %v", n, led.GetEntries())
	}
	if err := funding.VerifyLines("small-fund", led.GetEntries(), nil); err != nil {
		t.Fatal(err)
	}
	// Each contribution line was recorded (the retry asks again: the audit
	// service stores the same record once).
	seen := map[string]bool{}
	for _, l := range recorded() {
		seen[funding.ContributionEventID(l)] = true
	}
	if len(seen) != 2 {
		t.Fatalf("audit asked to record %d distinct contribution lines, want 2", len(seen))
	}
}

// A contribution line that does not balance, or moves a crisis's total,
// breaks the ledger like any other forged line.
func TestContributionLinesMustBalance(t *testing.T) {
	opening := &demarchev1.LedgerEntry{Fund: "f", Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING, AmountUsd: 100, BalanceAfterUsd: 100, Key: "open-f", OpenedBy: "x"}
	link(t, opening, nil)
	ok := func() *demarchev1.LedgerEntry {
		return &demarchev1.LedgerEntry{Fund: "f", Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_CONTRIBUTION, AmountUsd: 50, BalanceAfterUsd: 150, Key: "k",
			Contribution: &demarchev1.VoluntaryContribution{Donor: "NO", Amount: 50, Currency: "USD", Reference: "r", ContributedBy: "fiona"}}
	}
	for _, tc := range []struct {
		name   string
		change func(*demarchev1.LedgerEntry)
		says   string
	}{
		{"balances", func(*demarchev1.LedgerEntry) {}, ""},
		{"adds more than given", func(e *demarchev1.LedgerEntry) { e.BalanceAfterUsd = 1_000 }, "does not balance"},
		{"says another amount", func(e *demarchev1.LedgerEntry) { e.Contribution.Amount = 5 }, "who gave what"},
		{"another currency", func(e *demarchev1.LedgerEntry) { e.Contribution.Currency = "EUR" }, "who gave what"},
		{"moves a crisis total", func(e *demarchev1.LedgerEntry) { e.CrisisTotalsUsd = map[string]int64{"GN-1": 1} }, "names no crisis"},
	} {
		e := ok()
		tc.change(e)
		link(t, e, opening)
		err := funding.VerifyLines("f", []*demarchev1.LedgerEntry{opening, e}, nil)
		if (tc.says == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.says)
		}
	}
}

// link makes e follow prev (nil: line 1) as the funding service does.
func link(t *testing.T, e, prev *demarchev1.LedgerEntry) {
	t.Helper()
	e.Line, e.PrevHash = 1, make([]byte, 32)
	if prev != nil {
		e.Line, e.PrevHash = prev.GetLine()+1, prev.GetHash()
	}
	h, err := funding.LineHash(e)
	if err != nil {
		t.Fatal(err)
	}
	e.Hash = h
}

// Contributions and disbursements race for the same ledger: both go through
// one compare-and-append, so every line follows the one before it, none is
// written twice, and the balance is the opening plus what came in minus
// what went out.
func TestContributionsAndDisbursementsShareOneLedger(t *testing.T) {
	_, svc, nc := start(t, t.TempDir(), smallFund)
	auditContributions(t, nc)
	for i := range 12 {
		approved(t, nc, fmt.Sprintf("C%02d-crisis", i), "FR-1", "small-fund", 100)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	paid, credited := 0, 0
	for i := range 12 {
		wg.Add(2)
		go func() { // each disbursement twice: the second is a retry
			defer wg.Done()
			for range 2 {
				res, err := svc.Store.Disburse(ctx, disburseCall(fmt.Sprintf("C%02d-crisis", i), "FR-1", fmt.Sprintf("C%02d-FR-1", i), false))
				mu.Lock()
				switch {
				case err == nil && !res.GetReplayed():
					paid++
				case err == nil:
				case errors.Is(err, errs.ErrRule) && strings.Contains(err.Error(), "balance"):
				default:
					t.Errorf("disburse: %v", err)
				}
				mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			if i%2 != 0 {
				return
			}
			call := &demarchev1.ContributeCall{Fund: "small-fund", Contribution: &demarchev1.VoluntaryContribution{
				Donor: "NO", Amount: 100, Currency: "USD", Reference: fmt.Sprintf("NO-%d", i), ContributedBy: "fiona"}}
			for range 2 { // and each contribution twice
				res, err := svc.Store.Contribute(ctx, call)
				mu.Lock()
				if err != nil {
					t.Errorf("contribute: %v", err)
				} else if !res.GetReplayed() {
					credited++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	led, err := svc.Store.Ledger(ctx, &demarchev1.FundQuery{Fund: "small-fund"})
	if err != nil {
		t.Fatal(err)
	}
	if err := funding.VerifyLines("small-fund", led.GetEntries(), nil); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	bal := int64(0)
	for i, e := range led.GetEntries() {
		if keys[e.GetKey()] {
			t.Fatalf("line %d: key %s written twice", i, e.GetKey())
		}
		keys[e.GetKey()] = true
		switch e.GetKind() {
		case demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING, demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_CONTRIBUTION:
			bal += e.GetAmountUsd()
		case demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT:
			bal -= e.GetAmountUsd()
		}
		if bal < 0 || e.GetBalanceAfterUsd() != bal {
			t.Fatalf("line %d: balance after %d, running sum %d", i, e.GetBalanceAfterUsd(), bal)
		}
	}
	if credited != 6 || paid < 10 || len(led.GetEntries()) != 1+credited+paid || bal != 1_000+600-100*int64(paid) {
		t.Fatalf("credited %d (want 6), paid %d (want at least 10), %d lines, balance %d", credited, paid, len(led.GetEntries()), bal)
	}
}
