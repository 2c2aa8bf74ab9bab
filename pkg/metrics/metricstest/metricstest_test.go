package metricstest

import (
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
