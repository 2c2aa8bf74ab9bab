package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/demarche/demarche/services/earlywarning"
)

// formatFlag is a --format flag naming a signal file format. Its help, its
// check and the commands' synopses and help come from the registry of
// formats (earlywarning.Formats), so a new format needs no change here.
type formatFlag string

func (f *formatFlag) bind(fs *pflag.FlagSet) {
	fs.StringVar((*string)(f), "format", "", "file format: "+strings.Join(earlywarning.Formats(), ", ")+" (required)")
}

// get returns the format given (in any case), or an error naming the flag,
// the value given and the allowed ones. A format is never guessed: when none
// is given, the error says which format file's header is of, if any (file
// may be "").
func (f formatFlag) get(file string) (earlywarning.Format, error) {
	if strings.TrimSpace(string(f)) == "" {
		return "", fmt.Errorf("--format: is required (allowed: %s)%s", strings.Join(earlywarning.Formats(), ", "), detectedHint(file))
	}
	format, err := earlywarning.ParseFormat(string(f))
	if err != nil {
		return "", fmt.Errorf("--format: %w", err)
	}
	return format, nil
}

// detectedHint says which format a file's header is of ("" when the file
// cannot be read or no format detects it: the command reports the file
// itself later).
func detectedHint(file string) string {
	if file == "" {
		return ""
	}
	fh, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer fh.Close()
	found, err := earlywarning.DetectFormats(fh)
	if err != nil || len(found) != 1 {
		return ""
	}
	return fmt.Sprintf("; %s looks like %s (--format %s)", file, found[0], found[0])
}

// formatsSynopsis is "acled|ucdp", for a command's Use line.
func formatsSynopsis() string { return strings.Join(earlywarning.Formats(), "|") }

// formatsHelp documents each format and the columns it reads, for a
// command's long help.
func formatsHelp() string {
	var b strings.Builder
	b.WriteString("File formats (--format):")
	for _, name := range earlywarning.Formats() {
		f, err := earlywarning.LookupFormat(earlywarning.Format(name))
		if err != nil {
			continue // Formats lists only registered formats
		}
		b.WriteString("\n" + wrapIndent(name+": "+f.Doc(), "  ", "    ", 80))
	}
	return b.String()
}

// wrapIndent wraps text at width columns, the first line indented by first
// and the others by rest.
func wrapIndent(text, first, rest string, width int) string {
	var b strings.Builder
	line := first
	for i, w := range strings.Fields(text) {
		if i > 0 && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = rest + w
			continue
		}
		if i > 0 {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}
