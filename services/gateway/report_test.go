package gateway

import (
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
)

// The CSV report: one row per entry, then figures and lessons; a text a
// spreadsheet would take for a formula is kept as text.
func TestReportCSV(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC)
	rep := &app.Report{State: &demarchev1.CrisisState{
		Crisis:  &demarchev1.Crisis{Id: "GN-20261207-CSV01"},
		Figures: &demarchev1.ClosureFigures{Decisions: 4, FundingDisbursedUsd: 250000},
		Lessons: []string{"=HYPERLINK(\"http://evil\")", "brief partners earlier"}, ClosedAt: timestamppb.New(at),
	}, Timeline: []app.TimelineEntry{
		{Time: at, Kind: "comment", What: "+1 from the desk, \"quoted\", with a comma", Principal: "duty", Workflow: "crisis-GN-20261207-CSV01", EventID: 12},
	}}
	b, err := reportCSV(rep)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, b)
	}
	if got := strings.Join(rows[1], "|"); got != "2026-12-07T09:30:00Z|comment|'+1 from the desk, \"quoted\", with a comma|duty|||crisis-GN-20261207-CSV01|12" {
		t.Errorf("the comment's row: %s", got)
	}
	var figures, lessons []string
	for _, r := range rows[2:] {
		switch r[1] {
		case "figure":
			figures = append(figures, r[2])
		case "lesson":
			lessons = append(lessons, r[2])
		}
	}
	if !strings.Contains(strings.Join(figures, ";"), "decisions: 4") || !strings.Contains(strings.Join(figures, ";"), "USD 250,000") {
		t.Errorf("figures: %v", figures)
	}
	if len(lessons) != 2 || lessons[0] != "'=HYPERLINK(\"http://evil\")" {
		t.Errorf("lessons: %v (a formula must stay text)", lessons)
	}
}
