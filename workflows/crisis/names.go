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
	// ActivityPublishEvent publishes one crisis event on the bus.
	ActivityPublishEvent = "PublishCrisisEvent"
	// EventSource is the ce-source of the events the workflow emits.
	EventSource = "/demarche/workflows/crisis-response"
	// workflowIDPrefix + crisis id = workflow id.
	workflowIDPrefix = "crisis-"

	// UpdateDecide records a decision (*demarchev1.DecisionRequest) and returns
	// its *demarchev1.DecisionRecord; invalid decisions are rejected before
	// anything is written to history.
	UpdateDecide = "crisis.decide"

	// Operator controls (signals).
	SignalEscalate    = "crisis.escalate"     // *demarchev1.SeverityControl
	SignalDeEscalate  = "crisis.de-escalate"  // *demarchev1.SeverityControl
	SignalWarning     = "crisis.warning"      // *demarchev1.Warning
	SignalSkipStage   = "crisis.skip-stage"   // *demarchev1.StageControl
	SignalReopenStage = "crisis.reopen-stage" // *demarchev1.StageControl
	SignalPartnerRole = "crisis.partner-role" // *demarchev1.PartnerRoleAck

	// From a stage's child workflow to the crisis.
	SignalRelapse    = "crisis.relapse"      // *demarchev1.CrisisRelapsed
	SignalDeadline   = "crisis.deadline"     // *demarchev1.DeadlineReport
	SignalCheckInDue = "crisis.check-in-due" // *demarchev1.CheckInDue

	// From the crisis to a stage's child workflow.
	SignalStageDecision = "stage.decision" // *demarchev1.DecisionRecord
	SignalStageWarning  = "stage.warning"  // *demarchev1.Warning

	// Child workflows, one per stage that runs for a while on its own.
	FactFindingWorkflow = "FactFindingMission"
	EnvoyWorkflow       = "EnvoyDeployment"
	FundingWorkflow     = "RapidResponseFunding"
	FollowUpWorkflow    = "SustainedFollowUp"

	// ActivityDisburse pays an approved funding request, once per key.
	ActivityDisburse = "DisburseFunds"
	// Calls to the funding and roster services.
	ActivityFileFundingRequest = "FileFundingRequest"
	ActivityDecideFunding      = "DecideFunding"
	ActivityReserveExperts     = "ReserveExperts"
	ActivityReleaseExperts     = "ReleaseExperts"
	ActivityPickExperts        = "PickExperts"
)

// ChildWorkflowID is the id of one run of a stage's child workflow.
func ChildWorkflowID(crisisID string, stage demarchev1.Stage, run int32) string {
	return fmt.Sprintf("%s%s-%s-%d", workflowIDPrefix, crisisID, stage.Slug(), run)
}

// WorkflowID derives a crisis's workflow id from its crisis id, so the same
// crisis can never run twice.
func WorkflowID(crisisID string) string { return workflowIDPrefix + crisisID }
