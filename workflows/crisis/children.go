package crisis

// Child workflows: the stages that run for a while on their own. The crisis
// (parent) validates and records every decision, then forwards it here with
// SignalStageDecision; a child runs the stage's timers and side effects and
// reports deadlines, due check-ins and relapses back to the parent.

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// stageChild is what every child shares: its input, its emitter, its parent.
type stageChild struct {
	in  *demarchev1.StageWorkflowInput
	out *demarchev1.StageOutcome
	em  *emitter
}

func newStageChild(ctx workflow.Context, in *demarchev1.StageWorkflowInput, stage demarchev1.Stage) (*stageChild, error) {
	if in.GetCrisis() == nil || in.GetParentWorkflowId() == "" || in.GetPlaybook() == nil {
		return nil, invalidInput(fmt.Errorf("%s: crisis, parent_workflow_id and playbook are required", stage.Slug()))
	}
	prefix := fmt.Sprintf("%s-%s-%d", in.GetCrisis().GetId(), stage.Slug(), in.GetRun())
	return &stageChild{
		in:  in,
		out: &demarchev1.StageOutcome{Stage: stage},
		em:  &emitter{crisis: in.GetCrisis(), prefix: prefix, seq: int(in.GetFollowUp().GetEventSeq())},
	}, nil
}

// signalParent tells the crisis something; a failure is logged, not fatal:
// the parent is the one waiting for this child.
func (c *stageChild) signalParent(ctx workflow.Context, name string, arg any) {
	if err := workflow.SignalExternalWorkflow(ctx, c.in.GetParentWorkflowId(), "", name, arg).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("signal parent failed", "signal", name, "error", err)
	}
}

// watch starts a deadline whose changes are published and reported to the parent.
func (c *stageChild) watch(ctx workflow.Context, d *demarchev1.DeadlineState) func(demarchev1.DeadlineStatus) {
	c.signalParent(ctx, SignalDeadline, &demarchev1.DeadlineReport{Deadline: d})
	stop := watchDeadline(ctx, d, func(ctx workflow.Context, d *demarchev1.DeadlineState) {
		if d.GetStatus() == demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED {
			c.out.DeadlinesBreached++
		}
		if ev := deadlineEvent(c.in.GetCrisis().GetId(), d); ev != nil {
			_ = c.em.publish(ctx, ev)
		}
		c.signalParent(ctx, SignalDeadline, &demarchev1.DeadlineReport{Deadline: d})
	})
	return func(status demarchev1.DeadlineStatus) {
		stop(status)
		c.signalParent(ctx, SignalDeadline, &demarchev1.DeadlineReport{Deadline: d})
	}
}

// nextDecision waits for the parent to forward a decision.
func nextDecision(ctx workflow.Context) (*demarchev1.DecisionRecord, error) {
	var rec demarchev1.DecisionRecord
	if !workflow.GetSignalChannel(ctx, SignalStageDecision).Receive(ctx, &rec) {
		return nil, ctx.Err()
	}
	return &rec, nil
}

// FactFindingMission waits for the mandate, runs the findings-report deadline
// it sets, and ends with the report.
func FactFindingMission(ctx workflow.Context, in *demarchev1.StageWorkflowInput) (*demarchev1.StageOutcome, error) {
	c, err := newStageChild(ctx, in, demarchev1.Stage_STAGE_FACT_FINDING)
	if err != nil {
		return nil, err
	}
	var stop func(demarchev1.DeadlineStatus)
	for {
		rec, err := nextDecision(ctx)
		if err != nil {
			return c.out, err
		}
		switch d := rec.GetRequest().GetDecision().(type) {
		case *demarchev1.DecisionRequest_FactFindingMandate:
			now := workflow.Now(ctx)
			due := d.FactFindingMandate.GetReportDue().AsTime()
			dl := &demarchev1.DeadlineState{
				Name: "fact-finding report", Stage: demarchev1.Stage_STAGE_FACT_FINDING,
				Status:    demarchev1.DeadlineStatus_DEADLINE_STATUS_RUNNING,
				StartedAt: timestamppb.New(now), DueAt: timestamppb.New(due),
				AtRiskAt: timestamppb.New(now.Add(due.Sub(now) * 4 / 5)),
			}
			stop = c.watch(ctx, dl)
		case *demarchev1.DecisionRequest_FactFindingReport:
			if stop != nil {
				stop(demarchev1.DeadlineStatus_DEADLINE_STATUS_MET)
			}
			return c.out, nil
		}
	}
}

// EnvoyDeployment runs the standby team's durable deadline (72 hours in the
// playbooks, at risk at 48) from the moment the stage starts, publishing and
// notifying when it is at risk or breached, and waits, however late, until the
// team is confirmed deployed.
func EnvoyDeployment(ctx workflow.Context, in *demarchev1.StageWorkflowInput) (*demarchev1.StageOutcome, error) {
	c, err := newStageChild(ctx, in, demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT)
	if err != nil {
		return nil, err
	}
	dl := newDeadline(ctx, "standby team deployment", demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT, in.GetPlaybook().GetStandbyTeam(), in.GetDrillPolicy())
	stop := c.watch(ctx, dl)
	for {
		rec, err := nextDecision(ctx)
		if err != nil {
			return c.out, err
		}
		if rec.GetRequest().GetStandbyTeamDeployed() != nil {
			stop(demarchev1.DeadlineStatus_DEADLINE_STATUS_MET)
			return c.out, nil
		}
	}
}

// RapidResponseFunding waits for a request and its decision; an approval is
// paid through the disbursement activity, once, keyed by crisis and request.
// A rejection waits for the next request.
func RapidResponseFunding(ctx workflow.Context, in *demarchev1.StageWorkflowInput) (*demarchev1.StageOutcome, error) {
	c, err := newStageChild(ctx, in, demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING)
	if err != nil {
		return nil, err
	}
	requests := map[string]*demarchev1.FundingRequest{}
	for {
		rec, err := nextDecision(ctx)
		if err != nil {
			return c.out, err
		}
		switch d := rec.GetRequest().GetDecision().(type) {
		case *demarchev1.DecisionRequest_FundingRequest:
			requests[d.FundingRequest.GetRequestId()] = d.FundingRequest
		case *demarchev1.DecisionRequest_FundingDecision:
			req := requests[d.FundingDecision.GetRequestId()]
			if req == nil || !d.FundingDecision.GetApprove() {
				continue
			}
			cr := in.GetCrisis()
			var paid demarchev1.FundsDisbursed
			err := workflow.ExecuteActivity(withActivityOptions(ctx), ActivityDisburse, &demarchev1.DisburseRequest{
				CrisisId: cr.GetId(), Region: cr.GetRegion(), CountryCode: cr.GetCountryCode(),
				Request: req, ApprovedBy: rec.GetPrincipal(),
				DisbursementKey: fmt.Sprintf("%s-%s", cr.GetId(), req.GetRequestId()),
			}).Get(ctx, &paid)
			if err != nil {
				return c.out, fmt.Errorf("disburse %s: %w", req.GetRequestId(), err)
			}
			c.out.DisbursedUsd += paid.GetAmountUsd()
			return c.out, nil
		}
	}
}

// SustainedFollowUp stays with the country for months: a check-in is due every
// interval (the parent is told, and an event published); each recorded
// check-in is counted; a new warning at the playbook's relapse severity, or a
// check-in recommending re-escalation, re-escalates the crisis. After
// check_ins_per_run check-ins it continues as new, so its history stays bounded.
func SustainedFollowUp(ctx workflow.Context, in *demarchev1.StageWorkflowInput) (*demarchev1.StageOutcome, error) {
	c, err := newStageChild(ctx, in, demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP)
	if err != nil {
		return nil, err
	}
	plan := in.GetPlaybook().GetFollowUp()
	interval := scaled(plan.GetInterval().AsDuration(), in.GetDrillPolicy())
	prog := in.GetFollowUp()
	if prog == nil {
		prog = &demarchev1.FollowUpProgress{NextDue: timestamppb.New(workflow.Now(ctx).Add(interval))}
	}
	c.out.DeadlinesBreached = prog.GetDeadlinesBreached()
	decisions := workflow.GetSignalChannel(ctx, SignalStageDecision)
	warnings := workflow.GetSignalChannel(ctx, SignalStageWarning)
	thisRun := int32(0)
	handedOver := false

	onCheckIn := func(rec *demarchev1.DecisionRecord) {
		ci := rec.GetRequest().GetFollowUpCheckIn()
		if ci == nil {
			return
		}
		prog.CheckInsDone++
		thisRun++
		_ = c.em.publish(ctx, &demarchev1.FollowUpCheckInRecorded{CrisisId: in.GetCrisis().GetId(), Number: prog.GetCheckInsDone(), CheckIn: ci})
		switch ci.GetRecommendation() {
		case demarchev1.FollowUpRecommendation_FOLLOW_UP_RECOMMENDATION_RE_ESCALATE:
			c.signalParent(ctx, SignalRelapse, &demarchev1.CrisisRelapsed{CrisisId: in.GetCrisis().GetId(),
				Reason: fmt.Sprintf("check-in %d recommends re-escalation: %s", prog.GetCheckInsDone(), ci.GetTensions())})
		case demarchev1.FollowUpRecommendation_FOLLOW_UP_RECOMMENDATION_HAND_OVER:
			handedOver = true
		}
	}
	onWarning := func(w *demarchev1.Warning) {
		if w.GetSeverity() >= plan.GetRelapseSeverity() {
			c.signalParent(ctx, SignalRelapse, &demarchev1.CrisisRelapsed{CrisisId: in.GetCrisis().GetId(),
				Reason: fmt.Sprintf("relapse: new warning of severity %d from %s: %s", w.GetSeverity(), w.GetSource(), w.GetSummary())})
		}
	}

	for prog.GetCheckInsDone() < plan.GetCheckIns() && !handedOver {
		if thisRun >= plan.GetCheckInsPerRun() {
			// Take every signal already delivered to this run before moving on.
			for {
				var rec demarchev1.DecisionRecord
				if !decisions.ReceiveAsync(&rec) {
					break
				}
				onCheckIn(&rec)
			}
			for {
				var w demarchev1.Warning
				if !warnings.ReceiveAsync(&w) {
					break
				}
				onWarning(&w)
			}
			prog.EventSeq = int32(c.em.seq)
			prog.DeadlinesBreached = c.out.GetDeadlinesBreached()
			next := &demarchev1.StageWorkflowInput{
				Crisis: in.GetCrisis(), ParentWorkflowId: in.GetParentWorkflowId(), Playbook: in.GetPlaybook(),
				DrillPolicy: in.GetDrillPolicy(), Run: in.GetRun(), FollowUp: prog,
			}
			if prog.GetCheckInsDone() < plan.GetCheckIns() && !handedOver {
				return nil, workflow.NewContinueAsNewError(ctx, FollowUpWorkflow, next)
			}
			break
		}
		tctx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(tctx, max(prog.GetNextDue().AsTime().Sub(workflow.Now(ctx)), time.Millisecond))
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(f workflow.Future) {
			if f.Get(ctx, nil) != nil {
				return
			}
			prog.DueNotices++
			due := &demarchev1.CheckInDue{Number: prog.GetCheckInsDone() + 1, DueAt: prog.GetNextDue()}
			_ = c.em.publish(ctx, &demarchev1.FollowUpCheckInDue{CrisisId: in.GetCrisis().GetId(), Number: due.GetNumber(), DueAt: due.GetDueAt()})
			c.signalParent(ctx, SignalCheckInDue, due)
			prog.NextDue = timestamppb.New(prog.GetNextDue().AsTime().Add(interval))
		})
		sel.AddReceive(decisions, func(ch workflow.ReceiveChannel, _ bool) {
			var rec demarchev1.DecisionRecord
			ch.Receive(ctx, &rec)
			onCheckIn(&rec)
		})
		sel.AddReceive(warnings, func(ch workflow.ReceiveChannel, _ bool) {
			var w demarchev1.Warning
			ch.Receive(ctx, &w)
			onWarning(&w)
		})
		sel.Select(ctx)
		cancelTimer()
		if ctx.Err() != nil {
			return c.out, ctx.Err()
		}
	}
	c.out.CheckIns = prog.GetCheckInsDone()
	return c.out, nil
}
