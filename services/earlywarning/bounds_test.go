package earlywarning_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// withScoring is the default rules with the scoring section's lines
// replaced (from → to).
func withScoring(t *testing.T, from, to string) string {
	t.Helper()
	base := string(earlywarning.DefaultRules().Source)
	if !strings.Contains(base, from) {
		t.Fatalf("%q not in the default rules", from)
	}
	return strings.Replace(base, from, to, 1)
}

// TestRulesRefuseOutOfRangeValues: each scoring value outside its stated
// range is refused with the field, the value, the allowed range and why;
// the values at the ends of each range are accepted.
func TestRulesRefuseOutOfRangeValues(t *testing.T) {
	refused := []struct {
		name, from, to, field, says string
	}{
		{"1-hour window", "  window: 336h", "  window: 1h", "scoring.window", "1h is out of range (allowed: 24h (1 day) to 8760h (365 days)): a shorter window scores a single day's incidents"},
		{"2-year window", "  window: 336h", "  window: 17520h", "scoring.window", "17520h is out of range (allowed: 24h (1 day) to 8760h (365 days))"},
		{"negative window", "  window: 336h", "  window: -336h", "scoring.window", "-336h is out of range"},
		{"100,000-hour horizon", "  # horizon: 336h", "  horizon: 100000h", "scoring.horizon", "100000h is out of range (allowed: 0s for the window, or 1h to 2160h (90 days)): events older than 90 days are history"},
		{"30-minute horizon", "  # horizon: 336h", "  horizon: 30m", "scoring.horizon", "30m0s is out of range (allowed: 0s for the window, or 1h to 2160h (90 days))"},
		{"1-minute half-life", "  half_life: 0s", "  half_life: 1m", "scoring.half_life", "1m0s is out of range (allowed: 0s for no decay, or 1h to 8760h (365 days))"},
		{"2-year half-life", "  half_life: 0s", "  half_life: 17520h", "scoring.half_life", "17520h is out of range (allowed: 0s for no decay, or 1h to 8760h (365 days))"},
		{"threshold 1e9", "    default: 25", "    default: 1e9", "scoring.thresholds.default", "1e+09 is out of range (allowed: above 0, at most 10000): a signal weighs at most 100, so a higher threshold is never crossed"},
		{"region threshold 10001", "    default: 25", "    default: 25\n    africa: 10001", "scoring.thresholds.africa", "10001 is out of range (allowed: above 0, at most 10000)"},
		{"threshold 0", "    default: 25", "    default: 0", "scoring.thresholds.default", "0 must be above 0"},
		{"negative margin", "  new_episode_margin: 0.25", "  new_episode_margin: -0.5", "scoring.new_episode_margin", "-0.5 is negative"},
		{"margin of 11 thresholds", "  new_episode_margin: 0.25", "  new_episode_margin: 11", "scoring.new_episode_margin", "11 is out of range (allowed: 0 to 10, a fraction of the threshold)"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			_, err := earlywarning.ParseRules("bounds.yaml", []byte(withScoring(t, c.from, c.to)))
			var re *earlywarning.RulesError
			if !errors.As(err, &re) || !errors.Is(err, earlywarning.ErrBadRules) {
				t.Fatalf("%s accepted (or not a RulesError): %v", c.to, err)
			}
			var mine []earlywarning.RuleProblem
			for _, p := range re.Problems {
				if p.Field == c.field {
					mine = append(mine, p)
				}
			}
			if len(mine) != 1 || !strings.Contains(mine[0].Reason, c.says) || mine[0].Line == 0 {
				t.Fatalf("problems of %s: %v, want one saying %q at its line", c.field, mine, c.says)
			}
			if !strings.Contains(err.Error(), c.field+": "+mine[0].Reason) {
				t.Fatalf("the error does not name the field with its reason: %v", err)
			}
		})
	}
	accepted := []struct{ from, to string }{
		{"  window: 336h", "  window: 24h"},
		{"  window: 336h", "  window: 8760h"},
		{"  # horizon: 336h", "  horizon: 1h"},
		{"  # horizon: 336h", "  horizon: 2160h"},
		{"  half_life: 0s", "  half_life: 1h"},
		{"  half_life: 0s", "  half_life: 8760h"},
		{"    default: 25", "    default: 10000"},
		{"    default: 25", "    default: 0.5"},
		{"  new_episode_margin: 0.25", "  new_episode_margin: 0"},
		{"  new_episode_margin: 0.25", "  new_episode_margin: 10"},
	}
	for _, c := range accepted {
		if _, err := earlywarning.ParseRules("edge.yaml", []byte(withScoring(t, c.from, c.to))); err != nil {
			t.Errorf("%s (the end of its range) refused: %v", strings.TrimSpace(c.to), err)
		}
	}
	if m := earlywarning.DefaultRules().NewEpisodeMargin; m != earlywarning.DefaultNewEpisodeMargin {
		t.Errorf("default rules' new_episode_margin %g, want %g", m, earlywarning.DefaultNewEpisodeMargin)
	}
}

// TestServiceRefusesOutOfRangeSettings: the settings that override the rules
// (the serve flags) are held to the same bounds, named by their flag.
func TestServiceRefusesOutOfRangeSettings(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	for _, c := range []struct {
		cfg  earlywarning.Config
		says string
	}{
		{earlywarning.Config{Window: time.Hour}, "window (--window): 1h is out of range (allowed: 24h (1 day) to 8760h (365 days))"},
		{earlywarning.Config{Horizon: 100000 * time.Hour}, "horizon (--horizon): 100000h is out of range (allowed: 0s for the window, or 1h to 2160h (90 days))"},
		{earlywarning.Config{DefaultThreshold: 1e9}, "default threshold (--threshold): 1e+09 is out of range (allowed: above 0, at most 10000)"},
		{earlywarning.Config{Thresholds: map[demarchev1.Region]float64{demarchev1.Region_REGION_AFRICA: 20000}}, "threshold of africa (--region-threshold africa=…): 20000 is out of range"},
	} {
		c.cfg.NATSURL = srv.URL()
		svc, err := earlywarning.Start(context.Background(), c.cfg, newFakeOpener(), zapNop)
		if err == nil {
			svc.Stop()
			t.Errorf("%+v started", c.cfg)
			continue
		}
		if !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v does not say %q", err, c.says)
		}
	}
}
