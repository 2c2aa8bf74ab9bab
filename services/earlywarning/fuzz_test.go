package earlywarning_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/demarche/demarche/services/earlywarning"
)

// fuzzImport reads a whole file of a format the way Import does. Whatever the
// file holds, the header is refused with ErrBadHeader or each row is either a
// valid signal of that source or a *RowError naming its line; the reader
// always reaches the end, and never panics.
func fuzzImport(t *testing.T, format earlywarning.Format, data []byte) {
	r, err := earlywarning.NewReader(bytes.NewReader(data), format)
	if err != nil {
		if !errors.Is(err, earlywarning.ErrBadHeader) {
			t.Fatalf("header refused without ErrBadHeader: %v", err)
		}
		return
	}
	// A row takes at least one byte, plus the end: more reads than that is a loop.
	for range len(data) + 2 {
		sig, line, err := r.Next()
		if err == io.EOF {
			return
		}
		var re *earlywarning.RowError
		if errors.As(err, &re) {
			if re.Line < 1 || re.Reason == "" {
				t.Fatalf("row error without a line or a reason: %+v", re)
			}
			continue
		}
		if err != nil {
			t.Fatalf("a row failed as something other than a RowError: %v", err)
		}
		if line < 2 {
			t.Fatalf("a data row on line %d, at or before the header", line)
		}
		if err := sig.Validate(); err != nil {
			t.Fatalf("an accepted row is not a valid signal: %v", err)
		}
		if sig.GetSource() != string(format) || sig.GetSourceId() == "" || sig.GetCountryCode() == "" {
			t.Fatalf("accepted signal lacks source, id or country: %v", sig)
		}
		if n := utf8.RuneCountInString(sig.GetSummary()); n > 1000 {
			t.Fatalf("summary of %d runes, want at most 1000", n)
		}
	}
	t.Fatalf("the reader did not reach the end of a %d-byte file", len(data))
}

// FuzzImportAnyFormat runs every registered format's reader over arbitrary
// files, seeded with each format's sample (testdata/formats/<format>), so a
// new format is fuzzed without a target of its own. A mutated format name is
// refused with ErrUnknownFormat, never read as a format it resembles.
func FuzzImportAnyFormat(f *testing.F) {
	for _, name := range earlywarning.Formats() {
		f.Add(name, formatSample(f, name))
	}
	f.Add("gdelt", formatSample(f, "acled"))
	f.Fuzz(func(t *testing.T, format string, data []byte) {
		if _, err := earlywarning.LookupFormat(earlywarning.Format(format)); err != nil {
			if _, err := earlywarning.NewReader(bytes.NewReader(data), earlywarning.Format(format)); !errors.Is(err, earlywarning.ErrUnknownFormat) {
				t.Fatalf("format %q: %v, want ErrUnknownFormat", format, err)
			}
			return
		}
		fuzzImport(t, earlywarning.Format(format), data)
	})
}

// FuzzImportACLED runs the ACLED reader over arbitrary files (corpus in
// testdata/fuzz/FuzzImportACLED, run by make test), seeded also with the
// format's sample.
func FuzzImportACLED(f *testing.F) {
	f.Add(formatSample(f, string(earlywarning.FormatACLED)))
	f.Add([]byte(acledFile()))
	f.Add([]byte(acledHeader))
	f.Add([]byte(""))
	f.Add([]byte("\ufeffevent_id_cnty,event_date,event_type,country,fatalities\nX1,2023-02-16,Riots,Guinea,-1\nX2,\"16 February 2023\",Protests,Mali,3\n\"unterminated"))
	f.Add([]byte("event_id_cnty,event_date,event_type,country,fatalities,notes\nX3,2023-02-16T10:00:00+14:00,Battles,Guinea,2147483648,\"\xff\xfe\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzImport(t, earlywarning.FormatACLED, data) })
}

// FuzzImportUCDP runs the UCDP GED reader over arbitrary files (corpus in
// testdata/fuzz/FuzzImportUCDP, run by make test), seeded also with the
// format's sample.
func FuzzImportUCDP(f *testing.F) {
	f.Add(formatSample(f, string(earlywarning.FormatUCDP)))
	f.Add([]byte(ucdpHeader + ucdpRow("244657", "1", "Government of Somalia", "Al-Shabaab", "Attack, Mogadishu", "Somalia", "2017-07-01", "5") +
		ucdpRow("244658", "4", "A", "B", "", "Narnia", "2017-07-01", "x") + "3,short\n"))
	f.Add([]byte("id,date_start,country,type_of_violence,side_a,side_b,best\n,2017-07-01 00:00:00.000,Mali,3,x,y,\n9,01 July 2017,Mali,3,,,99999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzImport(t, earlywarning.FormatUCDP, data) })
}
