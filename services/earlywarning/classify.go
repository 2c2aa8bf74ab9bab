package earlywarning

import (
	"errors"
	"io"
	"math"
	"strings"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// How a conflict event becomes a signal: its crisis type and weight come from
// the rules file (rules.go, rules/default.yaml: the first rule that matches;
// with the default rules, weight = rule weight × (1 + ln(1 + f) + 0.5 × √f)
// for f fatalities, so every event counts at least 1, a few deaths raise it
// quickly and a massacre still stands out: 0 → 1, 1 → 2.19, 12 → 5.30,
// 100 → 10.6, 162 → 12.5, 1000 → 23.7; a single logarithm flattened 162
// deaths to the weight of two 12-death events). A situation's score is the
// sum of its signals' weights over the window (decayed when the rules say so).

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

// Event is what the rules classify: a conflict event's columns their
// conditions read. Its format (format_*.go) fills the columns it has, and
// Text; the Reader fills Source and Fatalities.
type Event struct {
	Source Format
	// Text are the columns the rules' text conditions search, in the
	// format's order (ACLED: notes, event types, actors; UCDP: sides,
	// headline, place).
	Text []string
	// ACLED's columns.
	EventType, SubEventType, Actor1, Actor2, Notes string
	Interaction                                    string
	CivilianTargeting                              bool // the format marks the event as targeting civilians
	Fatalities                                     int32
	// UCDP's columns.
	TypeOfViolence                int
	SideA, SideB, Headline, Where string
}

// text is what the text conditions search, lower case, with a leading space
// (so " vote" matches a word start).
func (e Event) text() string {
	return " " + strings.ToLower(strings.Join(e.Text, " "))
}

func (c Condition) matches(e Event, text string) bool {
	if c.Source != "" && Format(c.Source) != e.Source {
		return false
	}
	if len(c.Text) > 0 && !containsAny(text, c.Text) {
		return false
	}
	if len(c.EventType) > 0 && !equalsAny(e.EventType, c.EventType) {
		return false
	}
	if len(c.SubEventType) > 0 && !equalsAny(e.SubEventType, c.SubEventType) {
		return false
	}
	if len(c.Actor) > 0 && !containsAny(strings.ToLower(e.Actor1+" | "+e.Actor2), c.Actor) {
		return false
	}
	if c.ActorsDiffer && (e.Actor1 == "" || e.Actor2 == "" || strings.EqualFold(e.Actor1, e.Actor2)) {
		return false
	}
	inter := strings.ToLower(strings.TrimSpace(e.Interaction))
	if len(c.Interaction) > 0 && !equalsAny(inter, c.Interaction) {
		return false
	}
	if len(c.InteractionContains) > 0 && !containsAny(inter, lowerAll(c.InteractionContains)) {
		return false
	}
	if c.InteractionNonState && !nonStateInteraction(inter) {
		return false
	}
	if c.CivilianTargeting != nil && *c.CivilianTargeting != e.CivilianTargeting {
		return false
	}
	if e.Fatalities < c.MinFatalities {
		return false
	}
	if len(c.TypeOfViolence) > 0 {
		found := false
		for _, t := range c.TypeOfViolence {
			found = found || t == e.TypeOfViolence
		}
		if !found {
			return false
		}
	}
	if c.SidesPrefix != "" && !(strings.HasPrefix(e.SideA, c.SidesPrefix) && strings.HasPrefix(e.SideB, c.SidesPrefix)) {
		return false
	}
	return true
}

func equalsAny(v string, list []string) bool {
	for _, s := range list {
		if strings.EqualFold(strings.TrimSpace(v), s) {
			return true
		}
	}
	return false
}

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

// Classify returns an event's crisis type, the rule that chose it and its weight.
func (r *Rules) Classify(e Event) (demarchev1.CrisisType, string, float64) {
	text := e.text()
	rule := r.Default
	for _, cr := range r.Classes {
		matched := false
		for _, c := range cr.When {
			if c.matches(e, text) {
				matched = true
				break
			}
		}
		if matched {
			rule = cr
			break
		}
	}
	f := float64(max(e.Fatalities, 0))
	w := rule.Weight * (r.Base + r.PerLogFatality*math.Log1p(f) + r.PerSqrtFatality*math.Sqrt(f))
	if e.CivilianTargeting { // only a format with such a column (ACLED) sets it
		w *= r.CivilianTargeting
	}
	return rule.CrisisType, rule.Name, min(w, demarchev1.MaxSignalWeight)
}

// ClassifiedRow is one row of a sample file as the rules classify it
// (`demarche warning rules test`).
type ClassifiedRow struct {
	Line        int     `json:"line"`
	SourceID    string  `json:"sourceId,omitempty"`
	Date        string  `json:"date,omitempty"`
	CountryCode string  `json:"countryCode,omitempty"`
	CrisisType  string  `json:"crisisType,omitempty"`
	Rule        string  `json:"rule,omitempty"`
	Weight      float64 `json:"weight,omitempty"`
	Fatalities  int32   `json:"fatalities"`
	Error       string  `json:"error,omitempty"`
}

// ClassifyFile classifies every row of a file with the rules.
func ClassifyFile(r io.Reader, format Format, rules *Rules) ([]ClassifiedRow, error) {
	rd, err := NewReader(r, format)
	if err != nil {
		return nil, err
	}
	rd.WithRules(rules)
	var out []ClassifiedRow
	for {
		sig, line, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		var rowErr *RowError
		if errors.As(err, &rowErr) {
			out = append(out, ClassifiedRow{Line: rowErr.Line, SourceID: rowErr.SourceID, Error: rowErr.Reason})
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, ClassifiedRow{Line: line, SourceID: sig.GetSourceId(), Date: sig.GetObservedAt().AsTime().Format("2006-01-02"),
			CountryCode: sig.GetCountryCode(), CrisisType: sig.GetCrisisType().Slug(), Rule: sig.GetRule(), Weight: sig.GetWeight(),
			Fatalities: sig.GetFatalities()})
	}
}
