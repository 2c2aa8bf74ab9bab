package metricstest

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := Parse(strings.NewReader("# HELP a_total x\n# TYPE a_total counter\na_total{kind=\"x y\"} 3\n\nb 1.5e+00\nc +Inf\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[`a_total{kind="x y"}`] != 3 || got["b"] != 1.5 || got["c"] <= 1e308 {
		t.Fatalf("parsed %v", got)
	}
	if _, err := Parse(strings.NewReader("a_total three\n")); err == nil || !strings.Contains(err.Error(), "a_total three") {
		t.Fatalf("a bad value: %v", err)
	}
}

// TestWatchedAgreesWithTheDoc: the list the metric-presence tests scrape for
// is exactly what docs/operations.md tells an operator to watch: a metric
// named there and not here (or here and not there) fails.
func TestWatchedAgreesWithTheDoc(t *testing.T) {
	doc, err := DocumentedWatch("../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, w := range Watched {
		listed = append(listed, w.Metric)
		for _, o := range w.Owners {
			if !slices.Contains(Services, o) {
				t.Errorf("%s: owner %q is not a service", w.Metric, o)
			}
		}
	}
	for _, m := range doc {
		if !slices.Contains(listed, m) {
			t.Errorf("docs/operations.md names %s, which metricstest.Watched does not list (with its owners): no test scrapes for it", m)
		}
	}
	for _, m := range listed {
		if !slices.Contains(doc, m) {
			t.Errorf("metricstest.Watched lists %s, which docs/operations.md's What to watch and Sizing do not name", m)
		}
	}
}

func TestNamesInLeavesOutReleaseArtefacts(t *testing.T) {
	got := NamesIn("watch `demarche_dead_letters_total`; install demarche_linux_amd64 or dist/demarche_linux_<arch>; again demarche_dead_letters_total, and demarche_ready.")
	want := []string{"demarche_dead_letters_total", "demarche_ready"}
	if !slices.Equal(got, want) {
		t.Fatalf("NamesIn = %q, want %q", got, want)
	}
}
