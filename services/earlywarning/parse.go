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

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
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

// Reader reads signals from a conflict-event CSV file of a registered
// format (format.go), one row at a time.
type Reader struct {
	rules  *Rules
	format SignalFormat
	csv    *csv.Reader
	header Header
}

// NewReader reads the header of a file. It fails when the format is unknown
// (ErrUnknownFormat), the file is empty, or a required column is missing
// (ErrBadHeader, naming each one, and the format the header is of when
// another format detects it).
func NewReader(r io.Reader, format Format) (*Reader, error) {
	f, err := LookupFormat(format)
	if err != nil {
		return nil, err
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked per row, so one short row rejects only itself
	cr.ReuseRecord = true
	names, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the file is empty (want a %s header line)", ErrBadHeader, format)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	h := newHeader(names)
	if missing := h.missing(f.Columns()); len(missing) > 0 {
		var hint string
		if others := h.detect(); len(others) > 0 {
			hint = fmt.Sprintf("; it looks like %s (--format %s)", others[0], others[0])
		}
		return nil, fmt.Errorf("%w: not a %s file: missing column(s) %s (required: %s)%s", ErrBadHeader, format,
			strings.Join(missing, ", "), strings.Join(f.Columns(), ", "), hint)
	}
	return &Reader{rules: DefaultRules(), format: f, csv: cr, header: h}, nil
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
		return nil, 0, fmt.Errorf("read %s file: %w", r.format.Name(), err)
	}
	line, _ := r.csv.FieldPos(0)
	if len(rec) != r.header.ncols {
		return nil, line, &RowError{Line: line, Reason: fmt.Sprintf("has %d fields, the header has %d", len(rec), r.header.ncols)}
	}
	sig, e, err := r.format.Parse(Row{h: r.header, rec: rec})
	if err != nil {
		return nil, line, &RowError{Line: line, SourceID: sig.GetSourceId(), Reason: err.Error()}
	}
	// What every format's signal has alike: its source is the format, and
	// the rules classify and weigh its event.
	sig.Source = string(r.format.Name())
	e.Source, e.Fatalities = r.format.Name(), sig.GetFatalities()
	sig.CrisisType, sig.Rule, sig.Weight = r.rules.Classify(e)
	sig.RulesVersion = r.rules.Version
	if err := sig.Validate(); err != nil {
		return nil, line, &RowError{Line: line, SourceID: sig.GetSourceId(), Reason: err.Error()}
	}
	return sig, line, nil
}

// Helpers the formats share.

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

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
