package crisis

// The engine of the crisis workflow: it walks the playbook's phases, runs the
// stages of a phase side by side, and dispatches decisions to their types
// (decision.go and one file per stage) and controls to controls.go. What a
// stage means lives in the stage's own file, not here.

import (
	"errors"
	"fmt"
	"strings"

	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// lifecycle is the crisis workflow's state; rebuilt identically on replay.
type lifecycle struct {
	wfID     string
	crisis   *demarchev1.Crisis
	pb       *demarchev1.Playbook
	drill    *demarchev1.DrillPolicy
	em       *emitter
	timeline []*demarchev1.StageRecord
	active   []*stageRun
	runs     map[demarchev1.Stage]int32
	reached  map[demarchev1.Stage]bool
	skipped  map[demarchev1.Stage]string // skipped before they were reached

	decisions []*demarchev1.DecisionRecord
	deadlines []*demarchev1.DeadlineState
	partners  []*demarchev1.PartnerRoleAck
	warnings  []*demarchev1.Warning
	refused   []*demarchev1.RefusedSignal
	comments  []*demarchev1.Comment
	// outside is a decision whose service call is in flight and which no
	// stage run holds: it opens its stage once recorded, or belongs to none
	// (decision.go).
	outside   *demarchev1.DecisionRecord
	disbursed int64
	closing   bool
	closure   *demarchev1.DecisionRecord
	closedAt  *timestamppb.Timestamp
	figures   *demarchev1.ClosureFigures

	// phase is the playbook phase running (carried over, with the rest).
	phase int
	// cont is the continue-as-new bookkeeping (continueasnew.go).
	cont continuation
}

// CrisisResponse is one crisis from warning to closure: it follows its
// playbook, phases in order and the stages of a phase side by side, each
// waiting for the decisions people take (or, in a drill, the drill policy),
// then closes with its figures.
func CrisisResponse(ctx workflow.Context, in *demarchev1.CrisisWorkflowInput) (*demarchev1.CrisisState, error) {
	if err := in.Validate(); err != nil {
		return nil, errs.InvalidInput(err)
	}
	if in.GetPlaybook() == nil {
		return nil, errs.InvalidInput(errors.New("playbook is required: open crises with crisis.Open, which copies the crisis type's playbook"))
	}
	l := &lifecycle{
		wfID:    workflow.GetInfo(ctx).WorkflowExecution.ID,
		crisis:  proto.Clone(in.GetCrisis()).(*demarchev1.Crisis),
		pb:      in.GetPlaybook(),
		drill:   in.GetDrillPolicy(),
		runs:    map[demarchev1.Stage]int32{},
		reached: map[demarchev1.Stage]bool{},
		skipped: map[demarchev1.Stage]string{},
		cont:    newContinuation(ctx, in),
	}
	if l.drill != nil {
		l.crisis.Drill = true // drills are always marked, and kept out of real figures
	}
	l.em = &emitter{crisis: l.crisis, prefix: l.crisis.GetId()}
	carried := in.GetCarryOver() != nil
	if carried {
		l.restore(ctx, in.GetCarryOver())
	}
	if err := l.registerHandlers(ctx); err != nil {
		return nil, err
	}
	workflow.Go(ctx, l.serveSignals)
	if l.drill != nil {
		workflow.Go(ctx, l.runDrillPolicy)
	}

	if !carried {
		if err := ensureCrisisAttributes(ctx, l.crisis); err != nil {
			return nil, err
		}
		if err := l.em.publish(ctx, &demarchev1.CrisisOpened{Crisis: l.crisis}); err != nil {
			return nil, err
		}
	}
	phases := l.pb.GetPhases()
	for ; l.phase < len(phases); l.phase++ {
		// A carried-over run resumes in a phase whose stages it already entered.
		if !carried {
			for _, spec := range phases[l.phase].GetStages() {
				if reason, ok := l.skipped[spec.GetStage()]; ok {
					l.recordSkippedAhead(ctx, spec.GetStage(), reason)
					continue
				}
				// A stage a decision opened beside the phases before its own
				// phase came: still running, the phase takes it over; ended,
				// it is not run again (reopen it if more is needed).
				if r := l.activeRun(spec.GetStage()); r != nil {
					r.beside = false
					continue
				}
				if l.runs[spec.GetStage()] > 0 {
					continue
				}
				if err := l.launch(ctx, l.enter(ctx, spec, "")); err != nil {
					return nil, err
				}
			}
		}
		carried = false
		if err := l.wait(ctx, func() bool { return !l.phaseRunning() }); err != nil {
			return nil, err
		}
	}
	l.closing = true
	if err := l.wait(ctx, func() bool { return l.closure != nil && len(l.active) == 0 }); err != nil {
		return nil, err
	}
	if err := l.close(ctx); err != nil {
		return nil, err
	}
	// Let update handlers finish, and every event reach the stream, before
	// completing.
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return nil, err
	}
	l.em.flush(ctx)
	return l.snapshot(ctx), nil
}

// registerHandlers answers the state query, the decide update and the
// operator controls.
func (l *lifecycle) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (*demarchev1.CrisisState, error) { return l.snapshot(ctx), nil }); err != nil {
		return fmt.Errorf("register query %s: %w", QueryState, err)
	}
	if err := workflow.SetQueryHandler(ctx, QueryAuthority, func() (*demarchev1.CrisisAuthority, error) { return l.authority(), nil }); err != nil {
		return fmt.Errorf("register query %s: %w", QueryAuthority, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecide,
		func(ctx workflow.Context, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error) {
			return l.decide(ctx, req, false)
		},
		workflow.UpdateHandlerOptions{Validator: l.validateUpdate},
	); err != nil {
		return fmt.Errorf("register update %s: %w", UpdateDecide, err)
	}
	return l.registerControls(ctx)
}

// phaseRunning says whether a run of the phase is still active; runs opened
// beside the phases do not hold the phase (closure waits for them).
func (l *lifecycle) phaseRunning() bool {
	for _, r := range l.active {
		if !r.beside {
			return true
		}
	}
	return false
}

// specOf is the playbook's spec of a stage, or, for a stage the playbook does
// not run (added by a decision), a spec with no decision deadline.
func (l *lifecycle) specOf(stage demarchev1.Stage) *demarchev1.StageSpec {
	if s := l.spec(stage); s != nil {
		return s
	}
	return &demarchev1.StageSpec{Stage: stage}
}

// spec is the playbook's spec of a stage (nil when the playbook has none).
func (l *lifecycle) spec(stage demarchev1.Stage) *demarchev1.StageSpec {
	for _, ph := range l.pb.GetPhases() {
		for _, s := range ph.GetStages() {
			if s.GetStage() == stage {
				return s
			}
		}
	}
	return nil
}

// activeRun is the running run of a stage; a run that is finishing (its
// completion event on the way) no longer counts.
func (l *lifecycle) activeRun(stage demarchev1.Stage) *stageRun {
	for _, r := range l.active {
		if r.rec.GetStage() == stage && r.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			return r
		}
	}
	return nil
}

func (l *lifecycle) activeList() string {
	if len(l.active) == 0 {
		return "none"
	}
	names := make([]string, len(l.active))
	for i, r := range l.active {
		names[i] = r.rec.GetStage().Slug()
	}
	return strings.Join(names, ", ")
}

// enter puts a stage run in the state (timeline, active set) at once, so the
// next validator already sees it running; launch then announces and runs it.
func (l *lifecycle) enter(ctx workflow.Context, spec *demarchev1.StageSpec, reopenReason string) *stageRun {
	stage := spec.GetStage()
	l.runs[stage]++
	l.reached[stage] = true
	run := newStageRun(&demarchev1.StageRecord{
		Stage: stage, EnteredAt: timestamppb.New(workflow.Now(ctx)), Status: demarchev1.StageStatus_STAGE_STATUS_RUNNING,
		Run: l.runs[stage], Reason: reopenReason,
	}, spec, nil)
	l.timeline = append(l.timeline, run.rec)
	l.active = append(l.active, run)
	return run
}

// launch announces an entered stage (search attribute, event), starts its
// decision deadline and the child workflow of the stages that have one.
func (l *lifecycle) launch(ctx workflow.Context, run *stageRun) error {
	stage, spec := run.rec.GetStage(), run.spec
	if err := workflow.UpsertTypedSearchAttributes(ctx, l.stageAttributes(stage)...); err != nil {
		return fmt.Errorf("enter %s: search attributes: %w", stage.Slug(), err)
	}
	if err := l.em.publish(ctx, &demarchev1.StageEntered{CrisisId: l.crisis.GetId(), Stage: stage, EnteredAt: run.rec.GetEnteredAt()}); err != nil {
		return err
	}
	if spec.GetDeadline() != nil {
		run.deadline = newDeadline(ctx, stage.Slug()+" decision", stage, spec.GetDeadline(), l.drill)
		l.deadlines = append(l.deadlines, run.deadline)
		run.stopDl = watchDeadline(ctx, run.deadline, l.deadlineChanged)
	}
	childType, ok := stageWorkflows[stage]
	if !ok {
		return nil
	}
	cctx, cancel := workflow.WithCancel(ctx)
	run.cancel = cancel
	run.childID = ChildWorkflowID(l.crisis.GetId(), stage, run.rec.GetRun())
	// Abandon: the child outlives this run when the crisis continues as new
	// (the next run reaches it by id); it reports its outcome by signal.
	cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{
		WorkflowID: run.childID, TaskQueue: TaskQueue, ParentClosePolicy: enums.PARENT_CLOSE_POLICY_ABANDON,
	})
	run.child = workflow.ExecuteChildWorkflow(cctx, childType, &demarchev1.StageWorkflowInput{
		Crisis: l.crisis, ParentWorkflowId: l.wfID, Playbook: l.pb, DrillPolicy: l.drill, Run: run.rec.GetRun(),
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		// Started, or failed to start: either way nothing is pending.
		_ = run.child.GetChildWorkflowExecution().Get(ctx, nil)
		run.started = true
		err := run.child.Get(ctx, nil)
		if err != nil && run.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			workflow.GetLogger(ctx).Error("stage child failed; the stage stays open for an operator to skip or reopen", "stage", stage.Slug(), "error", err)
		}
	})
	return nil
}

// stageDone finishes the stage run a child workflow reports done.
func (l *lifecycle) stageDone(ctx workflow.Context, out *demarchev1.StageOutcome) {
	for _, r := range l.active {
		if r.rec.GetStage() == out.GetStage() && r.rec.GetRun() == out.GetRun() && r.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			l.disbursed += out.GetDisbursedUsd()
			l.finish(ctx, r, demarchev1.StageStatus_STAGE_STATUS_COMPLETED, "")
			return
		}
	}
	// Skipped meanwhile, or already finished: nothing to do.
}

// finish ends a stage run, completed or skipped.
func (l *lifecycle) finish(ctx workflow.Context, run *stageRun, status demarchev1.StageStatus, reason string) {
	now := workflow.Now(ctx)
	run.rec.Status = status
	run.rec.CompletedAt = timestamppb.New(now)
	run.rec.Duration = durationpb.New(now.Sub(run.rec.GetEnteredAt().AsTime()))
	if reason != "" {
		run.rec.Reason = reason
	}
	if run.stopDl != nil {
		final := demarchev1.DeadlineStatus_DEADLINE_STATUS_MET
		if status == demarchev1.StageStatus_STAGE_STATUS_SKIPPED {
			final = demarchev1.DeadlineStatus_DEADLINE_STATUS_CANCELLED
		}
		run.stopDl(final)
	}
	if status == demarchev1.StageStatus_STAGE_STATUS_SKIPPED {
		switch {
		case run.cancel != nil:
			run.cancel()
		case run.external: // started by an earlier run; one that has ended has nothing to cancel
			if err := workflow.RequestCancelExternalWorkflow(ctx, run.childID, "").Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Warn("skipped stage's workflow not cancelled", "child", run.childID, "error", err)
			}
		}
	}
	if status == demarchev1.StageStatus_STAGE_STATUS_COMPLETED {
		// Published before the run leaves the active set, so the next phase's
		// StageEntered always follows this StageCompleted on the stream.
		l.em.publishOrLog(ctx, &demarchev1.StageCompleted{
			CrisisId: l.crisis.GetId(), Stage: run.rec.GetStage(), CompletedAt: run.rec.GetCompletedAt(), Duration: run.rec.GetDuration(),
		})
	}
	for i, r := range l.active {
		if r == run {
			l.active = append(l.active[:i], l.active[i+1:]...)
			break
		}
	}
	if cur := l.currentStage(); cur != demarchev1.Stage_STAGE_UNSPECIFIED {
		if err := workflow.UpsertTypedSearchAttributes(ctx, l.stageAttributes(cur)...); err != nil {
			// As in crisisChanged: only attributes the SDK cannot encode fail.
			workflow.GetLogger(ctx).Error("stage search attributes not updated", "stage", cur.Slug(), "error", err)
		}
	}
}

func (l *lifecycle) recordSkippedAhead(ctx workflow.Context, stage demarchev1.Stage, reason string) {
	now := timestamppb.New(workflow.Now(ctx))
	l.runs[stage]++
	l.reached[stage] = true
	l.timeline = append(l.timeline, &demarchev1.StageRecord{
		Stage: stage, EnteredAt: now, CompletedAt: now, Duration: durationpb.New(0),
		Status: demarchev1.StageStatus_STAGE_STATUS_SKIPPED, Reason: reason, Run: l.runs[stage],
	})
}

// currentStage is the most recently entered stage still running.
func (l *lifecycle) currentStage() demarchev1.Stage {
	if l.closedAt != nil {
		return demarchev1.Stage_STAGE_CLOSED
	}
	if n := len(l.active); n > 0 {
		return l.active[n-1].rec.GetStage()
	}
	return demarchev1.Stage_STAGE_UNSPECIFIED
}

func (l *lifecycle) deadlineChanged(ctx workflow.Context, d *demarchev1.DeadlineState) {
	if ev := deadlineEvent(l.crisis.GetId(), d); ev != nil {
		l.em.publishOrLog(ctx, ev)
	}
}

// snapshot is the query answer: a copy, so callers never share workflow state.
func (l *lifecycle) snapshot(ctx workflow.Context) *demarchev1.CrisisState {
	st := &demarchev1.CrisisState{
		Crisis: l.crisis, CurrentStage: l.currentStage(), Timeline: l.timeline, ClosedAt: l.closedAt,
		Playbook: l.pb.GetName(), PlaybookVersion: l.pb.GetVersion(), PendingDecisions: l.pendingDecisions(),
		Deadlines: l.deadlines, Partners: l.partners, Decisions: l.decisions, Warnings: l.warnings, Figures: l.figures,
		RefusedSignals: l.refused, WorkflowRuns: l.cont.runsBefore + 1, Comments: l.comments,
	}
	st.Engagements, st.PublicEngagements = l.engagements()
	st.CouncilActions = l.councilActions()
	if l.closure != nil {
		st.Outcome = l.closure.GetRequest().GetClosure().GetOutcome()
		st.Lessons = l.closure.GetRequest().GetClosure().GetLessons()
		st.HandOverTo = l.closure.GetRequest().GetClosure().GetHandOverTo()
		st.HandOverPartner = l.closure.GetRequest().GetClosure().GetHandOverPartner()
	}
	for _, r := range l.active {
		if r.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			st.ActiveStages = append(st.ActiveStages, r.rec.GetStage())
		}
	}
	st.FollowUp = l.followUpState(ctx)
	return proto.Clone(st).(*demarchev1.CrisisState)
}
