package crisis

// Good offices (¶16 "used their good offices to help parties find solutions";
// ¶17 "the main operational arm for the conduct of my good offices"): the
// Secretary-General's options, quiet diplomacy
// (¶16 "good offices are deployed behind the scenes"), a public statement of
// concern (¶16 "the duty to speak out") and a démarche
// (¶47 "a well-timed démarche by the Secretary-General"). The head of
// department records the option chosen and why; that ends the stage. The two
// options that were the Security Council's own
// (¶12 "informal interactive dialogues", ¶12 "horizon scanning") are
// withdrawn: they are council-action
// decisions now (council.go), and a good-offices decision naming one is
// refused (rule council-track); one recorded before keeps it.

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// engagement logs one engagement of sustained good offices
// (¶55 "over 40 working visits to Conakry"): any number, whatever stage runs,
// quiet or public; the stage the crisis is in does not change. The crisis page
// and the closure figures count them.
var engagement = decisionKind(&decisionType{
	kind: "engagement", stage: demarchev1.Stage_STAGE_GOOD_OFFICES, anytime: true,
	role: demarchev1.Role_ROLE_DESK_OFFICER, who: "desk officer, for the envoy or senior official",
	describe: func(r *demarchev1.DecisionRequest) string {
		e := r.GetEngagement()
		quiet := "quiet"
		if e.GetPublic() {
			quiet = "public"
		}
		return fmt.Sprintf("engagement: %s by %s with %s (%s)", e.GetType().Slug(), e.GetBy(), e.GetWith(), quiet)
	},
	apply:   func(*decisionCtx) effect { return stageContinues },
	pending: func(*lifecycle, *stageRun) []waiting { return nil }, // logged as it happens, never awaited
	drill: func(workflow.Context, *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_Engagement{Engagement: &demarchev1.GoodOfficesEngagement{
			Type: demarchev1.EngagementKind_ENGAGEMENT_KIND_CALL, By: "drill-envoy", With: "drill party"}}}, nil
	},
})

// engagements counts the engagements logged, and the public ones.
func (l *lifecycle) engagements() (all, public int32) {
	for _, d := range l.decisions {
		if e := d.GetRequest().GetEngagement(); e != nil {
			all++
			if e.GetPublic() {
				public++
			}
		}
	}
	return all, public
}

var goodOffices = decisionKind(&decisionType{
	kind: "good-offices", stage: demarchev1.Stage_STAGE_GOOD_OFFICES,
	role: demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT, who: "head of department, for the Secretary-General",
	describe: func(r *demarchev1.DecisionRequest) string {
		return "good offices: " + r.GetGoodOffices().GetOption().Slug()
	},
	check: func(d *decisionCtx) error {
		o := d.req.GetGoodOffices().GetOption()
		if why := demarchev1.Withdrawn(o.Descriptor(), o.Number()); why != "" {
			return rule("council-track", "%s is no longer a good-offices option: %s", o.Slug(), why)
		}
		return nil
	},
	apply:   func(*decisionCtx) effect { return stageCompleted },
	pending: stageDue,
	drill: func(workflow.Context, *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_GoodOffices{
			GoodOffices: &demarchev1.GoodOfficesDecision{Option: demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_QUIET_DIPLOMACY}}}, nil
	},
})
