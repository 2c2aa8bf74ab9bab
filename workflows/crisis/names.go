// Package crisis is the CrisisResponse workflow: one durable workflow per
// crisis, walking it through the lifecycle stages and publishing an event at
// every transition.
package crisis

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
)

// WorkflowID derives a crisis's workflow id from its crisis id, so the same
// crisis can never run twice.
func WorkflowID(crisisID string) string { return workflowIDPrefix + crisisID }
