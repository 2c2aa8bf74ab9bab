package crisis

// A stage run as the engine (lifecycle.go) holds it: its record, deadline and
// child workflow, and behind one interface what a run of its kind of stage
// knows (the stage's own file declares that state and how it is carried over
// when the crisis continues as new). A new kind of stage with state of its
// own adds a line to stageStates, not a field here.

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// stageRun is one run of one stage.
type stageRun struct {
	rec      *demarchev1.StageRecord
	spec     *demarchev1.StageSpec
	deadline *demarchev1.DeadlineState
	stopDl   func(demarchev1.DeadlineStatus)
	cancel   workflow.CancelFunc
	child    workflow.ChildWorkflowFuture
	childID  string
	// external: the child was started by an earlier run of the crisis
	// (continue-as-new), so it is reached by id, not through child.
	external bool
	// started: the child workflow is running (or was started by an earlier run).
	started bool
	// A decision whose service call is in flight; validators refuse a second.
	inFlight string
	// inFlightRec is that decision as the authority query shows it.
	inFlightRec *demarchev1.DecisionRecord
	// beside: the run was opened beside the playbook's phases (a decision
	// added it, or opened it early), so the phase running does not wait for
	// it; when the stage's own phase comes, that phase takes it over.
	beside bool
	// state is what this kind of stage knows (nil for a kind that keeps
	// nothing of its own, such as warning or good offices).
	state stageState
}

// stageState is what a run of one kind of stage knows beyond its record: the
// decisions taken so far, which the stage's rules and pending list read.
type stageState interface {
	// carry writes the state into the run's carry-over (continue-as-new);
	// the stage's entry in stageStates reads it back.
	carry(cr *demarchev1.CarriedStageRun)
}

// stageStates make the state of a run of each kind of stage that keeps one,
// empty for a new run (cr nil) or as an earlier run of the crisis carried it.
// Keyed by stage and only ever looked up, never walked.
var stageStates = map[demarchev1.Stage]func(cr *demarchev1.CarriedStageRun) stageState{
	demarchev1.Stage_STAGE_FACT_FINDING:           carriedFactFinding,
	demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT:       carriedEnvoy,
	demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING: carriedFunding,
	demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP:    carriedFollowUp,
}

// newStageRun is a run of the record's stage with its kind's state: new
// (carried nil) or carried over from an earlier run of the crisis.
func newStageRun(rec *demarchev1.StageRecord, spec *demarchev1.StageSpec, carried *demarchev1.CarriedStageRun) *stageRun {
	run := &stageRun{rec: rec, spec: spec}
	if state, ok := stageStates[rec.GetStage()]; ok {
		run.state = state(carried)
	}
	return run
}

// signal sends the run's child workflow a signal, once it runs.
func (run *stageRun) signal(ctx workflow.Context, name string, arg any) error {
	if run.external {
		return workflow.SignalExternalWorkflow(ctx, run.childID, "", name, arg).Get(ctx, nil)
	}
	// A stage entered a moment ago may still be starting its workflow.
	if err := workflow.Await(ctx, func() bool { return run.child != nil }); err != nil {
		return err
	}
	if err := run.child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return fmt.Errorf("stage workflow %s not running: %w", run.childID, err)
	}
	return run.child.SignalChildWorkflow(ctx, name, arg).Get(ctx, nil)
}
