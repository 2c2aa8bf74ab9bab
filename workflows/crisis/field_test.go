package crisis

// Field presences (issue 27, item 4): a field report is filed by a field
// officer of the crisis's lead presence, in any stage, and moves nothing.

import (
	"slices"
	"strings"
	"testing"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func fieldReq(presence string, roles ...demarchev1.Role) *demarchev1.DecisionRequest {
	r := req("fo-"+strings.ToLower(presence), &demarchev1.FieldReport{Type: demarchev1.FieldReportKind_FIELD_REPORT_KIND_VISIT,
		Summary: "met the transitional authorities in Conakry", With: "the CNDD"})
	r.Roles, r.Presence = roles, presence
	return r
}

// Who may file a field report, on a crisis led by UNOWA and on one that
// names no lead presence: a field officer of UNOWA only; another presence's
// officer, an officer with no presence, and operators without the field
// role are refused by the workflow, naming the rule.
func TestFieldReportByTheLeadPresenceOnly(t *testing.T) {
	field := demarchev1.Role_ROLE_FIELD_OFFICER
	cases := []struct {
		name     string
		lead     string
		presence string
		roles    []demarchev1.Role
		rule     string // "": accepted
	}{
		{"UNOWA's officer on UNOWA's crisis", "UNOWA", "UNOWA", []demarchev1.Role{field}, ""},
		{"UNOCA's officer on UNOWA's crisis", "UNOWA", "UNOCA", []demarchev1.Role{field}, "rule lead-presence: a field report of this crisis is filed by a field officer of UNOWA"},
		{"an officer with no presence", "UNOWA", "", []demarchev1.Role{field}, "credential names no presence"},
		{"the duty officer, no field role", "UNOWA", "UNOWA", []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER, demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT}, "rule role:"},
		{"a crisis with no lead presence", "", "UNOWA", []demarchev1.Role{field}, "the crisis names no lead field presence"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			var got error
			answered := false
			stageAfter := []demarchev1.Stage{}
			h.at(time.Minute, func() {
				h.decide(fieldReq(c.presence, c.roles...), func(err error) { got, answered = err, true })
			})
			h.at(2*time.Minute, func() { stageAfter = h.state().GetActiveStages() })
			h.drive(6*time.Hour, nil)
			pb := mustPlaybook(t, "general")
			cr := crisisFor(pb)
			cr.LeadPresence = c.lead
			h.env.ExecuteWorkflow(WorkflowName, &demarchev1.CrisisWorkflowInput{Crisis: cr, Playbook: pb})
			if err := h.env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			var final demarchev1.CrisisState
			if err := h.env.GetWorkflowResult(&final); err != nil {
				t.Fatal(err)
			}
			var filed []*demarchev1.DecisionRecord
			for _, d := range final.GetDecisions() {
				if d.GetKind() == "field-report" {
					filed = append(filed, d)
				}
			}
			switch {
			case !answered:
				t.Fatal("no answer")
			case c.rule == "" && got != nil:
				t.Fatalf("refused: %v", got)
			case c.rule != "" && (got == nil || !strings.Contains(got.Error(), c.rule)):
				t.Fatalf("%v, want %q", got, c.rule)
			case c.rule != "" && len(filed) != 0:
				t.Fatalf("a refused report was recorded: %v", filed)
			case c.rule == "" && (len(filed) != 1 || filed[0].GetRequest().GetPresence() != "UNOWA" || !strings.Contains(Describe(filed[0].GetRequest()), "UNOWA visit: met the transitional authorities")):
				t.Fatalf("recorded %v, want one UNOWA visit", filed)
			case c.rule == "" && !slices.Contains(stageAfter, demarchev1.Stage_STAGE_WARNING):
				t.Fatalf("stages after the report %v: the warning stage should still run (a report moves nothing)", stageAfter)
			}
			if c.rule == "" && len(h.bus.kinds("DecisionRecorded:field-report")) != 1 {
				t.Fatalf("field-report events: %v", h.bus.kinds("DecisionRecorded:field-report"))
			}
		})
	}
}
