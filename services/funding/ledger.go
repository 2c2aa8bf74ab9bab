package funding

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The ledger checks itself. Line n of a fund's ledger (line = n, from 1)
// carries prev_hash = the hash of line n-1 (32 zero bytes for line 1) and
// hash = SHA-256(canonical(line)), where canonical(line) is the protobuf
// binary encoding of the LedgerEntry with hash (13) and sequence (1) cleared,
// fields in ascending order and the crisis_totals_usd map in ascending key
// order (proto.MarshalOptions{Deterministic: true}). The stream sequence is
// where the line is stored, not part of what it says, so it is not hashed.
//
// Every read of a fund (balance, ledger, a disbursement's read of the last
// line) checks the lines it has not checked before against the last one it
// checked; a fund whose ledger breaks is refused with the line (and stream
// sequence) where it breaks, and nothing is paid from it. One fund's broken
// ledger never stops another fund.

// ErrLedgerBroken is matched (errors.Is) by every ledger verification failure,
// on either side of NATS.
var ErrLedgerBroken = errs.Sentinel("ledger broken", errs.ErrInternal)

// ErrLedgerMissing is matched when a fund known to have been opened has no
// ledger any more: an alarm, never a fresh opening balance.
var ErrLedgerMissing = errs.Sentinel("ledger missing", errs.ErrInternal)

// LedgerError says where a fund's ledger breaks.
type LedgerError struct {
	Fund string
	// Line is the 1-based position in the fund's ledger where it breaks.
	Line uint64
	// StreamSequence is where that line is stored (0 when unknown).
	StreamSequence uint64
	Problem        string
}

func (e *LedgerError) Error() string {
	return fmt.Sprintf("%v: fund %s refused: its ledger breaks at line %d (stream sequence %d): %s", ErrLedgerBroken, e.Fund, e.Line, e.StreamSequence, e.Problem)
}

// Unwrap lets callers match ErrLedgerBroken.
func (e *LedgerError) Unwrap() error { return ErrLedgerBroken }

var deterministic = proto.MarshalOptions{Deterministic: true}

// ledgerGenesis is the prev_hash of line 1.
var ledgerGenesis = make([]byte, sha256.Size)

// LineHash is SHA-256 of a ledger line's canonical encoding.
func LineHash(e *demarchev1.LedgerEntry) ([]byte, error) {
	c := proto.Clone(e).(*demarchev1.LedgerEntry)
	c.Hash, c.Sequence = nil, 0
	b, err := deterministic.Marshal(c)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// linkLine sets line, prev_hash and hash of e so that it follows prev (nil: first line).
func linkLine(e, prev *demarchev1.LedgerEntry) error {
	e.Line, e.PrevHash = 1, ledgerGenesis
	if prev != nil {
		e.Line, e.PrevHash = prev.GetLine()+1, prev.GetHash()
	}
	h, err := LineHash(e)
	e.Hash = h
	return err
}

// DecodeLine decodes a stored ledger line of fund (stored at stream sequence
// seq) and checks what one line can say about itself: it decodes, it is the
// fund's, it has a line number and its hash is its own. A line that does not
// is a *LedgerError at that sequence.
func DecodeLine(fund string, seq uint64, data []byte) (*demarchev1.LedgerEntry, error) {
	var e demarchev1.LedgerEntry
	bad := func(line uint64, format string, args ...any) error {
		return &LedgerError{Fund: fund, Line: line, StreamSequence: seq, Problem: fmt.Sprintf(format, args...)}
	}
	if err := proto.Unmarshal(data, &e); err != nil {
		return nil, bad(0, "the line does not decode (%v): written by something other than the funding service, or damaged", err)
	}
	if e.GetFund() != fund {
		return nil, bad(e.GetLine(), "the line is fund %q's, not %q's", e.GetFund(), fund)
	}
	if e.GetLine() == 0 {
		return nil, bad(0, "the line has no line number: not a linked ledger line")
	}
	h, err := LineHash(&e)
	if err != nil {
		return nil, bad(e.GetLine(), "cannot hash the line: %v", err)
	}
	if !bytes.Equal(h, e.GetHash()) {
		return nil, bad(e.GetLine(), "its hash is %s, the line hashes to %s: the line was modified", short(e.GetHash()), short(h))
	}
	e.Sequence = seq
	return &e, nil
}

// VerifyLines checks a whole ledger, lines in stored order, and returns the
// first break; after, when not nil, is the line the first one must follow.
func VerifyLines(fund string, lines []*demarchev1.LedgerEntry, after *demarchev1.LedgerEntry) error {
	prev := after
	for _, e := range lines {
		if err := checkLink(fund, prev, e); err != nil {
			return err
		}
		prev = e
	}
	return nil
}

// checkLink checks that e (already self-consistent, see DecodeLine) follows prev.
func checkLink(fund string, prev, e *demarchev1.LedgerEntry) error {
	wantLine, wantPrev := uint64(1), ledgerGenesis
	if prev != nil {
		wantLine, wantPrev = prev.GetLine()+1, prev.GetHash()
	}
	bad := func(format string, args ...any) error {
		return &LedgerError{Fund: fund, Line: wantLine, StreamSequence: e.GetSequence(), Problem: fmt.Sprintf(format, args...)}
	}
	if e.GetLine() != wantLine {
		return bad("line number %d where %d was expected: a line was removed, inserted or moved", e.GetLine(), wantLine)
	}
	if !bytes.Equal(e.GetPrevHash(), wantPrev) {
		return bad("it does not link to the line before it (prev_hash %s, expected %s): a line was replaced or inserted", short(e.GetPrevHash()), short(wantPrev))
	}
	if prev == nil && e.GetKind() != demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING {
		return bad("line 1 is not an opening line")
	}
	if prev != nil && e.GetKind() == demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING {
		return bad("a second opening line: the fund was opened again")
	}
	switch e.GetKind() {
	case demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING:
		if e.GetBalanceAfterUsd() != e.GetAmountUsd() || e.GetAmountUsd() < 0 {
			return bad("the opening line does not balance")
		}
	case demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT:
		if e.GetAmountUsd() <= 0 || prev.GetBalanceAfterUsd()-e.GetAmountUsd() != e.GetBalanceAfterUsd() || e.GetBalanceAfterUsd() < 0 {
			return bad("it does not balance: %d - %d is not %d (or negative)", prev.GetBalanceAfterUsd(), e.GetAmountUsd(), e.GetBalanceAfterUsd())
		}
		// The per-crisis totals (the ceilings' memory) move by this line's amount, for its crisis alone.
		want := map[string]int64{}
		for k, v := range prev.GetCrisisTotalsUsd() {
			want[k] = v
		}
		want[e.GetCrisisId()] += e.GetAmountUsd()
		got := e.GetCrisisTotalsUsd()
		if len(got) != len(want) {
			return bad("its per-crisis totals name %d crises, the line before and this one make %d", len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				return bad("its per-crisis total for %s is %d, the line before and this one make %d", k, got[k], v)
			}
		}
	case demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_CONTRIBUTION:
		// A contribution adds its amount and moves no crisis's total.
		k := e.GetContribution()
		if e.GetAmountUsd() <= 0 || prev.GetBalanceAfterUsd()+e.GetAmountUsd() != e.GetBalanceAfterUsd() {
			return bad("it does not balance: %d + %d is not %d (or not positive)", prev.GetBalanceAfterUsd(), e.GetAmountUsd(), e.GetBalanceAfterUsd())
		}
		if k.GetAmount() != e.GetAmountUsd() || k.GetCurrency() != demarchev1.LedgerCurrency || k.GetDonor() == "" || k.GetContributedBy() == "" || k.GetReference() == "" {
			return bad("the contribution line does not say who gave what in %s, under which reference, and who recorded it", demarchev1.LedgerCurrency)
		}
		if e.GetCrisisId() != "" || e.GetDecision() != nil || !maps.Equal(e.GetCrisisTotalsUsd(), prev.GetCrisisTotalsUsd()) {
			return bad("a contribution names no crisis and leaves the per-crisis totals as they were")
		}
	default:
		return bad("unknown line kind %v", e.GetKind())
	}
	return nil
}

func short(b []byte) string {
	if len(b) == 0 {
		return "(none)"
	}
	return hex.EncodeToString(b[:min(len(b), 8)])
}

// verifiedTail is, per fund, the last line this process checked: reads check
// only what was appended since.
type verifiedTail struct {
	mu    sync.Mutex
	lines map[string]*demarchev1.LedgerEntry
}

func (v *verifiedTail) get(fund string) *demarchev1.LedgerEntry {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lines[fund]
}

// advance records a checked line, unless a later one was recorded meanwhile
// (reads check concurrently, each against the line it started from).
func (v *verifiedTail) advance(fund string, line *demarchev1.LedgerEntry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if cur := v.lines[fund]; cur == nil || line.GetSequence() > cur.GetSequence() {
		v.lines[fund] = line
	}
}

// tail returns a fund's last line after checking every line not checked
// before; nil (no error) when the fund has no ledger at all.
func (s *Store) tail(ctx context.Context, fund string) (*demarchev1.LedgerEntry, error) {
	known := s.verified.get(fund)
	msg, err := s.stream.GetLastMsgForSubject(ctx, subject(fund))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		if known != nil {
			return nil, fmt.Errorf("%w: fund %s: its ledger held %d lines and now holds none", ErrLedgerMissing, fund, known.GetLine())
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: funding: ledger of %s: %v", errs.ErrUnavailable, fund, err)
	}
	if known != nil && msg.Sequence == known.GetSequence() {
		return known, nil
	}
	if known != nil && msg.Sequence < known.GetSequence() {
		return nil, &LedgerError{Fund: fund, Line: known.GetLine(), StreamSequence: known.GetSequence(),
			Problem: fmt.Sprintf("the ledger was replaced: its last line is now at stream sequence %d, before line %d checked earlier", msg.Sequence, known.GetLine())}
	}
	last, err := DecodeLine(fund, msg.Sequence, msg.Data)
	if err != nil {
		return nil, err
	}
	if known != nil && last.GetLine() == known.GetLine()+1 && bytes.Equal(last.GetPrevHash(), known.GetHash()) && msg.Sequence > known.GetSequence() {
		if err := checkLink(fund, known, last); err != nil {
			return nil, err
		}
		s.verified.advance(fund, last)
		return last, nil
	}
	// More than one new line (or the first read): check them all.
	var after uint64
	if known != nil {
		after = known.GetSequence()
	}
	lines, err := s.readLines(ctx, fund, after, known.GetLine())
	if err != nil {
		return nil, err
	}
	if err := VerifyLines(fund, lines, known); err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return known, nil
	}
	s.verified.advance(fund, lines[len(lines)-1])
	return lines[len(lines)-1], nil
}

// readLines reads a fund's stored lines after a stream sequence (and line), each
// decoded and self-checked (DecodeLine), in order.
func (s *Store) readLines(ctx context.Context, fund string, afterSeq, afterLine uint64) ([]*demarchev1.LedgerEntry, error) {
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subject(fund)))
	if err != nil {
		return nil, fmt.Errorf("%w: funding: read ledger of %s: %v", errs.ErrUnavailable, fund, err)
	}
	if info.State.Subjects[subject(fund)] == 0 {
		return nil, nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject(fund)}, InactiveThreshold: natsx.OneShotInactive}
	if afterSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, afterSeq+1
	}
	cons, err := s.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: funding: read ledger of %s: %v", errs.ErrUnavailable, fund, err)
	}
	var out []*demarchev1.LedgerEntry
	for {
		msg, err := natsx.Next(cons, 5*time.Second) // waits out a cluster's "no responders" for a new consumer
		if err != nil {
			return nil, fmt.Errorf("%w: funding: read ledger of %s after line %d: %v", errs.ErrUnavailable, fund, len(out), err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("funding: read ledger of %s: %w", fund, err)
		}
		e, err := DecodeLine(fund, meta.Sequence.Stream, msg.Data())
		if err != nil {
			var le *LedgerError
			if errors.As(err, &le) && le.Line == 0 { // undecodable: its position is where it is read
				le.Line = afterLine + uint64(len(out)) + 1
			}
			return nil, err
		}
		out = append(out, e)
		if meta.NumPending == 0 {
			return out, nil
		}
	}
}
