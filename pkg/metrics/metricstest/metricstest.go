// Package metricstest reads what a /metrics endpoint serves, for tests: one
// parser of Prometheus's text format instead of one per test package.
package metricstest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Parse reads the text exposition format into series (name{labels} exactly
// as served) → value. Comments and blank lines are skipped; a line whose
// value does not parse is an error naming it.
func Parse(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("/metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// Scrape fetches base+"/metrics" and parses it.
func Scrape(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	return Parse(resp.Body)
}

// docMentions finds the demarche_* names in a document; the digits and angle
// brackets let it see whole words such as the release artefacts
// demarche_linux_amd64 and demarche_linux_<arch>, which NamesIn then leaves out.
var docMentions = regexp.MustCompile(`demarche_[a-z0-9_<>]*[a-z0-9>]`)

// NamesIn returns the metric names (demarche_ and lower-case letters and
// underscores only) that a document's text mentions, each once, in order of
// first mention.
func NamesIn(text string) []string {
	var out []string
	for _, m := range docMentions.FindAllString(text, -1) {
		if strings.ContainsAny(m, "0123456789<>") || slices.Contains(out, m) {
			continue
		}
		out = append(out, m)
	}
	return out
}
