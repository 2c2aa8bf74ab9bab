package funding

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Opening a fund is an explicit act of provisioning, done once, before the
// funding service serves it, and recorded twice: in the fund's opening line
// (line 1 of its ledger: the balance, when, and who opened it) and on the
// audit service's global chain (a record of event type FundOpenedEventType,
// whose principal is the NATS identity that alone may ask for it, the
// provisioner). A fund opened before is never opened again: a fund whose
// marker says it was opened but whose ledger is gone is refused
// (ErrLedgerMissing), and that is an alarm, never a fresh balance.

// FundOpenedEventType is the event_type of the audit record of a fund's opening.
const FundOpenedEventType = "fund-opened"

// ErrOpenedOtherwise is matched when a fund was opened before with other
// terms than the ones given now (another opening balance).
var ErrOpenedOtherwise = errs.Sentinel("fund opened with other terms", errs.ErrConflict)

// Opening is what OpenFund did.
type Opening struct {
	// Line is the fund's opening line (line 1 of its ledger).
	Line *demarchev1.LedgerEntry
	// Opened is false when the fund was already open with the same balance
	// (nothing written; the audit record is asked for again, idempotently).
	Opened bool
	// Record is the audit record of the opening, on the global chain.
	Record *demarchev1.AuditRecord
}

// OpenFund opens a configured fund: writes its opening line (opened_by
// records who and how), marks it opened, and has the audit service record the
// act on the global chain. nc must be the provisioner's connection (the only
// identity that may write an opening line besides funding and ask audit to
// record it). Opening a fund already open with the same opening balance
// writes nothing and records the same act again (idempotent: a retry after a
// lost answer); with another balance it is refused (ErrOpenedOtherwise). A
// fund whose ledger is gone is never re-opened (ErrLedgerMissing).
func OpenFund(ctx context.Context, nc *nats.Conn, f *demarchev1.Fund, openedBy string, log *zap.Logger) (*Opening, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("open fund: %w", err)
	}
	if openedBy == "" {
		return nil, fmt.Errorf("%w: open fund %s: say who opens it (recorded in its opening line)", errs.ErrInvalid, f.GetId())
	}
	if log == nil {
		log = zap.NewNop()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open fund %s: %w", f.GetId(), err)
	}
	res := Resources()
	stream, err := natsx.Stream(ctx, js, res.Streams[0])
	if err != nil {
		return nil, fmt.Errorf("open fund %s: ledger %w", f.GetId(), err)
	}
	kv, err := natsx.KeyValue(ctx, js, res.Buckets[0])
	if err != nil {
		return nil, fmt.Errorf("open fund %s: %w", f.GetId(), err)
	}
	s := &Store{js: js, stream: stream, kv: kv, funds: map[string]*demarchev1.Fund{f.GetId(): f}, now: time.Now, log: log,
		verified: verifiedTail{lines: map[string]*demarchev1.LedgerEntry{}}}
	op := &Opening{}
	// The first line decides: read it whole (and checked) if there is a ledger.
	lines, err := s.readLines(ctx, f.GetId(), 0, 0)
	if err != nil {
		return nil, fmt.Errorf("open fund %s: %w", f.GetId(), err)
	}
	switch {
	case len(lines) > 0:
		if err := VerifyLines(f.GetId(), lines, nil); err != nil {
			return nil, fmt.Errorf("open fund %s: %w", f.GetId(), err)
		}
		first := lines[0]
		if first.GetAmountUsd() != f.GetOpeningBalanceUsd() {
			return nil, fmt.Errorf("%w: fund %s was opened at %s by %s with %d USD, not %d: a fund is opened once", ErrOpenedOtherwise,
				f.GetId(), first.GetAt().AsTime().UTC().Format(time.RFC3339), first.GetOpenedBy(), first.GetAmountUsd(), f.GetOpeningBalanceUsd())
		}
		op.Line = first
	default:
		if err := s.noLedger(ctx, f.GetId()); !errors.Is(err, ErrNotOpened) {
			return nil, err // gone (an alarm, never a fresh balance), or NATS unavailable
		}
		entry := &demarchev1.LedgerEntry{Fund: f.GetId(), Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING,
			AmountUsd: f.GetOpeningBalanceUsd(), BalanceAfterUsd: f.GetOpeningBalanceUsd(), Key: "open-" + f.GetId(), At: timestamppb.New(s.now()),
			OpenedBy: openedBy}
		if err := linkLine(entry, nil); err != nil {
			return nil, err
		}
		ack, err := s.append(ctx, entry, 0)
		if isWrongLast(err) { // opened meanwhile by another: its line is the opening
			return OpenFund(ctx, nc, f, openedBy, log)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: open fund %s: write its opening line: %v", errs.ErrUnavailable, f.GetId(), err)
		}
		entry.Sequence = ack.Sequence
		if ack.Duplicate { // an earlier attempt's line went in: that one is the opening
			if stored, err := stream.GetMsg(ctx, ack.Sequence); err == nil {
				if e, err := DecodeLine(f.GetId(), ack.Sequence, stored.Data); err == nil {
					entry = e
				}
			}
		}
		op.Line, op.Opened = entry, !ack.Duplicate
		log.Warn("fund opened (an explicit act, recorded in its opening line and on the audit chain)", zap.String("fund", f.GetId()),
			zap.Int64("opening_balance_usd", f.GetOpeningBalanceUsd()), zap.String("opened_by", openedBy))
	}
	if err := s.mark(ctx, op.Line); err != nil {
		return nil, err
	}
	var resp demarchev1.AuditOperationResponse
	if err := callAudit(ctx, nc, op.Line, &resp); err != nil {
		return op, fmt.Errorf("fund %s is open (its opening line is written) but the audit service did not record the act: %w; run the same open-fund again once the audit service answers (it writes nothing new and records the act)", f.GetId(), err)
	}
	op.Record = resp.GetRecord()
	return op, nil
}

// callAudit asks the audit service to record an opening line, waiting (up to
// the context's deadline, at most a minute) for it to answer: it may be
// starting beside the act.
func callAudit(ctx context.Context, nc *nats.Conn, line *demarchev1.LedgerEntry, resp *demarchev1.AuditOperationResponse) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := natsrpc.Call(ctx, nc, natsrpc.AuditFundOpened, line, resp)
		if err == nil || !errors.Is(err, nats.ErrNoResponders) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// OpeningLine checks that line is a fund's well-formed opening line (line 1,
// hash-linked to nothing, its hash its own, an opening that balances, someone
// who opened it): the audit service records nothing else as an opening.
func OpeningLine(line *demarchev1.LedgerEntry) error {
	c := proto.Clone(line).(*demarchev1.LedgerEntry)
	b, err := proto.Marshal(c)
	if err != nil {
		return err
	}
	e, err := DecodeLine(line.GetFund(), line.GetSequence(), b)
	if err != nil {
		return fmt.Errorf("%w: %v", errs.ErrInvalid, err)
	}
	if err := VerifyLines(line.GetFund(), []*demarchev1.LedgerEntry{e}, nil); err != nil {
		return fmt.Errorf("%w: %v", errs.ErrInvalid, err)
	}
	if e.GetOpenedBy() == "" {
		return fmt.Errorf("%w: opening line of fund %s: opened_by is required", errs.ErrInvalid, line.GetFund())
	}
	return nil
}
