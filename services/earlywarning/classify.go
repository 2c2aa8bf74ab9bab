package earlywarning

import (
	"math"
	"strings"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// How a conflict event becomes a signal: its crisis type comes from the first
// rule of this table that matches, its weight from its fatalities.
//
//	rule                      crisis type              matches when
//	coup                      unconstitutional-change  the text mentions a coup, mutiny, junta or seizure of power;
//	                                                   UCDP: a side is a "military faction"
//	constitution              constitutional-crisis    the text mentions the constitution, a term limit, a third term
//	                                                   or the dissolution of parliament
//	election                  election-violence        the text mentions an election, a vote, ballots, polling,
//	                                                   a candidate or a campaign
//	interstate                border-dispute           ACLED: state forces against state forces of another country
//	                                                   (interaction 11 / "State forces-State forces" with two
//	                                                   different actors), or the text mentions a border clash;
//	                                                   UCDP: state-based violence (type 1) with a government on both sides
//	non-state                 intercommunal-violence   ACLED: non-state actors against each other (interaction codes
//	                                                   22-48 without state forces, or identity militias), or the text
//	                                                   mentions communal, ethnic, herder, farmer or clan violence;
//	                                                   UCDP: non-state conflict (type_of_violence 2)
//	general                   general                  anything else
//
// "The text" is ACLED's notes, event and sub-event types and actors, or UCDP's
// side names and, when the export has them, source_headline and where_description.
//
// Weight = 1 + ln(1 + fatalities): every event counts at least 1, deaths raise
// it with diminishing returns (0 → 1, 1 → 1.69, 10 → 3.40, 100 → 5.62,
// 1000 → 7.91), so one massacre does not drown out a pattern of smaller events.
// A situation's score is the sum of its signals' weights over the window.

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

var keywordRules = []struct {
	rule     string
	t        demarchev1.CrisisType
	keywords []string
}{
	{RuleCoup, demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE,
		[]string{"coup", "putsch", "mutiny", "mutineer", "junta", "seized power", "seize power", "military takeover", "military faction"}},
	{RuleConstitution, demarchev1.CrisisType_CRISIS_TYPE_CONSTITUTIONAL_CRISIS,
		[]string{"constitution", "term limit", "third term", "dissolved parliament", "dissolution of parliament", "dissolves parliament"}},
	{RuleElection, demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE,
		[]string{"election", "electoral", "ballot", "polling", "voter", "voting", " vote", "candidate", "campaign rally", "referendum"}},
}

var nonStateKeywords = []string{"communal", "ethnic", "herder", "farmer", "clan ", "clan-", "tribal"}

func containsAny(text string, words []string) bool {
	for _, w := range words {
		if strings.Contains(text, w) {
			return true
		}
	}
	return false
}

// classifyText applies the keyword rules (coup, constitution, election).
func classifyText(text string) (demarchev1.CrisisType, string, bool) {
	text = " " + strings.ToLower(text)
	for _, r := range keywordRules {
		if containsAny(text, r.keywords) {
			return r.t, r.rule, true
		}
	}
	return 0, "", false
}

// acledEvent holds the columns of an ACLED row that classification reads.
type acledEvent struct {
	eventType, subEventType, disorderType, actor1, actor2, interaction, notes string
}

// ClassifyACLED returns the crisis type of an ACLED event and the rule that chose it.
func classifyACLED(e acledEvent) (demarchev1.CrisisType, string) {
	text := strings.Join([]string{e.notes, e.eventType, e.subEventType, e.actor1, e.actor2}, " ")
	if t, rule, ok := classifyText(text); ok {
		return t, rule
	}
	lower := strings.ToLower(text)
	inter := strings.ToLower(strings.TrimSpace(e.interaction))
	stateVsState := inter == "11" || inter == "state forces-state forces"
	if (stateVsState && e.actor1 != "" && e.actor2 != "" && !strings.EqualFold(e.actor1, e.actor2)) ||
		containsAny(lower, []string{"border clash", "cross-border", "cross border"}) {
		return demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE, RuleInterstate
	}
	if nonStateInteraction(inter) || strings.Contains(inter, "identity militia") || containsAny(lower, nonStateKeywords) {
		return demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE, RuleNonState
	}
	return demarchev1.CrisisType_CRISIS_TYPE_GENERAL, RuleGeneral
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

// ucdpEvent holds the columns of a UCDP GED row that classification reads.
type ucdpEvent struct {
	typeOfViolence, sideA, sideB, headline, where string
}

// classifyUCDP returns the crisis type of a UCDP GED event and the rule that chose it.
func classifyUCDP(e ucdpEvent) (demarchev1.CrisisType, string) {
	if t, rule, ok := classifyText(strings.Join([]string{e.sideA, e.sideB, e.headline, e.where}, " ")); ok {
		return t, rule
	}
	switch strings.TrimSpace(e.typeOfViolence) {
	case "1":
		if strings.HasPrefix(e.sideA, "Government of") && strings.HasPrefix(e.sideB, "Government of") {
			return demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE, RuleInterstate
		}
	case "2":
		return demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE, RuleNonState
	}
	return demarchev1.CrisisType_CRISIS_TYPE_GENERAL, RuleGeneral
}

// Weight is a signal's contribution to its situation's score: 1 + ln(1 + fatalities).
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
