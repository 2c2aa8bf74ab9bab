package gateway

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// One parser reads the API's and the console's search: each parameter into
// its filter, and a value not understood refused naming the parameter.
func TestParseSearch(t *testing.T) {
	q, err := parseSearch(url.Values{"q": {" Conakry "}, "country": {"gn"}, "region": {"africa"}, "type": {"unconstitutional-change"}, "severity_min": {"3"},
		"severity_max": {"4"}, "status": {"closed"}, "outcome": {"averted"}, "drills": {"only"}, "opened_from": {"2026-11-01"}, "opened_to": {"2026-11-30"}, "limit": {"10"}})
	if err != nil {
		t.Fatal(err)
	}
	f := q.Filter
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	if q.Text != "Conakry" || f.Country != "GN" || f.Region != demarchev1.Region_REGION_AFRICA || f.CrisisType != demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE ||
		f.SeverityMin != 3 || f.SeverityMax != 4 || !f.ClosedOnly || f.OpenOnly || q.Outcome != demarchev1.Outcome_OUTCOME_AVERTED || !f.DrillsOnly || f.ExcludeDrills ||
		!f.OpenedFrom.Equal(day("2026-11-01")) || !f.OpenedBefore.Equal(day("2026-12-01")) || q.Limit != 10 {
		t.Errorf("parsed %+v", q)
	}
	if q, _ := parseSearch(url.Values{"open": {"true"}, "drills": {"false"}}); !q.Filter.OpenOnly || !q.Filter.ExcludeDrills || q.Limit != 500 {
		t.Errorf("the earlier parameters: %+v", q)
	}
	for param, v := range map[string]string{"severity_min": "9", "status": "maybe", "drills": "some", "opened_from": "yesterday", "region": "atlantis",
		"outcome": "won", "limit": "0", "q": strings.Repeat("x", 201), "country": "XX"} {
		_, err := parseSearch(url.Values{param: {v}})
		if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), strings.TrimSuffix(param, "_min")) {
			t.Errorf("%s=%s: %v, want invalid naming it", param, v, err)
		}
	}
	if _, err := parseSearch(url.Values{"severity_min": {"4"}, "severity_max": {"2"}}); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("severity_min above severity_max: %v", err)
	}
	if _, err := parseSearch(url.Values{"opened_from": {"2026-11-02"}, "opened_to": {"2026-11-01"}}); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("opened_to before opened_from: %v", err)
	}
	l, err := parseLessons(url.Values{"type": {"border-dispute"}, "region": {"europe"}, "outcome": {"contained"}, "drills": {"true"}, "q": {"fund"}})
	if err != nil || l.CrisisType != demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE || l.Region != demarchev1.Region_REGION_EUROPE ||
		l.Outcome != demarchev1.Outcome_OUTCOME_CONTAINED || !l.Drills || l.Text != "fund" || l.Limit != 200 {
		t.Errorf("lessons: %+v %v", l, err)
	}
}
