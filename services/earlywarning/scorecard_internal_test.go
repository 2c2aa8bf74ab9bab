package earlywarning

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestScorecardKeptPerRulesVersion: the scorecard is evaluated once per
// rules in force (and thresholds), again when they change; a service
// started without an evaluator answers unavailable.
func TestScorecardKeptPerRulesVersion(t *testing.T) {
	s := &Service{log: zap.NewNop()}
	rules := DefaultRules()
	s.conf.Store(&Config{Rules: rules, DefaultThreshold: 25})
	if _, err := s.scorecard(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("no evaluator: %v, want ErrUnavailable", err)
	}
	var evaluated []float64
	eval := func(stored []*demarchev1.Signal, r *Rules, def float64, _ map[demarchev1.Region]float64) ([]byte, error) {
		if stored != nil {
			t.Errorf("a service without a store passed %d stored signals", len(stored))
		}
		evaluated = append(evaluated, def)
		return []byte(`{"rules": "` + r.Version + `"}`), nil
	}
	s.conf.Store(&Config{Rules: rules, DefaultThreshold: 25, Scorecard: eval})
	for range 3 {
		if b, err := s.scorecard(context.Background()); err != nil || string(b) != `{"rules": "`+rules.Version+`"}` {
			t.Fatalf("scorecard: %s, %v", b, err)
		}
	}
	if len(evaluated) != 1 {
		t.Fatalf("evaluated %d times for one rules version, want 1", len(evaluated))
	}
	s.conf.Store(&Config{Rules: rules, DefaultThreshold: 30, Scorecard: eval})
	if _, err := s.scorecard(context.Background()); err != nil || len(evaluated) != 2 || evaluated[1] != 30 {
		t.Fatalf("a new threshold was not evaluated: %v, %v", evaluated, err)
	}
	failing := func([]*demarchev1.Signal, *Rules, float64, map[demarchev1.Region]float64) ([]byte, error) {
		return nil, errors.New("boom")
	}
	s.conf.Store(&Config{Rules: rules, DefaultThreshold: 31, Scorecard: failing})
	if _, err := s.scorecard(context.Background()); err == nil {
		t.Fatal("a failed evaluation answered")
	}
}
