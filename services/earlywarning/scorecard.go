package earlywarning

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// ScorecardFunc judges rules as forecasts on the signals early warning
// accepted (stored: the signal store's latest revisions, oldest event
// first; none when the store is empty) and answers the scorecard as JSON:
// the console's scorecard page (issue 22 item 4) asks for it over NATS
// (natsrpc.EarlyWarningScorecard). The platform wires in its evaluator
// (evaluate.ConsoleScorecard), which imports this package: so the process
// that starts the service passes it (Config.Scorecard), and a service started without one answers 503.
type ScorecardFunc func(stored []*demarchev1.Signal, rules *Rules, defaultThreshold float64, thresholds map[demarchev1.Region]float64) ([]byte, error)

// scorecardTimeout bounds reading the signal store for a scorecard.
const scorecardTimeout = 2 * time.Minute

// scorecardCache keeps the last scorecard: an evaluation takes seconds, and
// its answer changes only with the rules (and thresholds) in force and with
// what the signal store holds (its stream's last sequence).
type scorecardCache struct {
	mu   sync.Mutex // one evaluation at a time; the others wait for its answer
	key  string
	json []byte
}

// scorecard is the scorecard of the rules in force on the stored signals.
func (s *Service) scorecard(ctx context.Context) ([]byte, error) {
	c := s.config()
	if c.Scorecard == nil {
		return nil, fmt.Errorf("%w: this early-warning service was started without a scorecard evaluator", ErrUnavailable)
	}
	seq, err := s.storeSequence(ctx)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s|%s|%g|%v|%d", c.Rules.Version, RulesDigest(c.Rules.Source), c.DefaultThreshold, c.Thresholds, seq)
	s.cards.mu.Lock()
	defer s.cards.mu.Unlock()
	if s.cards.key == key {
		return s.cards.json, nil
	}
	var stored []*demarchev1.StoredSignal
	if seq > 0 {
		if err := s.readStore(ctx, storeFilters("", "", time.Time{}, time.Time{}), func(ss *demarchev1.StoredSignal) {
			stored = append(stored, ss)
		}); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	slices.SortFunc(stored, compareStored)
	var sigs []*demarchev1.Signal // none when the store is empty
	for _, ss := range stored {
		sigs = append(sigs, ss.GetSignal())
	}
	b, err := c.Scorecard(sigs, c.Rules, c.DefaultThreshold, c.Thresholds)
	if err != nil {
		return nil, fmt.Errorf("scorecard of rules %s: %w", c.Rules.Version, err)
	}
	s.cards.key, s.cards.json = key, b
	return b, nil
}

// storeSequence is the signal store's last sequence: it moves with every
// signal stored, revised or removed (0 for a service without a store).
func (s *Service) storeSequence(ctx context.Context) (uint64, error) {
	if s.store == nil {
		return 0, nil
	}
	st, err := s.store.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: signal store status: %v", ErrUnavailable, err)
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		return bs.StreamInfo().State.LastSeq, nil
	}
	return st.Values(), nil
}

// serveScorecard answers demarche.earlywarning.scorecard (anything → the
// scorecard, JSON); errors in the micro error headers, as every endpoint's.
func (s *Service) serveScorecard(r micro.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), scorecardTimeout)
	defer cancel()
	b, err := s.scorecard(ctx)
	if err != nil {
		if errs.Code(err) == errs.Code(errs.ErrInternal) {
			s.log.Warn("scorecard failed", zap.Error(err))
		}
		if rerr := r.Error(errs.Code(err), err.Error(), nil); rerr != nil {
			s.log.Warn("scorecard error answer not sent", zap.Error(rerr))
		}
		return
	}
	if err := r.Respond(b, micro.WithHeaders(micro.Headers{"Content-Type": {"application/json"}})); err != nil {
		s.log.Warn("scorecard answer not sent", zap.Error(err))
	}
}
