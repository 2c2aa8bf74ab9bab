package crisis

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Activities are the crisis workflow's side effects. Each is idempotent.
type Activities struct {
	Bus *eventbus.Publisher
}

// PublishCrisisEvent publishes one event on the crisis stream. The event id set
// by the workflow is the Nats-Msg-Id, so a retry after a lost acknowledgement
// stores nothing twice.
func (a *Activities) PublishCrisisEvent(ctx context.Context, req *demarchev1.PublishEventRequest) error {
	if err := req.Validate(); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, err)
	}
	data, err := req.GetData().UnmarshalNew()
	if err != nil {
		err = fmt.Errorf("event %s: unpack data %s: %w", req.GetEventId(), req.GetData().GetTypeUrl(), err)
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, err)
	}
	route := eventbus.Route{Region: req.GetRegion(), Country: req.GetCountryCode(), CrisisID: req.GetCrisisId()}
	dup, err := a.Bus.Publish(ctx, route, eventbus.Event{
		ID:      req.GetEventId(),
		Source:  EventSource,
		Subject: req.GetCrisisId(),
		Time:    req.GetTime().AsTime(),
		Data:    data,
	})
	if err != nil {
		return fmt.Errorf("publish crisis event: %w", err)
	}
	if dup {
		activity.GetLogger(ctx).Info("event already on the stream; stored once", "event_id", req.GetEventId())
	}
	return nil
}

// DisburseFunds pays an approved request. Until the funding service exists it
// records the disbursement as a FundsDisbursed event whose id is the
// disbursement key, so a retried disbursement is stored, and paid, once.
func (a *Activities) DisburseFunds(ctx context.Context, req *demarchev1.DisburseRequest) (*demarchev1.FundsDisbursed, error) {
	paid := &demarchev1.FundsDisbursed{
		CrisisId: req.GetCrisisId(), RequestId: req.GetRequest().GetRequestId(), Fund: req.GetRequest().GetFund(),
		AmountUsd: req.GetRequest().GetAmountUsd(), DisbursementKey: req.GetDisbursementKey(),
	}
	if err := paid.Validate(); err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, err)
	}
	route := eventbus.Route{Region: req.GetRegion(), Country: req.GetCountryCode(), CrisisID: req.GetCrisisId()}
	if _, err := a.Bus.Publish(ctx, route, eventbus.Event{
		ID: req.GetDisbursementKey(), Source: EventSource, Subject: req.GetCrisisId(), Time: activity.GetInfo(ctx).StartedTime, Data: paid,
	}); err != nil {
		return nil, fmt.Errorf("record disbursement %s: %w", req.GetDisbursementKey(), err)
	}
	return paid, nil
}

// Register puts the workflow and its activities on a worker under their
// exported names.
func Register(w worker.Registry, acts *Activities) {
	RegisterWorkflows(w)
	w.RegisterActivityWithOptions(acts.PublishCrisisEvent, activity.RegisterOptions{Name: ActivityPublishEvent})
	w.RegisterActivityWithOptions(acts.DisburseFunds, activity.RegisterOptions{Name: ActivityDisburse})
}

// RegisterWorkflows registers the workflows alone, e.g. on a replayer.
func RegisterWorkflows(w worker.WorkflowRegistry) {
	w.RegisterWorkflowWithOptions(CrisisResponse, workflow.RegisterOptions{Name: WorkflowName})
	w.RegisterWorkflowWithOptions(FactFindingMission, workflow.RegisterOptions{Name: FactFindingWorkflow})
	w.RegisterWorkflowWithOptions(EnvoyDeployment, workflow.RegisterOptions{Name: EnvoyWorkflow})
	w.RegisterWorkflowWithOptions(RapidResponseFunding, workflow.RegisterOptions{Name: FundingWorkflow})
	w.RegisterWorkflowWithOptions(SustainedFollowUp, workflow.RegisterOptions{Name: FollowUpWorkflow})
}
