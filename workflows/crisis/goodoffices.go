package crisis

// Good offices (¶16 "used their good offices to help parties find solutions";
// ¶17 "the main operational arm for the conduct of my good offices"): the
// Secretary-General's options, quiet diplomacy
// (¶16 "good offices are deployed behind the scenes"), a public statement of
// concern (¶16 "the duty to speak out"), a démarche
// (¶47 "a well-timed démarche by the Secretary-General"), and two the report
// gives the Security Council (¶12 "informal interactive dialogues",
// ¶12 "horizon scanning"). The head of department records the option chosen and
// why; that ends the stage.

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
