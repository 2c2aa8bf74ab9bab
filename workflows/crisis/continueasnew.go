package crisis

// Long crises stay within Temporal's limits (a chronic situation receives
// warnings daily for years): the crisis workflow continues as new when
// Temporal suggests it, or at the input's history guard, handing its whole
// state to the next run. It first lets every update handler, signal and
// publication under way finish and takes the signals already delivered, so
// nothing in flight is lost; the stages' child workflows outlive the run
// (parent-close policy abandon) and are reached by id from the next one.

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// continuation is a run's continue-as-new bookkeeping: when to hand over,
// what is under way that the hand-over waits for, and the signals that pass
// from one run to the next.
type continuation struct {
	// maxHistory is the input's history guard (0: only Temporal's suggestion).
	maxHistory int
	// runsBefore counts the runs of the crisis before this one.
	runsBefore int32
	// busy counts the signals and drill decisions being handled now (update
	// handlers are counted by Temporal).
	busy int
	// drainers take a signal of each kind already delivered, without waiting
	// (false: none left); takers apply a signal an earlier run handed over.
	drainers []func(workflow.Context) bool
	takers   map[string]func(workflow.Context, *anypb.Any)
	// handingOver: the run is about to continue as new; signals received
	// now are kept for the next run (deferred) instead of applied.
	handingOver bool
	// handOver tells serveSignals to stop selecting; signalsStopped: it has.
	handOver       workflow.Channel
	signalsStopped bool
	deferred       []*demarchev1.DeferredSignal
	handedOver     []*demarchev1.DeferredSignal // from the run before, not yet applied
}

func newContinuation(ctx workflow.Context, in *demarchev1.CrisisWorkflowInput) continuation {
	return continuation{
		maxHistory: int(in.GetMaxHistoryEvents()),
		runsBefore: in.GetCarryOver().GetRunsBefore(),
		handedOver: in.GetCarryOver().GetSignals(),
		takers:     map[string]func(workflow.Context, *anypb.Any){},
		handOver:   workflow.NewBufferedChannel(ctx, 1),
	}
}

// historyFull reports whether this run should hand over to a new one.
func (c *continuation) historyFull(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || (c.maxHistory > 0 && info.GetCurrentHistoryLength() >= c.maxHistory)
}

// signals are the signals the next run applies first: what the run before
// handed over and this one did not apply, then what this one deferred.
func (c *continuation) signals() []*demarchev1.DeferredSignal {
	return append(slices.Clip(c.handedOver), c.deferred...)
}

// wait blocks until cond holds, continuing as new (an error that ends the
// run) if the history fills up first.
func (l *lifecycle) wait(ctx workflow.Context, cond func() bool) error {
	if err := workflow.Await(ctx, func() bool { return cond() || (l.closure == nil && l.cont.historyFull(ctx)) }); err != nil {
		return err
	}
	if cond() {
		return nil
	}
	return l.continueAsNew(ctx)
}

// quiet: no update handler running, no signal or drill decision being
// handled, no batch of events in flight (events not yet sent are carried
// over), every stage workflow started.
func (l *lifecycle) quiet(ctx workflow.Context) bool {
	if !workflow.AllHandlersFinished(ctx) || l.cont.busy > 0 || l.em.sending {
		return false
	}
	for _, r := range l.active {
		if r.child != nil && !r.started && r.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			return false
		}
	}
	return true
}

// continueAsNew waits for quiet, hands over the signals already delivered,
// then returns the error that starts the next run with the state carried
// over. Draining does not yield, so nothing can arrive unseen between the
// last check and the return.
func (l *lifecycle) continueAsNew(ctx workflow.Context) error {
	// From now on signals are handed over, not applied: under a steady
	// stream of them the run would otherwise never be quiet.
	l.cont.handingOver = true
	l.cont.handOver.SendAsync(true)
	// Events still to publish go to the next run once the batch in flight
	// is done (a batch scheduled here and not completed would be lost).
	l.em.held = true
	if err := workflow.Await(ctx, func() bool { return l.cont.signalsStopped && l.quiet(ctx) }); err != nil {
		return err
	}
	for _, drain := range l.cont.drainers {
		for drain(ctx) {
		}
	}
	workflow.GetLogger(ctx).Info("crisis continues as new", "history_events", workflow.GetInfo(ctx).GetCurrentHistoryLength(), "runs_before", l.cont.runsBefore+1)
	next := &demarchev1.CrisisWorkflowInput{
		Crisis: l.crisis, DrillPolicy: l.drill, Playbook: l.pb, MaxHistoryEvents: int32(l.cont.maxHistory), CarryOver: l.carry(),
	}
	return workflow.NewContinueAsNewError(ctx, WorkflowName, next)
}

// carry is the state the next run resumes.
func (l *lifecycle) carry() *demarchev1.CrisisCarryOver {
	c := &demarchev1.CrisisCarryOver{
		Phase: int32(l.phase), Timeline: l.timeline, Decisions: l.decisions, Deadlines: l.deadlines,
		Partners: l.partners, Warnings: l.warnings, Refused: l.refused, DisbursedUsd: l.disbursed,
		EventSeq: int32(l.em.seq), RunsBefore: l.cont.runsBefore + 1, Unpublished: l.em.outbox, Signals: l.cont.signals(),
		Comments: l.comments,
	}
	if l.closing {
		c.Phase = int32(len(l.pb.GetPhases()))
	}
	// Maps in stage order: the input is the same on every replay.
	for _, st := range sortedStages(l.runs) {
		c.Runs = append(c.Runs, &demarchev1.StageCount{Stage: st, Count: l.runs[st]})
	}
	c.Reached = append(c.Reached, sortedStages(l.reached)...)
	for _, st := range sortedStages(l.skipped) {
		c.Skipped = append(c.Skipped, &demarchev1.SkippedStage{Stage: st, Reason: l.skipped[st]})
	}
	for _, r := range l.active {
		cr := &demarchev1.CarriedStageRun{
			TimelineIndex: int32(slices.Index(l.timeline, r.rec)), DeadlineRef: int32(slices.Index(l.deadlines, r.deadline) + 1),
			ChildWorkflowId: r.childID, Beside: r.beside,
		}
		if r.deadline == nil {
			cr.DeadlineRef = 0
		}
		if r.state != nil {
			r.state.carry(cr)
		}
		c.Active = append(c.Active, cr)
	}
	return c
}

func sortedStages[V any](m map[demarchev1.Stage]V) []demarchev1.Stage {
	out := make([]demarchev1.Stage, 0, len(m))
	for st := range m {
		out = append(out, st)
	}
	slices.Sort(out)
	return out
}

// restore resumes from the state an earlier run carried over: the stage
// runs still active get their deadline timers again (from their recorded
// marks, announcing none twice) and reach their child workflows by id.
func (l *lifecycle) restore(ctx workflow.Context, c *demarchev1.CrisisCarryOver) {
	l.phase = int(c.GetPhase())
	l.closing = l.phase >= len(l.pb.GetPhases())
	l.timeline, l.decisions, l.deadlines = c.GetTimeline(), c.GetDecisions(), c.GetDeadlines()
	l.partners, l.warnings, l.refused = c.GetPartners(), c.GetWarnings(), c.GetRefused()
	l.comments = c.GetComments()
	l.disbursed, l.em.seq = c.GetDisbursedUsd(), int(c.GetEventSeq())
	l.em.outbox = c.GetUnpublished()
	l.em.start(ctx)
	for _, n := range c.GetRuns() {
		l.runs[n.GetStage()] = n.GetCount()
	}
	for _, st := range c.GetReached() {
		l.reached[st] = true
	}
	for _, s := range c.GetSkipped() {
		l.skipped[s.GetStage()] = s.GetReason()
	}
	for _, cr := range c.GetActive() {
		rec := l.timeline[cr.GetTimelineIndex()]
		run := newStageRun(rec, l.specOf(rec.GetStage()), cr)
		run.childID, run.started = cr.GetChildWorkflowId(), true
		run.external = run.childID != ""
		run.beside = cr.GetBeside()
		if ref := cr.GetDeadlineRef(); ref > 0 {
			run.deadline = l.deadlines[ref-1]
			run.stopDl = watchDeadline(ctx, run.deadline, l.deadlineChanged)
		}
		l.active = append(l.active, run)
	}
}

// deferSignal keeps a signal for the next run.
func (l *lifecycle) deferSignal(ctx workflow.Context, name string, arg proto.Message) {
	a, err := anypb.New(arg)
	if err != nil {
		l.refuse(ctx, name, fmt.Errorf("cannot hand over to the next run: %w", err))
		return
	}
	l.cont.deferred = append(l.cont.deferred, &demarchev1.DeferredSignal{Name: name, Arg: a})
}
