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

// Register puts the workflow and its activities on a worker under their
// exported names.
func Register(w worker.Registry, acts *Activities) {
	RegisterWorkflows(w)
	w.RegisterActivityWithOptions(acts.PublishCrisisEvent, activity.RegisterOptions{Name: ActivityPublishEvent})
}

// RegisterWorkflows registers the workflows alone, e.g. on a replayer.
func RegisterWorkflows(w worker.WorkflowRegistry) {
	w.RegisterWorkflowWithOptions(CrisisResponse, workflow.RegisterOptions{Name: WorkflowName})
}
