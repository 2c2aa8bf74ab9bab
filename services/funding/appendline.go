package funding

import (
	"context"
	"fmt"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// appendLine is the ledger's one compare-and-append: it reads the fund's
// last usable line, asks build for the line that follows it (build may
// refuse, e.g. for a balance or a ceiling), links it to the last one and
// appends it only if no other line went in meanwhile; otherwise it reads
// again. A line whose key is already last, or whose message id the stream
// has seen, was written by an earlier attempt whose answer was lost: that
// stored line is the answer (replayed), and nothing is written twice.
func (s *Store) appendLine(ctx context.Context, fund, key string, build func(last *demarchev1.LedgerEntry) (*demarchev1.LedgerEntry, error)) (entry *demarchev1.LedgerEntry, replayed bool, err error) {
	for attempt := 0; ; attempt++ {
		last, err := s.usable(ctx, fund)
		if err != nil {
			return nil, false, err
		}
		if last.GetKey() == key { // our own line, from an attempt whose answer was lost
			return last, true, nil
		}
		entry, err := build(last)
		if err != nil {
			return nil, false, err
		}
		if err := linkLine(entry, last); err != nil {
			return nil, false, err
		}
		ack, err := s.append(ctx, entry, last.GetSequence())
		if isWrongLast(err) {
			if attempt > 1000 {
				return nil, false, fmt.Errorf("funding: ledger of %s too contended", fund)
			}
			continue // another line went in first: read again
		}
		if err != nil {
			return nil, false, fmt.Errorf("funding: append to the ledger of %s: %w", fund, err)
		}
		entry.Sequence = ack.Sequence
		if ack.Duplicate {
			// The stored line carries the same key (same message id) but
			// its own time: return it when it can be read; otherwise ours,
			// which differs only in that time, is still the answer.
			if stored, gerr := s.stream.GetMsg(ctx, ack.Sequence); gerr == nil {
				if e, derr := DecodeLine(fund, ack.Sequence, stored.Data); derr == nil {
					entry = e
				}
			}
			return entry, true, nil
		}
		return entry, false, nil
	}
}
