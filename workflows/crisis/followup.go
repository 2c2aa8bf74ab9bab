package crisis

// Sustained follow-up (the report's section IV.D:
// ¶56 "how diplomatic gains can be sustained";
// ¶57 "must remain available longer than has generally been the case";
// ¶19 "ongoing engagement by the Special Envoy to monitor progress"): months of
// presence after the acute phase. The SustainedFollowUp workflow makes a
// check-in due every interval; the desk officer records each (commitments
// implemented, tensions, a recommendation to continue, hand over to
// peacebuilding, ¶56 "national infrastructures for peace", or re-escalate). A
// new warning at the playbook's relapse severity, or a re-escalation
// recommended, re-escalates the crisis: one severity level up and good offices
// again. After check_ins_per_run check-ins the workflow continues as new, so
// its history stays bounded.

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// followUpRun counts the check-ins made due and recorded in a follow-up run.
type followUpRun struct {
	due, done int32
}

func followUpOf(r *stageRun) *followUpRun { return r.state.(*followUpRun) }

func carriedFollowUp(cr *demarchev1.CarriedStageRun) stageState {
	return &followUpRun{due: cr.GetFollowUpDue(), done: cr.GetFollowUpDone()}
}

func (f *followUpRun) carry(cr *demarchev1.CarriedStageRun) {
	cr.FollowUpDue, cr.FollowUpDone = f.due, f.done
}

// followUpState is where a running follow-up stands, for the query: the
// next check-in's due time follows the stage workflow's schedule (one every
// interval from the run's start; a check-in recorded early does not move
// it), read at the workflow's time, which a due notice's signal has moved
// past the notice's own due time. Nil when follow-up is not running. Only
// the query reads it: no command, no history.
func (l *lifecycle) followUpState(ctx workflow.Context) *demarchev1.FollowUpState {
	r := l.activeRun(demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP)
	if r == nil || r.rec.GetStatus() != demarchev1.StageStatus_STAGE_STATUS_RUNNING {
		return nil
	}
	plan := l.pb.GetFollowUp()
	fs := &demarchev1.FollowUpState{CheckInsDone: followUpOf(r).done, CheckInsPlanned: plan.GetCheckIns()}
	interval := scaled(plan.GetInterval().AsDuration(), l.drill)
	if start := r.rec.GetEnteredAt(); start != nil && interval > 0 {
		n := workflow.Now(ctx).Sub(start.AsTime())/interval + 1
		fs.NextDueAt = timestamppb.New(start.AsTime().Add(n * interval))
	}
	return fs
}

var followUpCheckIn = decisionKind(&decisionType{
	kind: "follow-up-check-in", stage: demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP,
	role: demarchev1.Role_ROLE_DESK_OFFICER, who: "desk officer",
	describe: func(r *demarchev1.DecisionRequest) string {
		c := r.GetFollowUpCheckIn()
		return fmt.Sprintf("follow-up check-in: commitments implemented %v, recommendation %s", c.GetCommitmentsImplemented(), c.GetRecommendation().Slug())
	},
	apply: func(d *decisionCtx) effect {
		followUpOf(d.run).done++
		return toStageWorkflow
	},
	pending: func(_ *lifecycle, r *stageRun) []waiting {
		if f := followUpOf(r); f.due <= f.done {
			return nil
		}
		return []waiting{{}}
	},
	drill: func(workflow.Context, *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_FollowUpCheckIn{FollowUpCheckIn: &demarchev1.FollowUpCheckIn{
			CommitmentsImplemented: true, Recommendation: demarchev1.FollowUpRecommendation_FOLLOW_UP_RECOMMENDATION_CONTINUE}}}, nil
	},
})

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
		c.em.publishOrLog(ctx, &demarchev1.FollowUpCheckInRecorded{CrisisId: in.GetCrisis().GetId(), Number: prog.GetCheckInsDone(), CheckIn: ci})
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
			// Take every signal already delivered to this run before moving
			// on, and publish what they made: waiting for the stream yields,
			// so take again what arrived meanwhile, until nothing did.
			for {
				took := false
				for {
					var rec demarchev1.DecisionRecord
					if !decisions.ReceiveAsync(&rec) {
						break
					}
					onCheckIn(&rec)
					took = true
				}
				for {
					var w demarchev1.Warning
					if !warnings.ReceiveAsync(&w) {
						break
					}
					onWarning(&w)
					took = true
				}
				if !took && c.em.idle() {
					break
				}
				c.em.flush(ctx)
			}
			prog.EventSeq = int32(c.em.seq)
			prog.DeadlinesBreached = c.out.GetDeadlinesBreached()
			next := &demarchev1.StageWorkflowInput{
				Crisis: in.GetCrisis(), ParentWorkflowId: in.GetParentWorkflowId(), Playbook: in.GetPlaybook(),
				DrillPolicy: in.GetDrillPolicy(), Run: in.GetRun(), FollowUp: prog,
			}
			if prog.GetCheckInsDone() < plan.GetCheckIns() && !handedOver {
				return nil, workflow.NewContinueAsNewError(ctx, FollowUpWorkflow, next) // the outbox was flushed above
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
			c.em.publishOrLog(ctx, &demarchev1.FollowUpCheckInDue{CrisisId: in.GetCrisis().GetId(), Number: due.GetNumber(), DueAt: due.GetDueAt()})
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
			return c.end(ctx, ctx.Err())
		}
	}
	c.out.CheckIns = prog.GetCheckInsDone()
	return c.end(ctx, nil)
}
