package earlywarning

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Signal formats. Each file format of conflict events the importer reads is
// one SignalFormat in a file of its own (format_acled.go, format_ucdp.go)
// that registers it. Every surface asks the registry, so none names a format:
// NewReader (and through it Import, Backtest, ClassifyFile and the CLI's
// exercises), the rules' `source` condition and the conditions only one
// format's events can meet, and the CLI's --format flags and their help. A
// name the registry does not know is refused with ErrUnknownFormat naming the
// allowed ones, never guessed.
//
// Adding a format (a partner's situation reports, GDELT, an ECOWARN export):
//
//  1. format_<name>.go: a type implementing SignalFormat, registered in the
//     file's init with registerFormat.
//  2. testdata/formats/<name>/sample.csv: rows the format accepts and rows it
//     refuses; record what it makes of them (sample.golden.json) with
//     `go test -run TestFormatSamplesMatchTheirGolden -update`, and read the diff.
//
// TestFormatRegistry then checks that the format detects and parses its own
// sample and that no other format detects or reads it, and
// FuzzImportAnyFormat fuzzes it from its sample. Its events are classified by the rules' generic
// conditions (source: <name>, text, actor, min_fatalities); a condition that
// reads a column only the new format has is a field of Condition (rules.go)
// that the format's Conditions method claims.

// Format names a signal file format: the value of the CLI's --format, of a
// rules condition's `source`, and the source of the signals the format reads
// (lower case).
type Format string

// Sentinel errors of file parsing.
var (
	// ErrUnknownFormat is returned for a format name the registry does not
	// know; the message names the allowed ones.
	ErrUnknownFormat = errors.New("unknown file format")
	// ErrBadHeader is returned for a file whose header is missing, unreadable
	// or lacks a column its format requires.
	ErrBadHeader = errors.New("bad header")
)

// SignalFormat is one file format of conflict events: how to recognise its
// header, how a row becomes a signal and the event the rules classify, and
// which of the rules' conditions read its columns.
type SignalFormat interface {
	// Name is the format's name (see Format).
	Name() Format
	// Doc says what the format is and which columns it reads, for help.
	Doc() string
	// Columns are the header columns the format requires (lower case); a
	// file lacking one is refused, naming each missing column.
	Columns() []string
	// Detect says whether a file with this header is of this format; no
	// format detects another's sample (TestFormatRegistry). Detection names
	// the format of a file given with the wrong --format; it never chooses a
	// format for a file given without one.
	Detect(h Header) bool
	// Parse makes one data row into a signal (source id, country, observed
	// time, fatalities, location, summary) and the event the rules classify
	// (the columns they read, and Text, what their text conditions search).
	// The Reader fills in the rest: the signal's source, crisis type, rule,
	// weight and rules version, and the event's Source and Fatalities. A row
	// that cannot be a signal returns an error saying which column is wrong
	// and why, with the signal's source id when it was read.
	Parse(row Row) (*demarchev1.Signal, Event, error)
	// Conditions names the conditions of a rules alternative that only this
	// format's events can meet (they read its columns), nil when none: such
	// an alternative must say `source: <name>`, and may not use another
	// format's.
	Conditions(c Condition) []string
}

// Header is a file's header row: its columns by name, lower case, spaces
// and a byte-order mark removed (the first of duplicate names counts).
type Header struct {
	col   map[string]int
	ncols int
}

func newHeader(names []string) Header {
	h := Header{col: make(map[string]int, len(names)), ncols: len(names)}
	for i, name := range names {
		name = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(name, "\ufeff")))
		if _, dup := h.col[name]; !dup {
			h.col[name] = i
		}
	}
	return h
}

// Has reports whether the header has every one of the columns.
func (h Header) Has(columns ...string) bool { return len(h.missing(columns)) == 0 }

func (h Header) missing(columns []string) []string {
	var out []string
	for _, c := range columns {
		if _, ok := h.col[c]; !ok {
			out = append(out, c)
		}
	}
	return out
}

// Row is one data row of a file, read by column name.
type Row struct {
	h   Header
	rec []string
}

// Get returns a column's value, spaces trimmed; "" when the file has no such
// column.
func (r Row) Get(column string) string {
	if i, ok := r.h.col[column]; ok && i < len(r.rec) {
		return strings.TrimSpace(r.rec[i])
	}
	return ""
}

// registry holds the formats by name; each format's file registers it.
var registry = map[Format]SignalFormat{}

var formatName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// registerFormat adds a format to the registry. It panics on a name that is
// not lower case (a format's name is also a signal source and a rules
// value) or that is already taken: both are programming errors, caught when
// the package loads.
func registerFormat(f SignalFormat) {
	name := f.Name()
	if !formatName.MatchString(string(name)) {
		panic(fmt.Sprintf("earlywarning: signal format name %q is not lower-case letters, digits and '-'", name))
	}
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("earlywarning: signal format %q registered twice", name))
	}
	registry[name] = f
}

// Formats lists the registered formats' names, sorted.
func Formats() []string {
	out := make([]string, 0, len(registry))
	for name := range registry {
		out = append(out, string(name))
	}
	sort.Strings(out)
	return out
}

// LookupFormat returns the registered format of that name (exactly; see
// ParseFormat for a name a person typed). It fails with ErrUnknownFormat
// naming the name given and the allowed ones.
func LookupFormat(name Format) (SignalFormat, error) {
	if f, ok := registry[name]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("%w %q (allowed: %s)", ErrUnknownFormat, name, strings.Join(Formats(), ", "))
}

// ParseFormat reads a format name as a person types it (any case, spaces
// around it): ErrUnknownFormat when no registered format has it.
func ParseFormat(name string) (Format, error) {
	if f, ok := registry[Format(strings.ToLower(strings.TrimSpace(name)))]; ok {
		return f.Name(), nil
	}
	return "", fmt.Errorf("%w %q (allowed: %s)", ErrUnknownFormat, name, strings.Join(Formats(), ", "))
}

// DetectFormats reads a file's header and returns every registered format
// that detects it, sorted: none, or one (only a header made of two formats'
// columns is detected as both). It fails with ErrBadHeader when the header
// cannot be read.
func DetectFormats(r io.Reader) ([]Format, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the file is empty", ErrBadHeader)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	return newHeader(header).detect(), nil
}

func (h Header) detect() []Format {
	var out []Format
	for _, name := range Formats() {
		if f := registry[Format(name)]; f.Detect(h) {
			out = append(out, f.Name())
		}
	}
	return out
}
