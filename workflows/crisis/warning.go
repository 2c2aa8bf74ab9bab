package crisis

// Early warning (the report's section IV.A:
// ¶44 "information is voluminous and must be sifted, evaluated and integrated";
// ¶45 "threshold moments";
// ¶46 "Women's groups in particular play an important role in early warning"):
// signals pooled from many sources cross a threshold and the crisis opens in
// the warning stage. The duty officer triages the warning: confirming it calls
// for a response ends the stage. Triage is an internal confirmation, kept as
// its own time (warning to triage); the warning-to-action clock runs on to
// the first response action (closure.go:
// ¶47 "the first steps taken to address it").

import (
	"go.temporal.io/sdk/workflow"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

var triage = decisionKind(&decisionType{
	kind: "triage", stage: demarchev1.Stage_STAGE_WARNING,
	role: demarchev1.Role_ROLE_DUTY_OFFICER, who: "duty officer",
	describe: func(r *demarchev1.DecisionRequest) string {
		return "warning triaged: " + r.GetTriage().GetAssessment()
	},
	apply:   func(*decisionCtx) effect { return stageCompleted },
	pending: stageDue,
	drill: func(workflow.Context, *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_Triage{
			Triage: &demarchev1.WarningTriage{Assessment: "drill: warning confirmed"}}}, nil
	},
})
