package crisis

// Good offices (report §§28-33): the Secretary-General's options, quiet
// diplomacy, a public statement of concern, a démarche, an informal dialogue
// with the Security Council, a horizon-scanning briefing. The head of
// department records the option chosen and why; that ends the stage.

import (
	"go.temporal.io/sdk/workflow"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

var goodOffices = decisionKind(&decisionType{
	kind: "good-offices", stage: demarchev1.Stage_STAGE_GOOD_OFFICES,
	role: demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT, who: "head of department, for the Secretary-General",
	describe: func(r *demarchev1.DecisionRequest) string {
		return "good offices: " + r.GetGoodOffices().GetOption().Slug()
	},
	apply:   func(*decisionCtx) effect { return stageCompleted },
	pending: stageDue,
	drill: func(workflow.Context, *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_GoodOffices{
			GoodOffices: &demarchev1.GoodOfficesDecision{Option: demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_QUIET_DIPLOMACY}}}, nil
	},
})
