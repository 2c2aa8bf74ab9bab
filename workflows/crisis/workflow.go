package crisis

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// ErrInvalidInput is the application error type of a rejected workflow input.
const ErrInvalidInput = "InvalidInput"

// CrisisResponse drives one crisis through the six lifecycle stages in order,
// then closes it. Until human decisions exist, each stage completes by itself
// after the drill policy's stage duration (a durable timer).
func CrisisResponse(ctx workflow.Context, in *demarchev1.CrisisWorkflowInput) (*demarchev1.CrisisState, error) {
	if err := in.Validate(); err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, err)
	}
	if in.GetDrillPolicy() == nil {
		err := fmt.Errorf("drill_policy is required: human decisions are not available yet, stages advance by timer")
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, err)
	}
	r := &run{
		crisis: in.GetCrisis(),
		state:  &demarchev1.CrisisState{Crisis: in.GetCrisis()},
	}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (*demarchev1.CrisisState, error) {
		return proto.Clone(r.state).(*demarchev1.CrisisState), nil
	}); err != nil {
		return nil, fmt.Errorf("register query %s: %w", QueryState, err)
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// Publishing must eventually succeed (NATS may be restarting); the event
		// id makes every retry idempotent.
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{ErrInvalidInput},
		},
	})

	if err := upsertCrisisAttributes(ctx, r.crisis); err != nil {
		return nil, err
	}
	if err := r.publish(ctx, &demarchev1.CrisisOpened{Crisis: r.crisis}, workflow.Now(ctx)); err != nil {
		return nil, err
	}
	stageDuration := in.GetDrillPolicy().GetStageDuration().AsDuration()
	for _, stage := range demarchev1.LifecycleStages {
		if err := r.enter(ctx, stage); err != nil {
			return nil, err
		}
		if err := workflow.Sleep(ctx, stageDuration); err != nil {
			return nil, fmt.Errorf("stage %s timer: %w", stage.Slug(), err)
		}
		if err := r.complete(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.close(ctx, demarchev1.Outcome_OUTCOME_UNSPECIFIED); err != nil {
		return nil, err
	}
	return r.state, nil
}

// run is the workflow's in-memory state; it is rebuilt identically on replay.
type run struct {
	crisis *demarchev1.Crisis
	state  *demarchev1.CrisisState
	seq    int // events emitted so far: the event id suffix
}

func (r *run) enter(ctx workflow.Context, stage demarchev1.Stage) error {
	now := workflow.Now(ctx)
	r.state.CurrentStage = stage
	r.state.Timeline = append(r.state.Timeline, &demarchev1.StageRecord{Stage: stage, EnteredAt: timestamppb.New(now)})
	if err := workflow.UpsertTypedSearchAttributes(ctx, temporalx.SAStage.ValueSet(stage.Slug())); err != nil {
		return fmt.Errorf("enter %s: search attributes: %w", stage.Slug(), err)
	}
	return r.publish(ctx, &demarchev1.StageEntered{CrisisId: r.crisis.GetId(), Stage: stage, EnteredAt: timestamppb.New(now)}, now)
}

// complete ends the stage most recently entered.
func (r *run) complete(ctx workflow.Context) error {
	now := workflow.Now(ctx)
	rec := r.state.Timeline[len(r.state.Timeline)-1]
	rec.CompletedAt = timestamppb.New(now)
	rec.Duration = durationpb.New(now.Sub(rec.GetEnteredAt().AsTime()))
	return r.publish(ctx, &demarchev1.StageCompleted{
		CrisisId: r.crisis.GetId(), Stage: rec.GetStage(), CompletedAt: rec.GetCompletedAt(), Duration: rec.GetDuration(),
	}, now)
}

func (r *run) close(ctx workflow.Context, outcome demarchev1.Outcome) error {
	now := workflow.Now(ctx)
	r.state.CurrentStage = demarchev1.Stage_STAGE_CLOSED
	r.state.ClosedAt = timestamppb.New(now)
	r.state.Outcome = outcome
	if err := workflow.UpsertTypedSearchAttributes(ctx, temporalx.SAStage.ValueSet(demarchev1.Stage_STAGE_CLOSED.Slug())); err != nil {
		return fmt.Errorf("close: search attributes: %w", err)
	}
	return r.publish(ctx, &demarchev1.CrisisClosed{CrisisId: r.crisis.GetId(), ClosedAt: timestamppb.New(now), Outcome: outcome}, now)
}

// publish emits one event through the publish activity. The event id is the
// crisis id plus a sequence number: deterministic, so replays and retries
// produce the same id and the stream stores the event once.
func (r *run) publish(ctx workflow.Context, data proto.Message, at time.Time) error {
	r.seq++
	payload, err := anypb.New(data)
	if err != nil {
		return fmt.Errorf("pack %T: %w", data, err)
	}
	req := &demarchev1.PublishEventRequest{
		EventId:     fmt.Sprintf("%s-%04d", r.crisis.GetId(), r.seq),
		CrisisId:    r.crisis.GetId(),
		Region:      r.crisis.GetRegion(),
		CountryCode: r.crisis.GetCountryCode(),
		Time:        timestamppb.New(at),
		Data:        payload,
	}
	if err := workflow.ExecuteActivity(ctx, ActivityPublishEvent, req).Get(ctx, nil); err != nil {
		return fmt.Errorf("publish %s: %w", data.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

// crisisAttributes are the search attributes that describe a crisis.
func crisisAttributes(c *demarchev1.Crisis) []temporal.SearchAttributeUpdate {
	return []temporal.SearchAttributeUpdate{
		temporalx.SACountry.ValueSet(c.GetCountryCode()),
		temporalx.SARegion.ValueSet(c.GetRegion().Slug()),
		temporalx.SACrisisType.ValueSet(c.GetCrisisType().Slug()),
		temporalx.SASeverity.ValueSet(int64(c.GetSeverity())),
		temporalx.SAConfidentiality.ValueSet(c.GetConfidentiality().Slug()),
		temporalx.SADrill.ValueSet(c.GetDrill()),
	}
}

func upsertCrisisAttributes(ctx workflow.Context, c *demarchev1.Crisis) error {
	if err := workflow.UpsertTypedSearchAttributes(ctx, crisisAttributes(c)...); err != nil {
		return fmt.Errorf("search attributes: %w", err)
	}
	return nil
}
