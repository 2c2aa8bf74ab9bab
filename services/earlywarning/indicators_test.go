package earlywarning_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// The indicators beyond fatalities are weighed by the rules file's
// categories, risk factors and source credibility, never by deaths; a rule
// that names no category is left to the fatality weighing.
func TestIndicatorWeightFromTheRules(t *testing.T) {
	t.Parallel()
	def := earlywarning.DefaultRules()
	custom, err := earlywarning.ParseRules("custom", []byte(strings.Replace(string(def.Source),
		"  - name: femwise\n    kind: womens-group\n    credibility: 1\n",
		"  - name: femwise\n    kind: womens-group\n    credibility: 1.5\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := def.SignalSource("femwise"); !ok || s.Kind != earlywarning.SourceWomensGroup {
		t.Fatalf("default rules: femwise is %+v, %v; want a women's group", s, ok)
	}
	if s, ok := def.SignalSource("wanep"); !ok || s.Kind != earlywarning.SourceCivilSociety {
		t.Fatalf("default rules: wanep is %+v, %v; want civil society", s, ok)
	}
	for _, tc := range []struct {
		name, rule, source string
		rules              *earlywarning.Rules
		want               float64
		category           bool
		err                string
	}{
		{name: "hate speech", rule: "hate-speech", source: "person_ana", rules: def, want: 2.5, category: true},
		{name: "human-rights violation", rule: "human-rights-violation", source: "ohchr", rules: def, want: 3, category: true},
		{name: "atrocity risk factor", rule: "atrocity-risk/signs-of-intent-to-destroy", source: "osapg", rules: def, want: 6, category: true},
		{name: "atrocity common risk factor", rule: "atrocity-risk/enabling-circumstances", source: "osapg", rules: def, want: 3, category: true},
		{name: "women's group at credibility 1", rule: "hate-speech", source: "femwise", rules: def, want: 2.5, category: true},
		{name: "women's group at credibility 1.5", rule: "hate-speech", source: "femwise", rules: custom, want: 3.75, category: true},
		{name: "civil society unchanged by the women's group's credibility", rule: "hate-speech", source: "wanep", rules: custom, want: 2.5, category: true},
		{name: "atrocity risk without its factor", rule: "atrocity-risk", source: "osapg", rules: def, category: true, err: "needs its risk factor"},
		{name: "unknown risk factor", rule: "atrocity-risk/bad-weather", source: "osapg", rules: def, category: true, err: `"bad-weather" is not a risk factor`},
		{name: "factor on a category without any", rule: "hate-speech/radio", source: "osapg", rules: def, category: true, err: "has no risk factors"},
		{name: "fatality rule", rule: "battles", source: "acled", rules: def},
		{name: "reported", rule: earlywarning.RuleReported, source: "person_ana", rules: def},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, ok, err := tc.rules.IndicatorWeight(tc.rule, tc.source)
			switch {
			case ok != tc.category:
				t.Fatalf("category %v, want %v", ok, tc.category)
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
			case err != nil:
				t.Fatal(err)
			case math.Abs(w-tc.want) > 1e-9:
				t.Fatalf("weight %g, want %g", w, tc.want)
			}
			// Weighing a signal in place: only a category's is changed, and
			// its deaths do not count.
			sig := &demarchev1.Signal{Rule: tc.rule, Source: tc.source, Weight: 7, Fatalities: 40}
			err = tc.rules.WeighIndicator(sig)
			switch {
			case tc.err != "" && err == nil:
				t.Fatal("WeighIndicator accepted it")
			case !tc.category && (sig.GetWeight() != 7 || sig.GetRulesVersion() != ""):
				t.Fatalf("a signal of no category was changed: %v", sig)
			case tc.category && tc.err == "" && (math.Abs(sig.GetWeight()-tc.want) > 1e-9 || sig.GetRulesVersion() != tc.rules.Version):
				t.Fatalf("weighed %v, want weight %g under %s", sig, tc.want, tc.rules.Version)
			}
		})
	}
}

// A category's weight, a risk factor's and a source's credibility are
// refused outside their bounds, with the field and why.
func TestIndicatorBoundsRefuseOutOfRangeWeights(t *testing.T) {
	t.Parallel()
	def := string(earlywarning.DefaultRules().Source)
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"category weight too high", "  - name: hate-speech\n    weight: 2.5\n", "  - name: hate-speech\n    weight: 21\n",
			"categories[1].weight: 21 is out of range (allowed: above 0, at most 20)"},
		{"category weight zero", "  - name: hate-speech\n    weight: 2.5\n", "  - name: hate-speech\n    weight: 0\n",
			"categories[1].weight: 0 must be above 0"},
		{"risk factor weight too high", "{name: signs-of-intent-to-destroy, weight: 3}", "{name: signs-of-intent-to-destroy, weight: 6}",
			"risk_factors[9].weight: 6 is out of range (allowed: above 0, at most 5)"},
		{"credibility too high", "kind: womens-group\n    credibility: 1\n", "kind: womens-group\n    credibility: 2.5\n",
			"sources[1].credibility: 2.5 is out of range (allowed: 0.1 to 2)"},
		{"credibility too low", "kind: womens-group\n    credibility: 1\n", "kind: womens-group\n    credibility: 0.05\n",
			"credibility: 0.05 is out of range"},
		{"unknown source kind", "kind: womens-group\n", "kind: media\n", "sources[1].kind: is required (allowed: civil-society, womens-group)"},
		{"category named as a rule", "  - name: hate-speech\n    weight: 2.5\n", "  - name: battles\n    weight: 2.5\n",
			`"battles" is also a classification rule's name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(def, tc.from) {
				t.Fatalf("the default rules no longer contain %q", tc.from)
			}
			_, err := earlywarning.ParseRules("t.yaml", []byte(strings.Replace(def, tc.from, tc.to, 1)))
			if !errors.Is(err, earlywarning.ErrBadRules) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if why := earlywarning.CheckCategoryWeight(20); why != "" {
		t.Errorf("20 refused: %s", why)
	}
	if why := earlywarning.CheckCategoryWeight(20.5); !strings.Contains(why, "630 deaths") {
		t.Errorf("20.5: %q, want the reason", why)
	}
}

// Hate-speech signals through the service: each weighs the rules' 2.5
// whatever weight and deaths it came with; nine stay below the default
// threshold of 25, the tenth crosses it and opens one crisis; the score's
// explanation names the category as each signal's rule.
func TestHateSpeechSignalsWeighedByTheRulesCross(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	svc := startService(t, srv.URL(), earlywarning.Config{}, opener)
	ctx := context.Background()
	const election = demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE
	hate := func(i int) *demarchev1.Signal {
		s := signal("femwise", fmt.Sprintf("HS%d", i), "GN", election, 1, t0.Add(time.Duration(i)*time.Hour))
		s.Rule, s.Fatalities = "hate-speech", 3 // deaths do not weigh an indicator
		return s
	}
	var nine []*demarchev1.Signal
	for i := range 9 {
		nine = append(nine, hate(i))
	}
	bad := signal("femwise", "AR1", "GN", election, 1, t0)
	bad.Rule = "atrocity-risk/bad-weather"
	resp, err := svc.Ingest(ctx, append(nine, bad))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetAccepted() != 9 || resp.GetRejected() != 1 || !strings.Contains(resp.GetResults()[9].GetReason(), `"bad-weather" is not a risk factor of atrocity-risk`) {
		t.Fatalf("ingest: %v", resp)
	}
	score, err := svc.Score(ctx, "GN", election)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(score.GetScore()-22.5) > 1e-9 || score.GetAboveThreshold() {
		t.Fatalf("nine hate-speech signals score %g (above %v), want 22.5 below 25", score.GetScore(), score.GetAboveThreshold())
	}
	for _, c := range score.GetContributions() {
		if c.GetRule() != "hate-speech" || c.GetWeight() != 2.5 || c.GetRulesVersion() != earlywarning.DefaultRules().Version {
			t.Errorf("contribution %v: want rule hate-speech, weight 2.5, the rules' version", c)
		}
	}
	if calls, _ := opener.snapshot(); len(calls) != 0 {
		t.Fatalf("opener called %d times below the threshold", len(calls))
	}
	resp, err = svc.Ingest(ctx, []*demarchev1.Signal{hate(9)})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetResults()[0]; r.GetStatus() != demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED || r.GetCrisisId() == "" || !r.GetCrisisOpened() {
		t.Fatalf("the tenth hate-speech signal: %v, want a crossing that opens a crisis", r)
	}
	if calls, _ := opener.snapshot(); len(calls) != 1 {
		t.Fatalf("opener called %d times, want once", len(calls))
	}
}
