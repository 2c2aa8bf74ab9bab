package crisis

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// ErrInvalidInput is the application error type of a rejected workflow input.
const ErrInvalidInput = "InvalidInput"

// versionLifecycle marks runs that follow a playbook and wait for decisions.
// Runs recorded before it (DefaultVersion) replay on legacyDrill, unchanged.
const versionLifecycle = "lifecycle-playbooks"

// CrisisResponse is one crisis from warning to closure. New runs follow their
// playbook (runLifecycle); runs started before playbooks existed keep the
// original drill path, so their recorded histories still replay.
func CrisisResponse(ctx workflow.Context, in *demarchev1.CrisisWorkflowInput) (*demarchev1.CrisisState, error) {
	if err := in.Validate(); err != nil {
		return nil, invalidInput(err)
	}
	if workflow.GetVersion(ctx, versionLifecycle, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return legacyDrill(ctx, in)
	}
	return runLifecycle(ctx, in)
}

// legacyDrill walks the six stages in order, each completing by itself after
// the drill policy's stage duration. Kept for replaying histories recorded
// before playbooks (workflows/testdata/crisis_response_drill.json).
func legacyDrill(ctx workflow.Context, in *demarchev1.CrisisWorkflowInput) (*demarchev1.CrisisState, error) {
	if in.GetDrillPolicy() == nil {
		return nil, invalidInput(fmt.Errorf("drill_policy is required on the legacy drill path"))
	}
	crisis := in.GetCrisis()
	state := &demarchev1.CrisisState{Crisis: crisis}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (*demarchev1.CrisisState, error) {
		return proto.Clone(state).(*demarchev1.CrisisState), nil
	}); err != nil {
		return nil, fmt.Errorf("register query %s: %w", QueryState, err)
	}
	em := &emitter{crisis: crisis, prefix: crisis.GetId()}
	if err := upsertCrisisAttributes(ctx, crisis); err != nil {
		return nil, err
	}
	if err := em.publish(ctx, &demarchev1.CrisisOpened{Crisis: crisis}); err != nil {
		return nil, err
	}
	stageDuration := in.GetDrillPolicy().GetStageDuration().AsDuration()
	for _, stage := range demarchev1.LifecycleStages {
		now := workflow.Now(ctx)
		state.CurrentStage = stage
		rec := &demarchev1.StageRecord{Stage: stage, EnteredAt: timestamppb.New(now)}
		state.Timeline = append(state.Timeline, rec)
		if err := workflow.UpsertTypedSearchAttributes(ctx, temporalx.SAStage.ValueSet(stage.Slug())); err != nil {
			return nil, fmt.Errorf("enter %s: search attributes: %w", stage.Slug(), err)
		}
		if err := em.publish(ctx, &demarchev1.StageEntered{CrisisId: crisis.GetId(), Stage: stage, EnteredAt: rec.GetEnteredAt()}); err != nil {
			return nil, err
		}
		if err := workflow.Sleep(ctx, stageDuration); err != nil {
			return nil, fmt.Errorf("stage %s timer: %w", stage.Slug(), err)
		}
		now = workflow.Now(ctx)
		rec.CompletedAt = timestamppb.New(now)
		rec.Duration = durationpb.New(now.Sub(rec.GetEnteredAt().AsTime()))
		rec.Status = demarchev1.StageStatus_STAGE_STATUS_COMPLETED
		if err := em.publish(ctx, &demarchev1.StageCompleted{CrisisId: crisis.GetId(), Stage: stage, CompletedAt: rec.GetCompletedAt(), Duration: rec.GetDuration()}); err != nil {
			return nil, err
		}
	}
	now := workflow.Now(ctx)
	state.CurrentStage = demarchev1.Stage_STAGE_CLOSED
	state.ClosedAt = timestamppb.New(now)
	if err := workflow.UpsertTypedSearchAttributes(ctx, temporalx.SAStage.ValueSet(demarchev1.Stage_STAGE_CLOSED.Slug())); err != nil {
		return nil, fmt.Errorf("close: search attributes: %w", err)
	}
	if err := em.publish(ctx, &demarchev1.CrisisClosed{CrisisId: crisis.GetId(), ClosedAt: state.GetClosedAt()}); err != nil {
		return nil, err
	}
	return state, nil
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
