package earlywarning_test

import (
	"strings"
	"testing"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

func TestParseThresholds(t *testing.T) {
	got, err := earlywarning.ParseThresholds([]string{"africa=20", "EUROPE=30.5"})
	if err != nil || got[demarchev1.Region_REGION_AFRICA] != 20 || got[demarchev1.Region_REGION_EUROPE] != 30.5 || len(got) != 2 {
		t.Fatalf("parsed %v, %v", got, err)
	}
	for spec, says := range map[string]string{
		"africa":      "write region=score",
		"atlantis=3":  "not a known region",
		"africa=-1":   "-1 is out of range (allowed: above 0, at most 10000)",
		"africa=0":    "0 is out of range (allowed: above 0, at most 10000)",
		"africa=1e9":  "1e+09 is out of range (allowed: above 0, at most 10000)",
		"africa=lots": "not a positive number",
	} {
		if _, err := earlywarning.ParseThresholds([]string{spec}); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%q: %v does not say %q", spec, err, says)
		}
	}
	if _, err := earlywarning.ParseThresholds([]string{"africa=1", "africa=2"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate region: %v", err)
	}
}
