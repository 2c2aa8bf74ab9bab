package repocheck

import (
	"os"
	"strings"
	"testing"
)

func reportParagraphs(t *testing.T) map[int]string {
	t.Helper()
	b, err := os.ReadFile("../../" + ReportPath)
	if err != nil {
		t.Fatalf("the report's copy: %v", err)
	}
	p, err := Paragraphs(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The report reads as printed: 72 numbered paragraphs, each starting where
// the printed one does (¶42 runs on in ¶41's line; ¶14 continues after a
// footnote), footnotes left out.
func TestReportParagraphs(t *testing.T) {
	p := reportParagraphs(t)
	if len(p) != 72 {
		t.Fatalf("%d paragraphs, want 72", len(p))
	}
	for n, want := range map[int]string{
		1:  "Preventive diplomacy has been an enduring idea",
		32: "Member States faced with situations of politically sensitive crimes",
		41: "While preventive diplomacy has grown",
		42: "In situations of internal crisis in particular",
		47: "No matter how accurate the early warning",
		72: "With increasing knowledge, stronger partnerships",
	} {
		if !strings.HasPrefix(p[n], want) {
			t.Errorf("¶%d begins %.60q, want %q", n, p[n], want)
		}
	}
	if strings.Contains(p[41], "internationalization") {
		t.Error("¶41 runs into ¶42")
	}
	if !strings.Contains(normal(p[14]), "preventing the escalation of conflict or a slide back into war") {
		t.Error("¶14 lost its text after the footnote")
	}
	if strings.Contains(p[6], "joint mediation partnership") || strings.Contains(p[6], "<sup>") {
		t.Error("a footnote was read as a paragraph's text")
	}
}

// Every citation of the report in the Go code, the schemas, the playbooks
// and the docs names a paragraph that exists and says the cited phrase; none
// cites it in another form (the old section numbers did not match the report).
func TestCitationsMatchTheReport(t *testing.T) {
	p := reportParagraphs(t)
	var files []string
	for _, ext := range []string{".go", ".proto", ".yaml", ".md"} {
		for _, f := range trackedFiles(t, ext, "workflows/*/*"+ext, "workflows/playbook/files/*"+ext, "docs/*"+ext, "proto/demarche/v1/*"+ext, "services/earlywarning/rules/*"+ext) {
			switch {
			case f == ReportPath, strings.Contains(f, "/testdata/"), strings.HasPrefix(f, "devstack/repocheck/"):
				continue // the report itself, fuzz corpora, this package's planted citations
			}
			files = append(files, f)
		}
	}
	// The field presences registry cites the report in each entry.
	for _, f := range trackedFiles(t, ".json", "pkg/presences/*.json") {
		if strings.HasPrefix(f, "pkg/presences/") {
			files = append(files, f)
		}
	}
	checked, problems, err := CitationProblems("../..", files, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Error(pr)
	}
	// The stage files, the playbooks and the docs cite the report: a check
	// that found nothing to check would pass for the wrong reason.
	citing := map[string]bool{}
	for _, c := range checked {
		citing[c.File] = true
	}
	for _, must := range []string{
		"workflows/crisis/warning.go", "workflows/crisis/goodoffices.go", "workflows/crisis/factfinding.go",
		"workflows/crisis/envoy.go", "workflows/crisis/funding.go", "workflows/crisis/followup.go",
		"workflows/crisis/closure.go", "workflows/crisis/controls.go",
		"workflows/playbook/files/general.yaml", "workflows/playbook/files/unconstitutional-change.yaml",
		"docs/architecture.md", "workflows/crisis/field.go", "pkg/presences/presences.json",
	} {
		if !citing[must] {
			t.Errorf("%s cites no paragraph of the report", must)
		}
	}
}

// Planted citations are judged: a right one passes; a wrong phrase, a
// paragraph the report lacks, a section sign and a bare paragraph sign fail.
func TestCitationProblemsCatchPlantedCitations(t *testing.T) {
	p := reportParagraphs(t)
	root := t.TempDir()
	text := `// Fact-finding (¶32 "joint factfinding inquiry", ¶47 "first warning signs of a problem"):
// right, the second across a line break of the report (¶47 "the deployment of a fact-finding mission").
// ¶17 "within 48 hours": wrong phrase.
// ¶73 "anything": no such paragraph.
// Good offices (report §§28-33): the old form.
// Funding (¶21): no phrase.
msg := "¶55 \"over 40 working visits\"" // escaped quotes in a string
`
	if err := os.WriteFile(root+"/x.go", []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	checked, problems, err := CitationProblems(root, []string{"x.go"}, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(checked) != 6 {
		t.Errorf("checked %v, want 6 citations", checked)
	}
	want := []string{`x.go:3: ¶17 "within 48 hours"`, `x.go:4: ¶73`, `x.go:5:`, `x.go:6:`}
	if len(problems) != len(want) {
		t.Fatalf("problems %q, want %d", problems, len(want))
	}
	for _, w := range want {
		found := false
		for _, pr := range problems {
			found = found || strings.HasPrefix(pr, w)
		}
		if !found {
			t.Errorf("no problem starting %q in %q", w, problems)
		}
	}
}
