package crisis

// The Security Council's own track (¶12 "informal interactive dialogues";
// ¶12 "horizon scanning"; ¶13 "must be answered on a case-by-case basis";
// ¶13 "missions to the field"; ¶13 "press communiqués";
// ¶14 "targeted sanctions"; ¶16 "Article 99 of the Charter"): beside the
// Secretary-General's good offices, not one of their options. A Council
// action (an Article 99 letter, a briefing, an informal interactive dialogue,
// a presidential or press statement, a mission to the field, a sanctions
// referral, a horizon-scanning briefing) is recorded with its date and
// outcome in whatever stage the crisis stands, as often as the Council acts;
// the stages do not move. It belongs to no stage run: the Council's track is
// its own.
//
// Who records it: the head of department, for the Secretary-General. Article
// 99 letters and the Secretariat's briefings are the Secretary-General's
// to make, and the department is the Secretariat's link to the Council
// (¶12 "requested the Department of Political Affairs to deliver monthly");
// the Council's own products (statements, missions, sanctions)
// are recorded by the same office that follows the Council, so one role
// answers for the track.

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// councilDateSlack is how far ahead of the recording a Council action's date
// may lie: a date without a time stands for 17:00 UTC that day, so an action
// recorded in the morning is dated later the same day; more than a day ahead
// is a planned action, not one taken.
const councilDateSlack = 24 * time.Hour

var councilAction = decisionKind(&decisionType{
	kind: "council-action", anytime: true, // the Council's track: no stage run
	role: demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT, who: "head of department, for the Secretary-General",
	describe: func(r *demarchev1.DecisionRequest) string {
		a := r.GetCouncilAction()
		s := fmt.Sprintf("Security Council %s on %s: %s", demarchev1.EnumWords(a.GetType().Descriptor(), a.GetType().Number()),
			a.GetDate().AsTime().Format(time.DateOnly), a.GetOutcome())
		if doc := a.GetDocument(); doc != "" {
			s += " (" + doc + ")"
		}
		if len(a.GetSituations()) > 0 {
			s += "; also covered: " + strings.Join(a.GetSituations(), ", ")
		}
		return s
	},
	check: func(d *decisionCtx) error {
		a := d.req.GetCouncilAction()
		if latest := d.now.Add(councilDateSlack); a.GetDate().AsTime().After(latest) {
			return rule("council-date", "the Council action is dated %s, later than %s: record an action once taken",
				a.GetDate().AsTime().Format(time.RFC3339), latest.Format(time.RFC3339))
		}
		if a.GetType() == demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_HORIZON_SCANNING_BRIEFING && len(a.GetSituations()) == 0 {
			return rule("horizon-scanning-situations", "a horizon-scanning briefing covers several situations: name in situations the others it covered")
		}
		return nil
	},
	apply:   func(*decisionCtx) effect { return stageContinues },
	pending: func(*lifecycle, *stageRun) []waiting { return nil }, // recorded as the Council acts, never awaited
	drill: func(ctx workflow.Context, _ *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_CouncilAction{CouncilAction: &demarchev1.CouncilAction{
			Type: demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_BRIEFING, Date: timestamppb.New(workflow.Now(ctx)),
			Outcome: "drill: members took note"}}}, nil
	},
})

// councilActions counts the Council actions recorded.
func (l *lifecycle) councilActions() int32 {
	var n int32
	for _, d := range l.decisions {
		if d.GetRequest().GetCouncilAction() != nil {
			n++
		}
	}
	return n
}
