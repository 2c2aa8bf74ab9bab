package earlywarning

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Format is a conflict-event file format the importer reads.
type Format string

// Supported formats.
const (
	FormatACLED Format = "acled" // ACLED export (CSV)
	FormatUCDP  Format = "ucdp"  // UCDP GED (CSV)
)

// Formats lists the supported formats.
func Formats() []string { return []string{string(FormatACLED), string(FormatUCDP)} }

// Sentinel errors of file parsing.
var (
	ErrUnknownFormat = errors.New("unknown file format")
	ErrBadHeader     = errors.New("bad header")
)

// Columns each format requires; any other column is read when present and
// ignored when unknown.
var (
	acledRequired = []string{"event_id_cnty", "event_date", "event_type", "country", "fatalities"}
	ucdpRequired  = []string{"id", "date_start", "country", "type_of_violence", "side_a", "side_b", "best"}
)

// RowError is a rejected row: its line in the file (where the record starts;
// a quoted field can span lines) and why.
type RowError struct {
	Line     int
	SourceID string
	Reason   string
}

func (e *RowError) Error() string {
	if e.SourceID != "" {
		return fmt.Sprintf("line %d (%s): %s", e.Line, e.SourceID, e.Reason)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// Reader reads signals from a conflict-event CSV file, one row at a time.
type Reader struct {
	rules  *Rules
	format Format
	csv    *csv.Reader
	col    map[string]int
	ncols  int
}

// NewReader reads the header of a file. It fails when the format is unknown,
// the file is empty, or a required column is missing (naming each one).
func NewReader(r io.Reader, format Format) (*Reader, error) {
	var required []string
	switch format {
	case FormatACLED:
		required = acledRequired
	case FormatUCDP:
		required = ucdpRequired
	default:
		return nil, fmt.Errorf("%w %q (allowed: %s)", ErrUnknownFormat, format, strings.Join(Formats(), ", "))
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked per row, so one short row rejects only itself
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the file is empty (want a %s header line)", ErrBadHeader, format)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := col[h]; !dup {
			col[h] = i
		}
	}
	var missing []string
	for _, name := range required {
		if _, ok := col[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: not a %s file: missing column(s) %s (required: %s)", ErrBadHeader, format,
			strings.Join(missing, ", "), strings.Join(required, ", "))
	}
	return &Reader{rules: DefaultRules(), format: format, csv: cr, col: col, ncols: len(header)}, nil
}

// WithRules classifies and weighs rows with rules instead of the default ones.
func (r *Reader) WithRules(rules *Rules) *Reader {
	if rules != nil {
		r.rules = rules
	}
	return r
}

// Rules are the rules the reader classifies with.
func (r *Reader) Rules() *Rules { return r.rules }

// Next returns the next row's signal and its line. A row that cannot become a
// signal returns a *RowError (keep reading); the end of the file returns io.EOF.
func (r *Reader) Next() (*demarchev1.Signal, int, error) {
	rec, err := r.csv.Read()
	if err == io.EOF {
		return nil, 0, io.EOF
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, pe.StartLine, &RowError{Line: pe.StartLine, Reason: "malformed CSV: " + pe.Err.Error()}
		}
		return nil, 0, fmt.Errorf("read %s file: %w", r.format, err)
	}
	line, _ := r.csv.FieldPos(0)
	if len(rec) != r.ncols {
		return nil, line, &RowError{Line: line, Reason: fmt.Sprintf("has %d fields, the header has %d", len(rec), r.ncols)}
	}
	var sig *demarchev1.Signal
	switch r.format {
	case FormatACLED:
		sig, err = r.acled(rec)
	default:
		sig, err = r.ucdp(rec)
	}
	if err != nil {
		return nil, line, &RowError{Line: line, SourceID: sig.GetSourceId(), Reason: err.Error()}
	}
	if err := sig.Validate(); err != nil {
		return nil, line, &RowError{Line: line, SourceID: sig.GetSourceId(), Reason: err.Error()}
	}
	return sig, line, nil
}

func (r *Reader) get(rec []string, name string) string {
	if i, ok := r.col[name]; ok {
		return strings.TrimSpace(rec[i])
	}
	return ""
}

// Date layouts seen in ACLED and UCDP exports.
var dateLayouts = []string{"2006-01-02", "2 January 2006", "02 January 2006", "2006-01-02 15:04:05", "2006-01-02 15:04:05.000", "2006-01-02T15:04:05Z07:00"}

func parseDate(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, fmt.Errorf("%s is empty", field)
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s %q is not a date (want 2023-02-16 or 16 February 2023)", field, v)
}

func parseCount(field, v string) (int32, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q is not a non-negative whole number", field, v)
	}
	return int32(n), nil
}

const maxSummary = 1000

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func (r *Reader) acled(rec []string) (*demarchev1.Signal, error) {
	sig := &demarchev1.Signal{Source: string(FormatACLED), SourceId: r.get(rec, "event_id_cnty")}
	if sig.SourceId == "" {
		return sig, errors.New("event_id_cnty is empty")
	}
	when, err := parseDate("event_date", r.get(rec, "event_date"))
	if err != nil {
		return sig, err
	}
	country, iso := r.get(rec, "country"), r.get(rec, "iso")
	code, ok := CountryCode(country, iso)
	if !ok || !knownCountry(code) {
		return sig, fmt.Errorf("country %q (iso %q) is not a known country", country, iso)
	}
	if sig.Fatalities, err = parseCount("fatalities", r.get(rec, "fatalities")); err != nil {
		return sig, err
	}
	e := Event{
		Source:    FormatACLED,
		EventType: r.get(rec, "event_type"), SubEventType: r.get(rec, "sub_event_type"),
		Actor1: r.get(rec, "actor1"), Actor2: r.get(rec, "actor2"), Interaction: r.get(rec, "interaction"), Notes: r.get(rec, "notes"),
		CivilianTargeting: strings.Contains(strings.ToLower(r.get(rec, "civilian_targeting")), "civilian"),
		Fatalities:        sig.Fatalities,
	}
	sig.CountryCode = code
	sig.CrisisType, sig.Rule, sig.Weight = r.rules.Classify(e)
	sig.RulesVersion = r.rules.Version
	sig.ObservedAt = timestamppb.New(when)
	sig.Location = strings.Trim(strings.Join(nonEmpty(r.get(rec, "location"), r.get(rec, "admin1")), ", "), ", ")
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
	return sig, nil
}

func (r *Reader) ucdp(rec []string) (*demarchev1.Signal, error) {
	sig := &demarchev1.Signal{Source: string(FormatUCDP), SourceId: r.get(rec, "id")}
	if sig.SourceId == "" {
		return sig, errors.New("id is empty")
	}
	when, err := parseDate("date_start", r.get(rec, "date_start"))
	if err != nil {
		return sig, err
	}
	country := r.get(rec, "country")
	code, ok := CountryCode(country, "")
	if !ok || !knownCountry(code) {
		return sig, fmt.Errorf("country %q is not a known country", country)
	}
	if sig.Fatalities, err = parseCount("best", r.get(rec, "best")); err != nil {
		return sig, err
	}
	tov := r.get(rec, "type_of_violence")
	if tov != "1" && tov != "2" && tov != "3" {
		return sig, fmt.Errorf("type_of_violence %q is not 1, 2 or 3", tov)
	}
	e := Event{Source: FormatUCDP, TypeOfViolence: int(tov[0] - '0'), SideA: r.get(rec, "side_a"), SideB: r.get(rec, "side_b"),
		Headline: r.get(rec, "source_headline"), Where: r.get(rec, "where_description"), Fatalities: sig.Fatalities}
	sig.CountryCode = code
	sig.CrisisType, sig.Rule, sig.Weight = r.rules.Classify(e)
	sig.RulesVersion = r.rules.Version
	sig.ObservedAt = timestamppb.New(when)
	sig.Location = strings.Join(nonEmpty(r.get(rec, "where_coordinates"), r.get(rec, "adm_1")), ", ")
	kind := map[string]string{"1": "state-based", "2": "non-state", "3": "one-sided"}[tov]
	summary := fmt.Sprintf("%s violence: %s vs %s, %d killed (best estimate)", kind, e.SideA, e.SideB, sig.Fatalities)
	if sig.Location != "" {
		summary += " in " + sig.Location
	}
	if e.Headline != "" {
		summary += ": " + e.Headline
	}
	sig.Summary = truncate(summary, maxSummary)
	return sig, nil
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
