// Package crisis is the CrisisResponse workflow: one durable workflow per
// crisis, walking it through the lifecycle stages and publishing an event at
// every transition.
package crisis

import (
	"fmt"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Names callers use to reach the workflow. They are part of the public contract:
// renaming one breaks running workflows and committed histories.
const (
	// TaskQueue is where crisis workflows and their activities run.
	TaskQueue = "demarche-crisis"
	// WorkflowName is the registered workflow type.
	WorkflowName = "CrisisResponse"
	// QueryState returns the crisis's *demarchev1.CrisisState.
	QueryState = "crisis.state"
	// QueryAuthority returns the crisis's *demarchev1.CrisisAuthority: the
	// decisions that move money or people, recorded or in flight, which the
	// funding and roster services check a request against before acting.
	QueryAuthority = "crisis.authority"
	// ActivityPublishEvents publishes a workflow task's crisis events on the
	// bus (a *demarchev1.PublishEventBatch).
	ActivityPublishEvents = "PublishCrisisEvents"
	// ActivityPublishEvent published one crisis event: histories recorded
	// before events were batched hold it, and are still read.
	ActivityPublishEvent = "PublishCrisisEvent"
	// EventSource is the ce-source of the events the workflow emits.
	EventSource = "/demarche/workflows/crisis-response"
	// workflowIDPrefix + crisis id = workflow id.
	workflowIDPrefix = "crisis-"

	// UpdateDecide records a decision (*demarchev1.DecisionRequest) and returns
	// its *demarchev1.DecisionRecord; invalid decisions are rejected before
	// anything is written to history.
	UpdateDecide = "crisis.decide"

	// Operator controls (updates, each returning the *demarchev1.CrisisState
	// after it): an invalid control is refused with the rule that failed and
	// leaves no trace in the history. Each name is also its action in the
	// policy table (pkg/authz), which says the roles that may send it.
	UpdateEscalate    = "crisis.escalate"     // *demarchev1.SeverityControl
	UpdateDeEscalate  = "crisis.de-escalate"  // *demarchev1.SeverityControl
	UpdateSkipStage   = "crisis.skip-stage"   // *demarchev1.StageControl
	UpdateReopenStage = "crisis.reopen-stage" // *demarchev1.StageControl
	UpdatePartnerRole = "crisis.partner-role" // *demarchev1.PartnerRoleAck
	UpdateWarn        = "crisis.warn"         // *demarchev1.WarnControl
	UpdateShare       = "crisis.share"        // *demarchev1.SharingControl
	UpdateComment     = "crisis.comment"      // *demarchev1.CommentControl

	// Signals from machines: early warning (with signal-with-start), the
	// partners service, and a stage's child workflow. An invalid one is
	// refused and the refusal kept in the crisis state.
	SignalWarning    = "crisis.warning"      // *demarchev1.Warning
	SignalPartnerAck = "crisis.partner-ack"  // *demarchev1.PartnerRoleAck
	SignalRelapse    = "crisis.relapse"      // *demarchev1.CrisisRelapsed
	SignalDeadline   = "crisis.deadline"     // *demarchev1.DeadlineReport
	SignalCheckInDue = "crisis.check-in-due" // *demarchev1.CheckInDue
	// A stage's child workflow finished its stage (*demarchev1.StageOutcome).
	// A signal, not the child's result: the crisis may have continued as new
	// since it started the child, and a new run has no future to wait on.
	SignalStageOutcome = "crisis.stage-outcome"

	// From the crisis to a stage's child workflow.
	SignalStageDecision = "stage.decision" // *demarchev1.DecisionRecord
	SignalStageWarning  = "stage.warning"  // *demarchev1.Warning

	// Child workflows, one per stage that runs for a while on its own.
	FactFindingWorkflow = "FactFindingMission"
	EnvoyWorkflow       = "EnvoyDeployment"
	FundingWorkflow     = "RapidResponseFunding"
	FollowUpWorkflow    = "SustainedFollowUp"

	// Activity names as histories record them: the method names of
	// *Activities, which the workflows call by method value.
	ActivityDisburse           = "DisburseFunds"
	ActivityFileFundingRequest = "FileFundingRequest"
	ActivityDecideFunding      = "DecideFunding"
	ActivityReserveExperts     = "ReserveExperts"
	ActivityReleaseExperts     = "ReleaseExperts"
	ActivityPickExperts        = "PickExperts"
)

// stageWorkflows are the stages that run a child workflow of their own.
var stageWorkflows = map[demarchev1.Stage]string{
	demarchev1.Stage_STAGE_FACT_FINDING:           FactFindingWorkflow,
	demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT:       EnvoyWorkflow,
	demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING: FundingWorkflow,
	demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP:    FollowUpWorkflow,
}

// ChildWorkflowID is the id of one run of a stage's child workflow.
func ChildWorkflowID(crisisID string, stage demarchev1.Stage, run int32) string {
	return fmt.Sprintf("%s%s-%s-%d", workflowIDPrefix, crisisID, stage.Slug(), run)
}

// WorkflowID derives a crisis's workflow id from its crisis id, so the same
// crisis can never run twice.
func WorkflowID(crisisID string) string { return workflowIDPrefix + crisisID }

// Workflow versions (workflow.GetVersion change ids): behaviour added after
// v0.1.0, so that histories recorded before replay unchanged.
const (
	// VersionSeverityFollowsScore: a warning raises the crisis's severity to
	// its score_severity while the crisis is in its warning stage.
	VersionSeverityFollowsScore = "severity-follows-score"
)
