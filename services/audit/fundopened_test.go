package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/funding"
)

// TestFundOpeningRecordedOnTheGlobalChain: a fund's opening line is recorded
// once on the global chain (principal provisioner: the identity NATS lets
// ask; the fund, its balance and who opened it in the detail), again as the
// same record; a line that is no well-formed opening is refused and records
// nothing.
func TestFundOpeningRecordedOnTheGlobalChain(t *testing.T) {
	e := newEnv(t)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := e.start(key)
	defer svc.Stop()
	ctx := context.Background()
	line := &demarchev1.LedgerEntry{Fund: "relief-window", Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING, AmountUsd: 750_000,
		BalanceAfterUsd: 750_000, Key: "open-relief-window", At: timestamppb.Now(), OpenedBy: "demarche-provisioner via demarche admin open-fund: board decision",
		Line: 1, PrevHash: make([]byte, 32), Sequence: 7}
	if line.Hash, err = funding.LineHash(line); err != nil {
		t.Fatal(err)
	}
	var resp demarchev1.AuditOperationResponse
	if err := natsrpc.Call(ctx, e.nc, natsrpc.AuditFundOpened, line, &resp); err != nil {
		t.Fatal(err)
	}
	r := resp.GetRecord()
	if r.GetChain() != GlobalChain || r.GetPrincipal() != FundOpenerIdentity || r.GetEventType() != funding.FundOpenedEventType ||
		!strings.Contains(r.GetDetail(), "fund relief-window opened with 750000 USD") || !strings.Contains(r.GetDetail(), "board decision") ||
		!strings.Contains(r.GetDetail(), "stream sequence 7") || len(r.GetSignature()) == 0 {
		t.Fatalf("record %v", r)
	}
	var again demarchev1.AuditOperationResponse
	if err := natsrpc.Call(ctx, e.nc, natsrpc.AuditFundOpened, line, &again); err != nil || !proto.Equal(again.GetRecord(), r) {
		t.Fatalf("recorded again: %v, %v (want the same record)", again.GetRecord(), err)
	}
	for name, bad := range map[string]func(*demarchev1.LedgerEntry){
		"not its hash":   func(l *demarchev1.LedgerEntry) { l.AmountUsd, l.BalanceAfterUsd = 50_000_000, 50_000_000 },
		"not line 1":     func(l *demarchev1.LedgerEntry) { l.Line = 2 },
		"no opener":      func(l *demarchev1.LedgerEntry) { l.OpenedBy = "" },
		"a disbursement": func(l *demarchev1.LedgerEntry) { l.Kind = demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT },
	} {
		l := proto.Clone(line).(*demarchev1.LedgerEntry)
		bad(l)
		if name != "not its hash" {
			if l.Hash, err = funding.LineHash(l); err != nil {
				t.Fatal(err)
			}
		}
		if err := natsrpc.Call(ctx, e.nc, natsrpc.AuditFundOpened, l, &demarchev1.AuditOperationResponse{}); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("%s: %v, want refused as invalid", name, err)
		}
	}
	recs := waitChain(t, svc.Store, GlobalChain, 1)
	n := 0
	for _, rec := range recs {
		if rec.GetEventType() == funding.FundOpenedEventType {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d fund-opened records on the global chain, want 1", n)
	}
}

// TestRulesChangeRecordedOnTheGlobalChain: early-warning rules put into
// force are recorded once on the global chain (principal: who applied them;
// the versions, digest and revision in the detail), again as the same
// record; a change without its version, revision, person or time is refused
// and records nothing.
func TestRulesChangeRecordedOnTheGlobalChain(t *testing.T) {
	e := newEnv(t)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := e.start(key)
	defer svc.Stop()
	ctx := context.Background()
	ch := &demarchev1.RulesChanged{PreviousVersion: "2026.12.1+8ff85f36", Version: "2026.12.1+817b733e",
		Digest: "817b733e5103add4f12b2672472fd2dbfb6053e395ce20ae6a8189bcf5fcf94d", AppliedBy: "hannah",
		AppliedAt: timestamppb.Now(), Name: "lower.yaml", Revision: 3}
	var resp demarchev1.AuditOperationResponse
	if err := natsrpc.Call(ctx, e.nc, natsrpc.AuditRulesChanged, ch, &resp); err != nil {
		t.Fatal(err)
	}
	r := resp.GetRecord()
	if r.GetChain() != GlobalChain || r.GetPrincipal() != "hannah" || r.GetEventType() != RulesChangedEventType ||
		r.GetKind() != demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION || r.GetEventSource() != EarlyWarningSource ||
		!strings.Contains(r.GetDetail(), "2026.12.1+817b733e replaced 2026.12.1+8ff85f36") || !strings.Contains(r.GetDetail(), ch.GetDigest()) ||
		!strings.Contains(r.GetDetail(), "revision 3") || len(r.GetSignature()) == 0 {
		t.Fatalf("record %v", r)
	}
	var again demarchev1.AuditOperationResponse
	if err := natsrpc.Call(ctx, e.nc, natsrpc.AuditRulesChanged, ch, &again); err != nil || again.GetRecord().GetSequence() != r.GetSequence() {
		t.Fatalf("recorded again: %v, %v (want the same record)", again.GetRecord(), err)
	}
	for name, bad := range map[string]func(*demarchev1.RulesChanged){
		"no version":    func(c *demarchev1.RulesChanged) { c.Version = "" },
		"no revision":   func(c *demarchev1.RulesChanged) { c.Revision = 0 },
		"nobody":        func(c *demarchev1.RulesChanged) { c.AppliedBy = "" },
		"no time given": func(c *demarchev1.RulesChanged) { c.AppliedAt = nil },
	} {
		c := proto.Clone(ch).(*demarchev1.RulesChanged)
		c.Revision++ // another change: not the recorded one
		bad(c)
		if err := natsrpc.Call(ctx, e.nc, natsrpc.AuditRulesChanged, c, &demarchev1.AuditOperationResponse{}); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("%s: %v, want refused as invalid", name, err)
		}
	}
	recs := waitChain(t, svc.Store, GlobalChain, 1)
	n := 0
	for _, rec := range recs {
		if rec.GetEventType() == RulesChangedEventType {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d rules-changed records on the global chain, want 1", n)
	}
}
