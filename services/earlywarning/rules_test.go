package earlywarning_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

func defaultRulesText(t *testing.T) string {
	t.Helper()
	return string(earlywarning.DefaultRules().Source)
}

func TestDefaultRulesAreValidAndVersioned(t *testing.T) {
	r := earlywarning.DefaultRules()
	if !strings.HasPrefix(r.Version, "2026.12.2+") || len(r.Version) != len("2026.12.2+")+8 {
		t.Fatalf("version %q: want the file's version + 8 hex digits", r.Version)
	}
	if r.Window != earlywarning.DefaultWindow || r.DefaultThreshold != earlywarning.DefaultThreshold || len(r.Classes) != 11 {
		t.Fatalf("default rules: window %s threshold %g, %d rules", r.Window, r.DefaultThreshold, len(r.Classes))
	}
}

// TestInvalidRulesAreRefusedWithLineAndField: each broken file names the
// line and the field, and why.
func TestInvalidRulesAreRefusedWithLineAndField(t *testing.T) {
	base := defaultRulesText(t)
	lineOf := func(text, needle string) int {
		i := strings.Index(text, needle)
		if i < 0 {
			t.Fatalf("%q not in the rules", needle)
		}
		return strings.Count(text[:i], "\n") + 1
	}
	cases := []struct {
		name, from, to, field, reason string
	}{
		{"unknown crisis type", "crisis_type: unconstitutional-change", "crisis_type: coupz", "rules[0].crisis_type", `"coupz" is not a crisis type`},
		{"negative weight", "  per_log_fatality: 1", "  per_log_fatality: -2", "weight.per_log_fatality", "is negative"},
		{"unknown field", "    actors_differ: true", "    actors_diff: true", "rules[3].when[0].actors_diff", "unknown field"},
		{"bad duration", "  window: 336h", "  window: two weeks", "scoring.window", "is not a duration"},
		{"unknown region", "    default: 25", "    default: 25\n    antarctica: 3", "scoring.thresholds.antarctica", "is not a region"},
		{"UCDP condition without source", "      - source: ucdp\n        type_of_violence: [2]", "      - type_of_violence: [2]", "rules[4].when[3].source", "must be ucdp"},
		{"bad confidentiality", "    confidentiality: restricted\n    shared_with: [AU, ECOWAS]", "    confidentiality: secret\n    shared_with: [AU, ECOWAS]", "crises[0].confidentiality", `"secret" is not a confidentiality level`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(base, c.from) {
				t.Fatalf("%q not in the default rules", c.from)
			}
			text := strings.Replace(base, c.from, c.to, 1)
			// The problem is reported on the line of its field (or of its
			// mapping, when the field is missing).
			want := lineOf(text, c.to)
			key := c.field[strings.LastIndex(c.field, ".")+1:]
			if i := strings.Index(c.to, key+":"); i >= 0 {
				want += strings.Count(c.to[:i], "\n")
			}
			_, err := earlywarning.ParseRules("bad.yaml", []byte(text))
			var re *earlywarning.RulesError
			if !errors.As(err, &re) || !errors.Is(err, earlywarning.ErrBadRules) {
				t.Fatalf("want a RulesError, got %v", err)
			}
			for _, p := range re.Problems {
				if p.Field == c.field && strings.Contains(p.Reason, c.reason) {
					if p.Line != want {
						t.Fatalf("%s reported at line %d, want %d", p.Field, p.Line, want)
					}
					if !strings.Contains(err.Error(), "bad.yaml") {
						t.Fatalf("error does not name the file: %v", err)
					}
					return
				}
			}
			t.Fatalf("no problem for %s (%s): %v", c.field, c.reason, err)
		})
	}
	if _, err := earlywarning.ParseRules("empty.yaml", nil); err == nil {
		t.Fatal("an empty file was accepted")
	}
	if _, err := earlywarning.ParseRules("broken.yaml", []byte("version: 1\nscoring: [\n")); err == nil || !strings.Contains(err.Error(), "line") {
		t.Fatalf("broken YAML: %v", err)
	}
}

// TestChangingAWeightChangesTheScoreAndTheVersion: the same file imported
// under rules with one weight changed scores differently, and the signals and
// score record the other version.
func TestChangingAWeightChangesTheScoreAndTheVersion(t *testing.T) {
	t.Parallel()
	base := earlywarning.DefaultRules()
	heavier, err := earlywarning.ParseRules("heavier.yaml", []byte(strings.Replace(string(base.Source),
		"  - name: coup\n    crisis_type: unconstitutional-change\n", "  - name: coup\n    crisis_type: unconstitutional-change\n    weight: 2\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if heavier.Version == base.Version {
		t.Fatalf("changed rules kept version %s", base.Version)
	}
	ctx := context.Background()
	fileNow := func() time.Time { return time.Date(2023, 2, 20, 0, 0, 0, 0, time.UTC) } // the sample file's week
	scoreUnder := func(rules *earlywarning.Rules) *demarchev1.ScoreResponse {
		t.Helper()
		srv := natstest.Server(t)
		svc := startService(t, srv.URL(), earlywarning.Config{Rules: rules, DefaultThreshold: 1000, Now: fileNow}, newFakeOpener())
		sum, err := earlywarning.ImportWith(ctx, strings.NewReader(acledFile()), earlywarning.FormatACLED, svc.Ingest, earlywarning.ImportOptions{Rules: rules})
		if err != nil || sum.Live != 5 || sum.RulesVersion != rules.Version {
			t.Fatalf("import under %s: %+v %v", rules.Name, sum, err)
		}
		sc, err := svc.Score(ctx, "GN", coup)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	a, b := scoreUnder(base), scoreUnder(heavier)
	if math.Abs(b.GetScore()-2*a.GetScore()) > 1e-9 || a.GetScore() == 0 {
		t.Fatalf("coup weight ×2: score %g, then %g", a.GetScore(), b.GetScore())
	}
	for _, c := range b.GetContributions() {
		if c.GetRulesVersion() != heavier.Version || c.GetRule() != earlywarning.RuleCoup {
			t.Fatalf("contribution recorded rules %s rule %s, want %s coup", c.GetRulesVersion(), c.GetRule(), heavier.Version)
		}
	}
	if b.GetRulesVersion() != heavier.Version || a.GetRulesVersion() != base.Version {
		t.Fatalf("scores recorded rules %s and %s", a.GetRulesVersion(), b.GetRulesVersion())
	}
}

// TestDecayHalvesAWeightEveryHalfLife: with half_life 24h a signal two days
// older than the window's end counts a quarter, in the service and the backtest.
func TestDecayHalvesAWeightEveryHalfLife(t *testing.T) {
	t.Parallel()
	r, err := earlywarning.ParseRules("decay.yaml", []byte(strings.Replace(string(earlywarning.DefaultRules().Source), "half_life: 0s", "half_life: 24h", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Decayed(8, 48*time.Hour); got != 2 {
		t.Fatalf("8 after two half-lives: %g, want 2", got)
	}
	srv := natstest.Server(t)
	svc := startService(t, srv.URL(), earlywarning.Config{Rules: r}, newFakeOpener())
	ctx := context.Background()
	if _, err := svc.Ingest(ctx, []*demarchev1.Signal{signal("ecowarn", "old", "GN", coup, 8, t0), signal("ecowarn", "new", "GN", coup, 1, t0.Add(48*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	sc, err := svc.Score(ctx, "GN", coup)
	if err != nil || sc.GetScore() != 3 {
		t.Fatalf("decayed score %v %v, want 2 + 1", sc.GetScore(), err)
	}
}
