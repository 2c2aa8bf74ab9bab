package earlywarning

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// FormatACLED is an ACLED export (CSV), one row per conflict event.
const FormatACLED Format = "acled"

func init() { registerFormat(acled{}) }

type acled struct{}

func (acled) Name() Format { return FormatACLED }

func (acled) Doc() string {
	return "ACLED export (CSV). Columns used: event_id_cnty, event_date (2023-02-16 or 16 February 2023), " +
		"event_type, sub_event_type, actor1, actor2, interaction, civilian_targeting, iso, country, admin1, " +
		"location, notes, fatalities."
}

func (acled) Columns() []string {
	return []string{"event_id_cnty", "event_date", "event_type", "country", "fatalities"}
}

func (f acled) Detect(h Header) bool { return h.Has(f.Columns()...) }

func (acled) Parse(row Row) (*demarchev1.Signal, Event, error) {
	sig := &demarchev1.Signal{SourceId: row.Get("event_id_cnty")}
	if sig.SourceId == "" {
		return sig, Event{}, errors.New("event_id_cnty is empty")
	}
	when, err := parseDate("event_date", row.Get("event_date"))
	if err != nil {
		return sig, Event{}, err
	}
	country, iso := row.Get("country"), row.Get("iso")
	code, ok := CountryCode(country, iso)
	if !ok || !knownCountry(code) {
		return sig, Event{}, fmt.Errorf("country %q (iso %q) is not a known country", country, iso)
	}
	if sig.Fatalities, err = parseCount("fatalities", row.Get("fatalities")); err != nil {
		return sig, Event{}, err
	}
	e := Event{
		EventType: row.Get("event_type"), SubEventType: row.Get("sub_event_type"),
		Actor1: row.Get("actor1"), Actor2: row.Get("actor2"), Interaction: row.Get("interaction"), Notes: row.Get("notes"),
		CivilianTargeting: strings.Contains(strings.ToLower(row.Get("civilian_targeting")), "civilian"),
	}
	e.Text = []string{e.Notes, e.EventType, e.SubEventType, e.Actor1, e.Actor2}
	sig.CountryCode = code
	sig.ObservedAt = timestamppb.New(when)
	sig.Location = strings.Trim(strings.Join(nonEmpty(row.Get("location"), row.Get("admin1")), ", "), ", ")
	what := e.EventType
	if e.SubEventType != "" {
		what += " / " + e.SubEventType
	}
	summary := what
	if sig.Location != "" {
		summary += " in " + sig.Location
	}
	if e.Notes != "" {
		summary += ": " + e.Notes
	}
	sig.Summary = truncate(summary, maxSummary)
	return sig, e, nil
}

// Conditions: event types, interaction codes and civilian targeting are
// ACLED's columns.
func (acled) Conditions(c Condition) []string {
	var used []string
	add := func(set bool, name string) {
		if set {
			used = append(used, name)
		}
	}
	add(len(c.EventType) > 0, "event_type")
	add(len(c.SubEventType) > 0, "sub_event_type")
	add(len(c.Interaction) > 0, "interaction")
	add(len(c.InteractionContains) > 0, "interaction_contains")
	add(c.InteractionNonState, "interaction_non_state")
	add(c.CivilianTargeting != nil, "civilian_targeting")
	return used
}
