package crisis

import (
	"strings"
	"testing"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Each filter is one clause of the visibility query, on an attribute the
// workflow keeps (or the workflow's own status and start time); values are
// quoted so a country cannot end its clause.
func TestFilterQuery(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		f    Filter
		want []string
	}{
		{Filter{Region: demarchev1.Region_REGION_AFRICA}, []string{"DemarcheRegion = 'africa'"}},
		{Filter{SeverityMin: 3, SeverityMax: 4}, []string{"DemarcheSeverity >= 3", "DemarcheSeverity <= 4"}},
		{Filter{ClosedOnly: true}, []string{"ExecutionStatus != 'Running'"}},
		{Filter{DrillsOnly: true}, []string{"DemarcheDrill = true"}},
		{Filter{OpenedFrom: from, OpenedBefore: from.AddDate(0, 0, 7)}, []string{"StartTime >= '2026-11-01T00:00:00Z'", "StartTime < '2026-11-08T00:00:00Z'"}},
		{Filter{Country: "G'N"}, []string{`DemarcheCountry = 'G\'N'`}},
		{Filter{Confidentialities: []demarchev1.Confidentiality{}}, []string{"DemarcheConfidentiality IN ('none')"}},
	}
	for _, c := range cases {
		q := c.f.Query()
		if !strings.HasPrefix(q, "WorkflowType = '"+WorkflowName+"'") {
			t.Errorf("%+v: %s does not select crises", c.f, q)
		}
		for _, w := range c.want {
			if !strings.Contains(q, " AND "+w) {
				t.Errorf("%+v: %s lacks %s", c.f, q, w)
			}
		}
	}
	if q := (Filter{}).Query(); q != "WorkflowType = '"+WorkflowName+"'" {
		t.Errorf("an empty filter: %s", q)
	}
}
