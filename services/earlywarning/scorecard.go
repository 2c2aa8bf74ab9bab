package earlywarning

import (
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// ScorecardFunc judges rules as forecasts and answers the scorecard as JSON:
// the console's scorecard page (issue 22 item 4) asks for it over NATS
// (natsrpc.EarlyWarningScorecard). The platform wires in evaluate.Sample,
// which imports this package: so the process that starts the service passes
// it (Config.Scorecard), and a service started without one answers 503.
type ScorecardFunc func(rules *Rules, defaultThreshold float64, thresholds map[demarchev1.Region]float64) ([]byte, error)

// scorecardCache keeps the last scorecard: an evaluation takes seconds, and
// its answer changes only with the rules (and thresholds) in force.
type scorecardCache struct {
	mu   sync.Mutex // one evaluation at a time; the others wait for its answer
	key  string
	json []byte
}

// scorecard is the scorecard of the rules in force.
func (s *Service) scorecard() ([]byte, error) {
	c := s.config()
	if c.Scorecard == nil {
		return nil, fmt.Errorf("%w: this early-warning service was started without a scorecard evaluator", ErrUnavailable)
	}
	key := fmt.Sprintf("%s|%s|%g|%v", c.Rules.Version, RulesDigest(c.Rules.Source), c.DefaultThreshold, c.Thresholds)
	s.cards.mu.Lock()
	defer s.cards.mu.Unlock()
	if s.cards.key == key {
		return s.cards.json, nil
	}
	b, err := c.Scorecard(c.Rules, c.DefaultThreshold, c.Thresholds)
	if err != nil {
		return nil, fmt.Errorf("scorecard of rules %s: %w", c.Rules.Version, err)
	}
	s.cards.key, s.cards.json = key, b
	return b, nil
}

// serveScorecard answers demarche.earlywarning.scorecard (anything → the
// scorecard, JSON); errors in the micro error headers, as every endpoint's.
func (s *Service) serveScorecard(r micro.Request) {
	b, err := s.scorecard()
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
