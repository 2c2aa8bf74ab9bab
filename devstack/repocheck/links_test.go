package repocheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// trackedFiles lists the files git tracks or would track (new files not yet
// committed included) whose names end in suffix, or, outside a git
// checkout, those the globs find.
func trackedFiles(t *testing.T, suffix string, globs ...string) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", "../..", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	var files []string
	if err == nil {
		for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
			if strings.HasSuffix(f, suffix) && !strings.Contains(f, "node_modules/") {
				files = append(files, f)
			}
		}
		return files
	}
	for _, g := range globs {
		m, err := filepath.Glob(filepath.Join("../..", g))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			rel, _ := filepath.Rel("../..", f)
			files = append(files, filepath.ToSlash(rel))
		}
	}
	return files
}

// Every relative link of the repository's Markdown (README.md, docs/*.md
// and the others) points at a file that exists and, with an anchor, at a
// heading of it: a moved section or a renamed heading fails here, not in a
// reader's browser.
func TestDocLinksResolve(t *testing.T) {
	files := trackedFiles(t, ".md", "README.md", "docs/*.md", "deploy/README.md")
	for _, must := range []string{"README.md", "docs/architecture.md", "docs/contributing.md"} {
		if !slices.Contains(files, must) {
			t.Fatalf("%s is not among the checked files %v", must, files)
		}
	}
	broken, err := BrokenLinks("../..", files)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range broken {
		t.Error(b)
	}
}

// The Go code (CLI help texts, comments) names only documents that exist.
func TestDocPathsInCodeExist(t *testing.T) {
	var files []string
	for _, f := range trackedFiles(t, ".go") {
		if !strings.HasPrefix(f, "devstack/repocheck/") || !strings.HasSuffix(f, "_test.go") {
			files = append(files, f) // this package's tests name planted documents
		}
	}
	if len(files) < 100 {
		t.Skipf("%d Go files: not a git checkout", len(files))
	}
	missing, err := MissingDocs("../..", files)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range missing {
		t.Error(m)
	}
}

// README.md stays a door: what Démarche is, two commands, what you see,
// where to go next. A manual belongs under docs/.
func TestReadmeIsADoor(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > MaxReadmeLines {
		t.Errorf("README.md has %d lines, more than %d: move what is not the quick start under docs/ and link it", n, MaxReadmeLines)
	}
	for _, want := range []string{"make run", "make test", "docs/architecture.md", "docs/contributing.md"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("README.md does not mention %s", want)
		}
	}
}

// Planted breakage is caught: a missing file, a missing anchor in another
// file and in the same file, a link leaving the repository; links in code
// blocks and to other sites, good anchors (accents, punctuation, repeated
// headings) and folders are not reported.
func TestBrokenLinksCatchPlantedLinks(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/guide.md", "# Guide\n\n## Changes made outside Démarche\n\n## Console sign-in (OpenID Connect)\n\n## Notes\n\n## Notes\n\n<a name=\"custom\"></a>\n")
	write("examples/sub/main.go", "package main\n")
	write("README.md", strings.Join([]string{
		"# Door",
		"[ok](docs/guide.md) [ok](docs/guide.md#changes-made-outside-démarche) [ok](docs/guide.md#console-sign-in-openid-connect)",
		"[ok](docs/guide.md#notes-1) [ok](docs/guide.md#custom) [ok](examples/sub) [ok](#door) [ok](https://example.org/x.md)",
		"```",
		"[not a link](docs/nowhere.md)",
		"```",
		"`[code span](docs/nowhere.md)`",
		"[gone](docs/gone.md)",
		"[no anchor](docs/guide.md#nothing-here) [same file](#nowhere)",
		"[outside](../elsewhere.md)",
		"[ref]: docs/refgone.md",
	}, "\n"))
	got, err := BrokenLinks(root, []string{"README.md", "docs/guide.md"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"docs/gone.md does not exist", "has no heading with anchor #nothing-here", "has no heading with anchor #nowhere", "leaves the repository", "docs/refgone.md does not exist"}
	if len(got) != len(want) {
		t.Fatalf("problems %q, want %d: %q", got, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) || !strings.HasPrefix(got[i], "README.md:") {
			t.Errorf("problem %d is %q, want one about %q", i, got[i], w)
		}
	}

	// A Go help text naming a document that is not there; one that is, and
	// a path inside another folder, are fine.
	write("cli/help.go", "package cli\n\n// See "+"docs/guide.md and "+"docs/moved"+".md; testdata/"+"docs/x.md is not ours.\n")
	missing, err := MissingDocs(root, []string{"cli/help.go"})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 1 || !strings.Contains(missing[0], "docs/moved.md") {
		t.Fatalf("missing %q, want docs/moved.md alone", missing)
	}
}

func TestSlug(t *testing.T) {
	for title, want := range map[string]string{
		" Quick start":                          "quick-start",
		" Changes made outside Démarche":        "changes-made-outside-démarche",
		" Host checks (DNS rebinding)":          "host-checks-dns-rebinding",
		" One JSON style, one error vocabulary": "one-json-style-one-error-vocabulary",
		" `make test` and friends":              "make-test-and-friends",
		" Sizing, from what was measured":       "sizing-from-what-was-measured",
		" Add a [link](x.md) heading ##":        "add-a-link-heading",
		" snake_case stays":                     "snake_case-stays",
	} {
		if got := Slug(title); got != want {
			t.Errorf("Slug(%q) = %q, want %q", title, got, want)
		}
	}
}
