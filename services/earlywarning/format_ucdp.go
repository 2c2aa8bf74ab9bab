package earlywarning

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// FormatUCDP is the UCDP Georeferenced Event Dataset (GED) as CSV, one row
// per event.
const FormatUCDP Format = "ucdp"

func init() { registerFormat(ucdp{}) }

type ucdp struct{}

func (ucdp) Name() Format { return FormatUCDP }

func (ucdp) Doc() string {
	return "UCDP GED (CSV). Columns used: id, date_start, country, type_of_violence, side_a, side_b, best " +
		"(and source_headline, where_description, where_coordinates, adm_1 when present)."
}

func (ucdp) Columns() []string {
	return []string{"id", "date_start", "country", "type_of_violence", "side_a", "side_b", "best"}
}

func (f ucdp) Detect(h Header) bool { return h.Has(f.Columns()...) }

// violenceKinds are UCDP's types of violence.
var violenceKinds = map[string]string{"1": "state-based", "2": "non-state", "3": "one-sided"}

func (ucdp) Parse(row Row) (*demarchev1.Signal, Event, error) {
	sig := &demarchev1.Signal{SourceId: row.Get("id")}
	if sig.SourceId == "" {
		return sig, Event{}, errors.New("id is empty")
	}
	when, err := parseDate("date_start", row.Get("date_start"))
	if err != nil {
		return sig, Event{}, err
	}
	country := row.Get("country")
	code, ok := CountryCode(country, "")
	if !ok || !knownCountry(code) {
		return sig, Event{}, fmt.Errorf("country %q is not a known country", country)
	}
	if sig.Fatalities, err = parseCount("best", row.Get("best")); err != nil {
		return sig, Event{}, err
	}
	tov := row.Get("type_of_violence")
	kind, ok := violenceKinds[tov]
	if !ok {
		return sig, Event{}, fmt.Errorf("type_of_violence %q is not 1, 2 or 3", tov)
	}
	e := Event{TypeOfViolence: int(tov[0] - '0'), SideA: row.Get("side_a"), SideB: row.Get("side_b"),
		Headline: row.Get("source_headline"), Where: row.Get("where_description")}
	e.Text = []string{e.SideA, e.SideB, e.Headline, e.Where}
	sig.CountryCode = code
	sig.ObservedAt = timestamppb.New(when)
	sig.Location = strings.Join(nonEmpty(row.Get("where_coordinates"), row.Get("adm_1")), ", ")
	summary := fmt.Sprintf("%s violence: %s vs %s, %d killed (best estimate)", kind, e.SideA, e.SideB, sig.Fatalities)
	if sig.Location != "" {
		summary += " in " + sig.Location
	}
	if e.Headline != "" {
		summary += ": " + e.Headline
	}
	sig.Summary = truncate(summary, maxSummary)
	return sig, e, nil
}

// Conditions: the type of violence and the sides are UCDP's columns.
func (ucdp) Conditions(c Condition) []string {
	var used []string
	if len(c.TypeOfViolence) > 0 {
		used = append(used, "type_of_violence")
	}
	if c.SidesPrefix != "" {
		used = append(used, "sides_prefix")
	}
	return used
}
