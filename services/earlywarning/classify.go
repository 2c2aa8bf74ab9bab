package earlywarning

import (
	"math"
	"strings"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// How a conflict event becomes a signal: its crisis type and weight come from
// the rules file (rules.go, rules/default.yaml: the first rule that matches;
// with the default rules, weight = 1 + ln(1 + fatalities), so every event counts
// at least 1 and deaths raise it with diminishing returns: 0 → 1, 1 → 1.69,
// 10 → 3.40, 100 → 5.62, 1000 → 7.91). A situation's score is the sum of its
// signals' weights over the window (decayed when the rules say so).

// Rule names, recorded in each signal's rule field.
const (
	RuleCoup         = "coup"
	RuleConstitution = "constitution"
	RuleElection     = "election"
	RuleInterstate   = "interstate"
	RuleNonState     = "non-state"
	RuleGeneral      = "general"
	RuleReported     = "reported" // a signal reported with its own type and weight
)

func containsAny(text string, words []string) bool {
	for _, w := range words {
		if strings.Contains(text, w) {
			return true
		}
	}
	return false
}

// nonStateInteraction: ACLED's two-digit interaction code with both actors
// non-state armed or communal groups (2 rebels, 3 political militias,
// 4 identity militias), e.g. 44, 34, 24.
func nonStateInteraction(code string) bool {
	if len(code) != 2 {
		return false
	}
	in := func(b byte) bool { return b >= '2' && b <= '4' }
	return in(code[0]) && in(code[1])
}

// Weight is a reported signal's default contribution to its situation's
// score: 1 + ln(1 + fatalities) (imported events are weighed by the rules).
func Weight(fatalities int32) float64 {
	return 1 + math.Log1p(float64(max(fatalities, 0)))
}

// severityOf derives a signal's 1-5 severity from its weight when it has none:
// below 2 → 1, below 3 → 2, below 4 → 3, below 5 → 4, else 5
// (about 0, 1-6, 7-19, 20-53, 54+ fatalities).
func severityOf(s *demarchev1.Signal) int32 {
	if s.GetSeverity() > 0 {
		return s.GetSeverity()
	}
	return int32(min(max(math.Floor(s.GetWeight()), 1), 5))
}

// crisisSeverity is the severity of a crisis opened by a crossing: 3 at the
// threshold, 4 from 1.5 times it, 5 from 2.5 times it.
func crisisSeverity(score, threshold float64) int32 {
	switch r := score / threshold; {
	case r >= 2.5:
		return 5
	case r >= 1.5:
		return 4
	}
	return 3
}
