package crisis

// Field presences (¶22 "forward platforms for preventive diplomacy";
// ¶26 "much smaller political missions"; ¶29 "first line of crisis response";
// ¶33 "resident coordinators and country teams"): a crisis names the
// registered presence that leads on the ground (Crisis.lead_presence, checked
// against pkg/presences by the gateway), and that presence's field officers
// file its field reports: situation reports, visits, meetings with a party,
// as often as they happen, in whatever stage the crisis stands; the stages do
// not move. Who files is a field officer of that presence: the presence is
// the credential's (DecisionRequest.presence, stamped by the gateway from
// the presence claim), never the body's.

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

var fieldReport = decisionKind(&decisionType{
	kind: "field-report", anytime: true, // the presence reports as things happen: no stage run
	role: demarchev1.Role_ROLE_FIELD_OFFICER, who: "a field officer of the crisis's lead presence",
	describe: func(r *demarchev1.DecisionRequest) string {
		f := r.GetFieldReport()
		s := fmt.Sprintf("%s %s: %s", orNobody(r.GetPresence()), demarchev1.EnumWords(f.GetType().Descriptor(), f.GetType().Number()), f.GetSummary())
		if w := f.GetWith(); w != "" {
			s += " (with " + w + ")"
		}
		return s
	},
	check: func(d *decisionCtx) error {
		lead := d.l.crisis.GetLeadPresence()
		switch {
		case lead == "":
			return rule("lead-presence", "the crisis names no lead field presence: a field report comes from the presence that leads it (name one when opening the crisis)")
		case d.req.GetPresence() != lead:
			return rule("lead-presence", "a field report of this crisis is filed by a field officer of %s, its lead presence; %s's credential names %s",
				lead, d.req.GetPrincipal(), orNobody(d.req.GetPresence()))
		}
		return nil
	},
	apply:   func(*decisionCtx) effect { return stageContinues },
	pending: func(*lifecycle, *stageRun) []waiting { return nil }, // filed as things happen, never awaited
	drill: func(_ workflow.Context, d *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Presence: d.l.crisis.GetLeadPresence(), Decision: &demarchev1.DecisionRequest_FieldReport{FieldReport: &demarchev1.FieldReport{
			Type: demarchev1.FieldReportKind_FIELD_REPORT_KIND_SITUATION_REPORT, Summary: "drill: situation calm"}}}, nil
	},
})

// orNobody is s, or "no presence" when empty.
func orNobody(s string) string {
	if s == "" {
		return "no presence"
	}
	return s
}
