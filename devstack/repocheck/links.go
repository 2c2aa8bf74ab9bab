package repocheck

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// MaxReadmeLines is how long README.md may grow: it is the door (what
// Démarche is, two commands, what you see, where to go next); everything
// else lives under docs/.
const MaxReadmeLines = 150

var (
	// inlineLink is [text](target) or ![alt](target), target up to a space
	// (a title may follow) or the closing parenthesis.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	// refLink is a reference definition: [name]: target.
	refLink = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	// htmlAnchor is an explicit anchor: <a name="x"> or id="x".
	htmlAnchor = regexp.MustCompile(`(?:name|id)="([^"]+)"`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	// docPath is a repository document named in Go source: help texts and
	// comments send readers there.
	docPath = regexp.MustCompile(`\b((?:docs|deploy)/[A-Za-z0-9_.-]+\.md|README\.md)\b`)
)

// BrokenLinks lists, for the Markdown files (paths relative to root, with
// slashes), every relative link whose file does not exist or whose anchor
// names no heading of its file. Links to other sites are not followed.
func BrokenLinks(root string, files []string) ([]string, error) {
	anchors := map[string]map[string]bool{} // file -> its anchors, read once
	anchorsOf := func(f string) (map[string]bool, error) {
		if a, ok := anchors[f]; ok {
			return a, nil
		}
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		a := Anchors(string(b))
		anchors[f] = a
		return a, nil
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		for _, l := range links(string(b)) {
			target, anchor, _ := strings.Cut(l.target, "#")
			if strings.Contains(target, ":") || strings.HasPrefix(target, "//") {
				continue // another site (https:, mailto:): not ours to check here
			}
			file := f
			if target != "" {
				file = path.Clean(path.Join(path.Dir(f), target))
				if strings.HasPrefix(file, "../") || file == ".." {
					out = append(out, fmt.Sprintf("%s:%d: link %q leaves the repository", f, l.line, l.target))
					continue
				}
				info, err := os.Stat(filepath.Join(root, filepath.FromSlash(file)))
				if err != nil {
					out = append(out, fmt.Sprintf("%s:%d: link %q: %s does not exist", f, l.line, l.target, file))
					continue
				}
				if info.IsDir() || !strings.HasSuffix(file, ".md") {
					if anchor != "" && info.IsDir() {
						out = append(out, fmt.Sprintf("%s:%d: link %q: an anchor on a folder", f, l.line, l.target))
					}
					continue // a folder or a file of another kind: its existence is the check
				}
			}
			if anchor == "" {
				continue
			}
			a, err := anchorsOf(file)
			if err != nil {
				return nil, err
			}
			if !a[strings.ToLower(anchor)] {
				out = append(out, fmt.Sprintf("%s:%d: link %q: %s has no heading with anchor #%s", f, l.line, l.target, file, anchor))
			}
		}
	}
	return out, nil
}

type link struct {
	line   int
	target string
}

// links are the link targets of a Markdown text, outside fenced code blocks
// and code spans.
func links(text string) []link {
	var out []link
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		line = codeSpan.ReplaceAllString(line, "")
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			out = append(out, link{i + 1, m[1]})
		}
		if m := refLink.FindStringSubmatch(line); m != nil {
			out = append(out, link{i + 1, m[1]})
		}
	}
	return out
}

// Anchors are the fragment names a Markdown text's headings get on GitHub
// (lower case; punctuation dropped but for - and _; spaces become -; a
// repeated heading gets -1, -2, ...), plus explicit HTML anchors.
func Anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fence := ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			out[strings.ToLower(m[1])] = true
		}
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimLeft(line, "#")
		if title == "" || title[0] != ' ' {
			continue // "#hashtag", not a heading
		}
		slug := Slug(title)
		if n, ok := seen[slug]; ok {
			seen[slug] = n + 1
			slug = fmt.Sprintf("%s-%d", slug, n+1)
		} else {
			seen[slug] = 0
		}
		out[slug] = true
	}
	return out
}

// Slug is GitHub's anchor for a heading's text.
func Slug(title string) string {
	title = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(title), "#"))
	// A link in a heading anchors by its text.
	title = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(title, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// MissingDocs lists, for the Go files (paths relative to root), every
// repository document they name (docs/*.md, deploy/*.md, README.md) that
// does not exist: help texts and comments must not send readers nowhere.
func MissingDocs(root string, files []string) ([]string, error) {
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range docPath.FindAllStringSubmatchIndex(line, -1) {
				doc := line[m[2]:m[3]]
				if m[2] > 0 && (line[m[2]-1] == '/' || line[m[2]-1] == '.') {
					continue // a path inside something else (testdata/docs/x.md, ../README.md)
				}
				if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(doc))); err != nil {
					out = append(out, fmt.Sprintf("%s:%d: names %s, which does not exist", f, i+1, doc))
				}
			}
		}
	}
	return out, nil
}
