package crisis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// pagedVisibility answers ListWorkflow from n stand-in crises, at most the
// page size asked for at a time, and records each request.
type pagedVisibility struct {
	client.Client
	n    int
	asks []*workflowservice.ListWorkflowExecutionsRequest
}

func (p *pagedVisibility) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	p.asks = append(p.asks, req)
	from := 0
	if len(req.GetNextPageToken()) > 0 {
		from, _ = strconv.Atoi(string(req.GetNextPageToken()))
	}
	to := min(from+int(req.GetPageSize()), p.n)
	resp := &workflowservice.ListWorkflowExecutionsResponse{}
	for i := from; i < to; i++ {
		resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
			Execution: &commonpb.WorkflowExecution{WorkflowId: WorkflowID(fmt.Sprintf("C-%d", i))},
			StartTime: timestamppb.New(time.Unix(int64(p.n-i), 0)),
		})
	}
	if to < p.n {
		resp.NextPageToken = []byte(strconv.Itoa(to))
	}
	return resp, nil
}

// List asks visibility for pages of up to 1,000 rows (a limit below that:
// one page of the limit), follows every page in order, and stops at the
// limit: the same rows as before, in fewer queries.
func TestListPages(t *testing.T) {
	cases := []struct {
		n, limit, rows int
		pages          []int32
	}{
		{n: 2500, limit: 0, rows: 2500, pages: []int32{1000, 1000, 1000}},
		{n: 2500, limit: 500, rows: 500, pages: []int32{500}},
		{n: 2500, limit: 1500, rows: 1500, pages: []int32{1000, 500}},
		{n: 3, limit: 0, rows: 3, pages: []int32{1000}},
	}
	for _, c := range cases {
		v := &pagedVisibility{n: c.n}
		rows, err := List(context.Background(), v, Filter{Country: "GN"}, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != c.rows {
			t.Errorf("%d crises, limit %d: %d rows, want %d", c.n, c.limit, len(rows), c.rows)
		}
		for i, r := range rows {
			if r.CrisisID != fmt.Sprintf("C-%d", i) {
				t.Fatalf("%d crises, limit %d: row %d is %s, want C-%d (every page, in order)", c.n, c.limit, i, r.CrisisID, i)
			}
		}
		var sizes []int32
		for _, a := range v.asks {
			sizes = append(sizes, a.GetPageSize())
			if a.GetQuery() != (Filter{Country: "GN"}).Query() {
				t.Errorf("page asked with query %q", a.GetQuery())
			}
		}
		if !slices.Equal(sizes, c.pages) {
			t.Errorf("%d crises, limit %d: pages asked %v, want %v", c.n, c.limit, sizes, c.pages)
		}
	}
}
