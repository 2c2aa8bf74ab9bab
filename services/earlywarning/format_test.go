package earlywarning_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/demarche/demarche/services/earlywarning"
)

func formatSample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "formats", name, "sample.csv"))
	if err != nil {
		t.Fatalf("format %s has no sample (testdata/formats/%s/sample.csv): %v", name, name, err)
	}
	return data
}

// TestFormatRegistry: every registered format describes itself, detects its
// own sample and parses it into signals of its source; no other format
// detects or reads that sample, and reading it as another format names the
// format it is; an unknown format is refused everywhere a format is named,
// with the name given and the allowed ones, never guessed.
func TestFormatRegistry(t *testing.T) {
	t.Parallel()
	names := earlywarning.Formats()
	for _, want := range []string{"acled", "ucdp"} {
		if !slices.Contains(names, want) {
			t.Fatalf("Formats() = %v, lacks %s", names, want)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("Formats() = %v, not sorted", names)
	}
	allowed := "(allowed: " + strings.Join(names, ", ") + ")"

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, err := earlywarning.LookupFormat(earlywarning.Format(name))
			if err != nil || string(f.Name()) != name || f.Doc() == "" || len(f.Columns()) == 0 {
				t.Fatalf("LookupFormat(%s) = %v, %v: want the format, named %s, with a doc and required columns", name, f, err, name)
			}
			if got, err := earlywarning.ParseFormat(" " + strings.ToUpper(name) + " "); err != nil || string(got) != name {
				t.Errorf("ParseFormat(%q) = %q, %v", strings.ToUpper(name), got, err)
			}
			data := formatSample(t, name)
			if got, err := earlywarning.DetectFormats(bytes.NewReader(data)); err != nil || len(got) != 1 || string(got[0]) != name {
				t.Errorf("DetectFormats(%s sample) = %v, %v: want exactly [%s]", name, got, err, name)
			}
			rd, err := earlywarning.NewReader(bytes.NewReader(data), f.Name())
			if err != nil {
				t.Fatal(err)
			}
			signals, refused := 0, 0
			for {
				sig, _, err := rd.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				var re *earlywarning.RowError
				if errors.As(err, &re) {
					refused++
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				signals++
				if sig.GetSource() != name || sig.GetRulesVersion() == "" || sig.GetWeight() <= 0 {
					t.Errorf("signal %s: source %q, rules %q, weight %g: want source %s, classified", sig.GetSourceId(), sig.GetSource(), sig.GetRulesVersion(), sig.GetWeight(), name)
				}
			}
			if signals == 0 || refused == 0 {
				t.Errorf("the %s sample made %d signals and %d refusals: it must show both", name, signals, refused)
			}
			// The sample read as any other format: refused, naming what is
			// missing and the format the file is of.
			for _, other := range names {
				if other == name {
					continue
				}
				_, err := earlywarning.NewReader(bytes.NewReader(data), earlywarning.Format(other))
				if !errors.Is(err, earlywarning.ErrBadHeader) || !strings.Contains(err.Error(), "not a "+other+" file: missing column(s)") ||
					!strings.Contains(err.Error(), "(--format "+name+")") {
					t.Errorf("the %s sample read as %s: %v, want ErrBadHeader naming the missing columns and --format %s", name, other, err, name)
				}
			}
		})
	}

	// Unknown formats: refused wherever a format is named.
	for _, unknown := range []string{"gdelt", "", "ACLED ", "acled,ucdp", "ecowarn"} {
		if _, err := earlywarning.LookupFormat(earlywarning.Format(unknown)); !errors.Is(err, earlywarning.ErrUnknownFormat) ||
			!strings.Contains(err.Error(), `"`+unknown+`" `+allowed) {
			t.Errorf("LookupFormat(%q): %v, want ErrUnknownFormat naming it and %s", unknown, err, allowed)
		}
		_, err := earlywarning.NewReader(strings.NewReader(acledHeader), earlywarning.Format(unknown))
		if !errors.Is(err, earlywarning.ErrUnknownFormat) || !strings.Contains(err.Error(), allowed) {
			t.Errorf("NewReader(%q): %v, want ErrUnknownFormat naming %s, not a guess from the header", unknown, err, allowed)
		}
	}
	for _, unknown := range []string{"gdelt", "", "acled,ucdp"} {
		if got, err := earlywarning.ParseFormat(unknown); !errors.Is(err, earlywarning.ErrUnknownFormat) || !strings.Contains(err.Error(), `"`+unknown+`" `+allowed) {
			t.Errorf("ParseFormat(%q) = %q, %v, want ErrUnknownFormat naming it and %s", unknown, got, err, allowed)
		}
	}
	if _, err := earlywarning.Backtest(strings.NewReader(acledHeader), "gdelt", earlywarning.BacktestOptions{}); !errors.Is(err, earlywarning.ErrUnknownFormat) {
		t.Errorf("Backtest with gdelt: %v, want ErrUnknownFormat", err)
	}
	if _, err := earlywarning.ClassifyFile(strings.NewReader(acledHeader), "gdelt", nil); !errors.Is(err, earlywarning.ErrUnknownFormat) {
		t.Errorf("ClassifyFile with gdelt: %v, want ErrUnknownFormat", err)
	}
	// A header that no format has is detected as none.
	if got, err := earlywarning.DetectFormats(strings.NewReader("date,place,what\n2023-02-16,Conakry,coup\n")); err != nil || len(got) != 0 {
		t.Errorf("DetectFormats(a header of no format) = %v, %v, want none", got, err)
	}
	if _, err := earlywarning.DetectFormats(strings.NewReader("")); !errors.Is(err, earlywarning.ErrBadHeader) {
		t.Errorf("DetectFormats(empty) = %v, want ErrBadHeader", err)
	}
}

// TestRulesSourcesComeFromTheRegistry: a rules condition's source must be a
// registered format, the error lists them; a condition on one format's
// columns must name it and may not mix in another's.
func TestRulesSourcesComeFromTheRegistry(t *testing.T) {
	t.Parallel()
	allowed := "(allowed: " + strings.Join(earlywarning.Formats(), ", ") + ")"
	base := defaultRulesText(t)
	for _, c := range []struct {
		name, from, to, field, reason string
	}{
		{"unknown source", "      - source: acled\n        interaction_non_state: true", "      - source: gdelt\n        text: [clash]",
			"rules[4].when[0].source", `"gdelt" is not a source ` + allowed},
		{"ACLED condition under ucdp", "      - source: acled\n        interaction_non_state: true", "      - source: ucdp\n        interaction_non_state: true",
			"rules[4].when[0].source", "must be acled: the alternative uses acled conditions (interaction_non_state)"},
		{"two formats' conditions", "      - source: acled\n        interaction_non_state: true", "      - source: acled\n        interaction_non_state: true\n        type_of_violence: [2]",
			"rules[4].when[0]", "mixes acled conditions (interaction_non_state) with ucdp conditions (type_of_violence)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(base, c.from) {
				t.Fatalf("%q not in the default rules", c.from)
			}
			_, err := earlywarning.ParseRules("bad.yaml", []byte(strings.Replace(base, c.from, c.to, 1)))
			var re *earlywarning.RulesError
			if !errors.As(err, &re) {
				t.Fatalf("want a RulesError, got %v", err)
			}
			for _, p := range re.Problems {
				if p.Field == c.field && strings.Contains(p.Reason, c.reason) {
					return
				}
			}
			t.Fatalf("no problem %s: %s in %v", c.field, c.reason, err)
		})
	}
}
