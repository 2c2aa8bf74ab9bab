package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Anchors. Every AnchorEvery (and on Anchor), the audit service signs the
// head of every chain that grew since its last anchor and publishes it to a
// separate stream, DEMARCHE_AUDIT_ANCHORS (subject demarche.audit.anchor.<chain>,
// deny delete and purge; only the audit identity may write there), and, when
// configured, appends it to an anchor file (one protobuf-JSON ChainHead per
// line) that can be copied off the machine. A chain rewritten or truncated
// after an anchor no longer holds the anchored record at the anchored
// sequence: Verify with VerifyOptions.Anchor (and `demarche audit verify`,
// which checks the last anchor the service reports, or --anchor FILE) names
// the record.

// Names of the anchor stream.
const (
	AnchorStream = "DEMARCHE_AUDIT_ANCHORS"
	AnchorRoot   = SubjectRoot + ".anchor"
)

// AnchorSubject is where a chain's anchors are published.
func AnchorSubject(chain string) string { return AnchorRoot + "." + chain }

// anchorState is what this process anchored last, per chain.
type anchorState struct {
	mu       sync.Mutex
	stream   jetstream.Stream
	file     string
	anchored map[string]uint64
}

// Anchor signs and publishes the head of every chain that grew since its
// last anchor (isolated chains are not anchored); it returns how many it anchored.
func (s *Store) Anchor(ctx context.Context) (int, error) {
	s.anchors.mu.Lock()
	defer s.anchors.mu.Unlock()
	chains, err := s.Chains(ctx)
	if err != nil {
		return 0, err
	}
	chains = append([]string{GlobalChain}, chains...)
	n := 0
	for _, chain := range chains {
		if s.alarms.reason(chain) != "" {
			continue
		}
		head, err := s.Head(ctx, chain)
		if errors.Is(err, ErrCorrupt) {
			if err := s.isolate(ctx, chain, err); err != nil {
				return n, err
			}
			continue
		}
		if err != nil {
			continue // empty
		}
		// A chain shorter than its anchor was truncated; an anchor gone or
		// older than the one this process made was removed. Either isolates
		// the chain with an alarm, and it is never anchored again: anchoring
		// the head left behind would make the truncation verify.
		last, lastErr := s.LastAnchor(ctx, chain)
		if lastErr != nil && !errors.Is(lastErr, ErrBroken) {
			return n, lastErr
		}
		var problem string
		switch made := s.anchors.anchored[chain]; {
		case lastErr != nil:
			problem = lastErr.Error()
		case last != nil && head.GetSequence() < last.GetSequence():
			problem = fmt.Sprintf("chain %s holds %d records but was anchored at record %d: records at its end were removed", chain, head.GetSequence(), last.GetSequence())
		case made > 0 && head.GetSequence() < made:
			problem = fmt.Sprintf("chain %s holds %d records but this service anchored it at record %d: records at its end were removed", chain, head.GetSequence(), made)
		case made > 0 && last.GetSequence() < made:
			problem = fmt.Sprintf("the anchors of chain %s were removed: the last one is at record %d, this service anchored record %d", chain, last.GetSequence(), made)
		}
		if problem != "" {
			if err := s.isolate(ctx, chain, fmt.Errorf("%w: %s", ErrCorrupt, problem)); err != nil {
				return n, err
			}
			continue
		}
		if s.anchors.anchored[chain] >= head.GetSequence() {
			continue
		}
		if last != nil && last.GetSequence() >= head.GetSequence() {
			s.anchors.anchored[chain] = last.GetSequence() // another instance did
			continue
		}
		b, err := deterministic.Marshal(head)
		if err != nil {
			return n, err
		}
		if _, err := s.js.Publish(ctx, AnchorSubject(chain), b, jetstream.WithExpectStream(AnchorStream),
			jetstream.WithMsgID(fmt.Sprintf("anchor-%s-%d", chain, head.GetSequence()))); err != nil {
			return n, fmt.Errorf("audit: anchor %s: %w", chain, err)
		}
		if s.anchors.file != "" {
			if err := appendAnchorFile(s.anchors.file, head); err != nil {
				return n, err
			}
		}
		s.anchors.anchored[chain] = head.GetSequence()
		n++
	}
	return n, nil
}

// LastAnchor is a chain's last anchored head (nil when never anchored).
func (s *Store) LastAnchor(ctx context.Context, chain string) (*demarchev1.ChainHead, error) {
	msg, err := s.anchors.stream.GetLastMsgForSubject(ctx, AnchorSubject(chain))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: last anchor of %s: %w", chain, err)
	}
	var h demarchev1.ChainHead
	if err := proto.Unmarshal(msg.Data, &h); err != nil || h.GetChain() != chain {
		return nil, fmt.Errorf("%w: the last anchor of %s (stream sequence %d) is not a head of that chain", ErrBroken, chain, msg.Sequence)
	}
	return &h, nil
}

var oneLine = protojson.MarshalOptions{Multiline: false}

func appendAnchorFile(path string, h *demarchev1.ChainHead) error {
	b, err := oneLine.Marshal(h)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("audit: anchor file: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("audit: anchor file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit: anchor file: %w", err)
	}
	return f.Close()
}

// ReadAnchorFile returns the last anchor of chain in an anchor file (nil when
// the file holds none for it). A line that does not parse is an error naming it.
func ReadAnchorFile(path, chain string) (*demarchev1.ChainHead, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("anchor file: %w", err)
	}
	defer f.Close()
	var last *demarchev1.ChainHead
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var h demarchev1.ChainHead
		if err := protojson.Unmarshal(sc.Bytes(), &h); err != nil {
			return nil, fmt.Errorf("anchor file %s line %d: %w", path, n, err)
		}
		if h.GetChain() == chain && (last == nil || h.GetSequence() >= last.GetSequence()) {
			last = &h
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("anchor file %s: %w", path, err)
	}
	return last, nil
}
