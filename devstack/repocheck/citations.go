package repocheck

// Citations of the domain source, the Secretary-General's report
// "Preventive diplomacy: Delivering results" (docs/domain/): the code, the
// schemas, the playbooks and the docs cite it as ¶N "phrase", and a citation
// is right when paragraph N exists and contains the phrase.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// ReportPath is the committed copy of the report, relative to the repository root.
const ReportPath = "docs/domain/preventive-diplomacy-report.md"

// Citation is one ¶N "phrase" found in a file.
type Citation struct {
	File      string
	Line      int
	Paragraph int
	Phrase    string
}

func (c Citation) String() string {
	return fmt.Sprintf("%s:%d: ¶%d %q", c.File, c.Line, c.Paragraph, c.Phrase)
}

// citation is the one form a citation takes; quotes may be escaped (a Go or
// JSON string).
var citation = regexp.MustCompile(`¶(\d+) \\?"([^"\\]+)\\?"`)

// paragraphStart finds a numbered paragraph's opening: its number at the
// start of a line or after a sentence (the report's ¶42 runs on in ¶41's line).
var paragraphStart = regexp.MustCompile(`(?m)(?:^|[.!?"”] )(\d{1,3})\. `)

var footnoteMark = regexp.MustCompile(`<sup>[^<]*</sup>`)

// Paragraphs reads the report: each numbered paragraph's text by its number,
// footnotes left out, lines joined. Numbers must follow one another from 1,
// so a number inside a sentence ("Article 99. ") never starts a paragraph.
func Paragraphs(report string) (map[int]string, error) {
	var kept []string
	for _, line := range strings.Split(report, "\n") {
		if strings.HasPrefix(line, "<sup>") || strings.HasPrefix(line, "#") {
			continue // a footnote or a heading: not a paragraph's text
		}
		kept = append(kept, line)
	}
	// A footnote's mark in the text ("systems<sup>4</sup>") is no word of it.
	text := footnoteMark.ReplaceAllString(strings.Join(kept, "\n"), "")
	starts := map[int][2]int{} // paragraph -> [start of its number, start of its text]
	next, from := 1, 0
	for {
		loc := paragraphStart.FindAllStringSubmatchIndex(text[from:], -1)
		found := false
		for _, m := range loc {
			n, _ := strconv.Atoi(text[from+m[2] : from+m[3]]) // the regexp matched at most three digits
			if n == next {
				starts[n] = [2]int{from + m[2], from + m[1]}
				from += m[1]
				next++
				found = true
				break
			}
		}
		if !found {
			break
		}
	}
	if next == 1 {
		return nil, fmt.Errorf("report: no numbered paragraph found")
	}
	out := map[int]string{}
	for n := 1; n < next; n++ {
		end := len(text)
		if s, ok := starts[n+1]; ok {
			end = s[0]
		}
		out[n] = text[starts[n][1]:end]
	}
	return out, nil
}

// normal is text as citations are compared: lower case, Markdown escapes
// and emphasis and typographic quotes gone, whitespace (line breaks) one space.
func normal(s string) string {
	s = strings.NewReplacer(`\`, "", "*", "", "’", "'", "‘", "'", "“", `"`, "”", `"`).Replace(strings.ToLower(s))
	return strings.Join(strings.Fields(s), " ")
}

// Citations lists the citations of a text and every place where the report
// is cited in another form (a section sign, a paragraph sign with no phrase).
func Citations(file, text string) (cites []Citation, malformed []string) {
	for i, line := range strings.Split(text, "\n") {
		for _, m := range citation.FindAllStringSubmatch(line, -1) {
			n, _ := strconv.Atoi(m[1]) // the regexp matched digits only
			cites = append(cites, Citation{File: file, Line: i + 1, Paragraph: n, Phrase: m[2]})
		}
		rest := citation.ReplaceAllString(line, "")
		if strings.ContainsAny(rest, "§¶") {
			malformed = append(malformed, fmt.Sprintf(`%s:%d: %q cites the report in another form than ¶N "phrase" (docs/domain/README.md)`, file, i+1, strings.TrimSpace(line)))
		}
	}
	return cites, malformed
}

// CitationProblems checks the citations in the files (paths relative to
// root) against the report's paragraphs: each paragraph exists and contains
// its phrase, and no file cites the report in another form. It returns the
// citations it checked too, so a caller can tell the check ran on something.
func CitationProblems(root string, files []string, paragraphs map[int]string) (checked []Citation, problems []string, err error) {
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, nil, err
		}
		cites, malformed := Citations(f, string(b))
		problems = append(problems, malformed...)
		for _, c := range cites {
			p, ok := paragraphs[c.Paragraph]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s: the report has no paragraph %d (it has 1 to %d)", c, c.Paragraph, len(paragraphs)))
			case !strings.Contains(normal(p), normal(c.Phrase)):
				problems = append(problems, fmt.Sprintf("%s: paragraph %d does not say %q", c, c.Paragraph, c.Phrase))
			}
		}
		checked = append(checked, cites...)
	}
	return checked, problems, nil
}
