package crisis

// Child workflows: the stages that run for a while on their own. The crisis
// (parent) validates and records every decision, then forwards it here with
// SignalStageDecision; a child runs the stage's timers and side effects and
// reports deadlines, due check-ins and relapses back to the parent.

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/demarche/demarche/pkg/errs"
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
		return nil, errs.InvalidInput(fmt.Errorf("%s: crisis, parent_workflow_id and playbook are required", stage.Slug()))
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
	// What the parent does with the signal follows this child's events on
	// the stream (the outcome's report has no emitter: end flushed it).
	if c.em != nil {
		c.em.flush(ctx)
	}
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
			c.em.publishOrLog(ctx, ev)
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

// stageWorkflow is the signature of every stage's child workflow.
type stageWorkflow func(workflow.Context, *demarchev1.StageWorkflowInput) (*demarchev1.StageOutcome, error)

// reportsOutcome makes a stage workflow tell the crisis its outcome when it
// ends its stage (not when it continues as new, fails or is cancelled): the
// crisis finishes the stage on that signal, whichever of its runs receives it.
func reportsOutcome(fn stageWorkflow) stageWorkflow {
	return func(ctx workflow.Context, in *demarchev1.StageWorkflowInput) (*demarchev1.StageOutcome, error) {
		out, err := fn(ctx, in)
		if err != nil || out == nil {
			return out, err
		}
		out.Run = in.GetRun()
		(&stageChild{in: in}).signalParent(ctx, SignalStageOutcome, out)
		return out, nil
	}
}

// end returns the stage's outcome once every event it published is on the
// stream (a workflow's outbox dies with it).
func (c *stageChild) end(ctx workflow.Context, err error) (*demarchev1.StageOutcome, error) {
	c.em.flush(ctx)
	return c.out, err
}
