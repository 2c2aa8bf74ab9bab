package crisis

// Closure and evaluation (¶59 "proving this empirically is difficult";
// ¶60 "monitor outcomes, measure impact"; ¶60 "analysing lessons"): once every
// stage has ended, the head of department closes the crisis with its outcome
// (averted, contained, escalated, unresolved) and lessons, and may hand the
// engagement over (¶15 "The Peacebuilding Commission", a peace operation, the
// country team, or a regional organisation whose role allows it). The crisis releases
// its roster bookings and keeps the figures the report asks for: time from the
// first warning signal to the first response action (and to triage, apart),
// time in each stage, decisions, engagements, Council actions, deployments
// with and without a UN envoy, the funding lead time before deployment,
// money disbursed, deadlines breached.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

var closure = decisionKind(&decisionType{
	kind: "closure", stage: demarchev1.Stage_STAGE_CLOSED,
	role: demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT, who: "head of department",
	describe: func(r *demarchev1.DecisionRequest) string {
		c := r.GetClosure()
		return fmt.Sprintf("closure: %s; lessons: %s%s", c.GetOutcome().Slug(), strings.Join(c.GetLessons(), "; "), handOverWords(c))
	},
	check: func(d *decisionCtx) error {
		if !d.l.closing || len(d.l.active) > 0 {
			return rule("closure-last", "the crisis can close only after every stage has ended (running: %s)", d.l.activeList())
		}
		return d.l.checkHandOver(d.req.GetClosure())
	},
	apply: func(d *decisionCtx) effect {
		d.l.closure = d.rec
		return stageContinues
	},
	pending: func(l *lifecycle, _ *stageRun) []waiting {
		if l.closing && len(l.active) == 0 && l.closure == nil {
			return []waiting{{}}
		}
		return nil
	},
	drill: func(workflow.Context, *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_Closure{Closure: &demarchev1.ClosureDecision{
			Outcome: demarchev1.Outcome_OUTCOME_CONTAINED, Lessons: []string{"drill: the playbook ran end to end"}}}}, nil
	},
})

// close ends the crisis: roster released, figures kept, CrisisClosed published.
func (l *lifecycle) close(ctx workflow.Context) error {
	if err := workflow.ExecuteActivity(withActivityOptions(ctx), acts.ReleaseExperts, &demarchev1.AssignmentsRequest{CrisisId: l.crisis.GetId(), Drill: l.crisis.GetDrill(),
		Decision: &demarchev1.DecisionRef{CrisisId: l.crisis.GetId(), WorkflowId: l.wfID, RunId: workflow.GetInfo(ctx).WorkflowExecution.RunID,
			DecisionId: l.closure.GetDecisionId()}}).Get(ctx, nil); err != nil {
		return fmt.Errorf("close: release the roster: %w", err)
	}
	now := workflow.Now(ctx)
	l.closedAt = timestamppb.New(now)
	l.figures = l.computeFigures(now)
	if err := workflow.UpsertTypedSearchAttributes(ctx, l.stageAttributes(demarchev1.Stage_STAGE_CLOSED)...); err != nil {
		return fmt.Errorf("close: search attributes: %w", err)
	}
	cl := l.closure.GetRequest().GetClosure()
	return l.em.publish(ctx, &demarchev1.CrisisClosed{
		CrisisId: l.crisis.GetId(), ClosedAt: l.closedAt, Outcome: cl.GetOutcome(), Figures: l.figures, Lessons: cl.GetLessons(),
		HandOverTo: cl.GetHandOverTo(), HandOverPartner: cl.GetHandOverPartner(),
	})
}

// handOverWords is a closure's hand-over as its description ends ("" when
// there is none, so closures recorded before hand-overs read as they did).
func handOverWords(c *demarchev1.ClosureDecision) string {
	switch to := c.GetHandOverTo(); {
	case to == demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_UNSPECIFIED:
		return ""
	case c.GetHandOverPartner() != "":
		return fmt.Sprintf("; handed over to %s (%s)", c.GetHandOverPartner(), demarchev1.EnumWords(to.Descriptor(), to.Number()))
	default:
		return "; handed over to the " + demarchev1.EnumWords(to.Descriptor(), to.Number())
	}
}

// takesOver are the divisions of labour under which a regional organisation
// may receive a crisis at its closure
// (¶51 "in a lead role, in a supporting role, in a burdensharing role, in sequential deployments and in several joint operations"):
// one that led, worked jointly with the UN or deploys in
// sequence after it carries on; one that only supported or shared the burden
// does not take the engagement over.
var takesOver = []demarchev1.PartnerRoleKind{
	demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD,
	demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_JOINT,
	demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_SEQUENTIAL,
}

// checkHandOver enforces the division of labour on a hand-over to a regional
// organisation: the organisation has acknowledged a role in this crisis, and
// that role is lead, joint or sequential.
func (l *lifecycle) checkHandOver(c *demarchev1.ClosureDecision) error {
	org := c.GetHandOverPartner()
	if c.GetHandOverTo() != demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_REGIONAL_ORGANISATION || org == "" {
		return nil
	}
	var roles []string
	for _, p := range l.partners {
		roles = append(roles, p.GetPartner()+" "+p.GetRole().Slug())
		if strings.EqualFold(p.GetPartner(), org) {
			if slices.Contains(takesOver, p.GetRole()) {
				return nil
			}
			return rule("hand-over-recipient", "%s's role in this crisis is %s: only a partner in a lead, joint or sequential role takes the engagement over (record its role with demarche crisis partner-role)",
				org, p.GetRole().Slug())
		}
	}
	if len(roles) == 0 {
		roles = []string{"none recorded"}
	}
	return rule("hand-over-recipient", "%s has no role in this crisis (partners' roles: %s): only a partner in a lead, joint or sequential role takes the engagement over",
		org, strings.Join(roles, ", "))
}

func (l *lifecycle) computeFigures(now time.Time) *demarchev1.ClosureFigures {
	f := &demarchev1.ClosureFigures{
		Decisions: int32(len(l.decisions)), FundingDisbursedUsd: l.disbursed, Drill: l.crisis.GetDrill(),
		Total: durationpb.New(now.Sub(l.crisis.GetOpenedAt().AsTime())),
	}
	start := l.crisis.GetFirstSignalAt()
	if start == nil {
		start = l.crisis.GetOpenedAt()
	}
	for _, d := range l.decisions {
		at := d.GetDecidedAt().AsTime()
		if d.GetRequest().GetTriage() != nil && f.WarningToTriage == nil {
			f.WarningToTriage = durationpb.New(at.Sub(start.AsTime()))
		}
		if responseAction(d) && f.WarningToAction == nil {
			f.WarningToAction, f.FirstAction = durationpb.New(at.Sub(start.AsTime())), d.GetKind()
		}
	}
	f.CouncilActions = l.councilActions()
	f.DeploymentsWithEnvoy, f.DeploymentsWithoutEnvoy, f.FundingLeadTime = l.appointments()
	for _, st := range demarchev1.LifecycleStages {
		var total time.Duration
		ran := false
		for _, r := range l.timeline {
			if r.GetStage() == st {
				ran = true
				total += r.GetDuration().AsDuration()
			}
		}
		if ran {
			f.StageTimes = append(f.StageTimes, &demarchev1.StageTime{Stage: st, Time: durationpb.New(total)})
		}
	}
	for _, d := range l.deadlines {
		if d.GetStatus() == demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED {
			f.DeadlinesBreached++
		}
	}
	f.Engagements, _ = l.engagements() // the second result counts the public engagements, not an error
	return f
}

// responseAction says whether a decision is one of the first steps taken to
// address the situation, which end the warning-to-action clock
// (¶47 "the first steps taken to address it";
// ¶47 "a statement of concern by the Security Council";
// ¶47 "the deployment of a fact-finding mission";
// ¶47 "a well-timed démarche"): a good-offices option or engagement, a Security
// Council action, a deployment (a fact-finding mandate, an envoy or standby
// team appointed) or a funding approval. Triage confirms the warning inside
// the Secretariat and addresses nothing: its time is kept apart.
func responseAction(d *demarchev1.DecisionRecord) bool {
	r := d.GetRequest()
	switch {
	case r.GetGoodOffices() != nil, r.GetEngagement() != nil, r.GetCouncilAction() != nil,
		r.GetFactFindingMandate() != nil, r.GetEnvoyAppointment() != nil:
		return true
	case r.GetFundingDecision() != nil:
		return r.GetFundingDecision().GetApprove()
	}
	return false
}

// appointments counts the envoy appointments with a UN envoy and those of the
// standby team alone, and the funding lead time before the first one: from
// the approval of the funding that pays for it (its paid-by request, or else
// the first approval before it) to the appointment (nil: no funding approved
// before it, or no deployment). Rapid funding is what makes rapid deployment
// possible (¶21 "rapidly deployable funding").
func (l *lifecycle) appointments() (withEnvoy, without int32, lead *durationpb.Duration) {
	approved := map[string]time.Time{} // funding request id -> approval
	var firstApproval *time.Time
	for _, d := range l.decisions {
		at := d.GetDecidedAt().AsTime()
		if fd := d.GetRequest().GetFundingDecision(); fd.GetApprove() {
			approved[fd.GetRequestId()] = at
			if firstApproval == nil {
				firstApproval = &at
			}
		}
		a := d.GetRequest().GetEnvoyAppointment()
		if a == nil {
			continue
		}
		if withEnvoy+without == 0 {
			paid, named := approved[a.GetFundingRequestId()]
			switch {
			case named:
				lead = durationpb.New(at.Sub(paid))
			case firstApproval != nil:
				lead = durationpb.New(at.Sub(*firstApproval))
			}
		}
		if a.GetEnvoy() != "" {
			withEnvoy++
		} else {
			without++
		}
	}
	return withEnvoy, without, lead
}
