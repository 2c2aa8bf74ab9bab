package crisis

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func drillInput(stage time.Duration) *demarchev1.CrisisWorkflowInput {
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	return &demarchev1.CrisisWorkflowInput{
		Crisis: &demarchev1.Crisis{
			Id: "GN-20261127-TEST1", Title: "Coup attempt", CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA,
			CrisisType: demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, Severity: 4,
			Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedAt: timestamppb.New(at), Drill: true,
		},
		DrillPolicy: &demarchev1.DrillPolicy{StageDuration: durationpb.New(stage)},
	}
}

// published records what the workflow asked the publish activity to emit.
type published struct {
	ids   []string
	kinds []string
}

func newEnv(t *testing.T, rec *published) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	acts := &Activities{}
	Register(env, acts)
	env.OnActivity(ActivityPublishEvent, mock.Anything, mock.Anything).Return(
		func(_ context.Context, req *demarchev1.PublishEventRequest) error {
			if err := req.Validate(); err != nil {
				return err
			}
			data, err := req.GetData().UnmarshalNew()
			if err != nil {
				return err
			}
			kind := string(data.ProtoReflect().Descriptor().Name())
			if se, ok := data.(*demarchev1.StageEntered); ok {
				kind += ":" + se.GetStage().Slug()
			}
			if sc, ok := data.(*demarchev1.StageCompleted); ok {
				kind += ":" + sc.GetStage().Slug()
			}
			rec.ids = append(rec.ids, req.GetEventId())
			rec.kinds = append(rec.kinds, kind)
			return nil
		})
	return env
}

func TestDrillWalksAllSixStagesInOrder(t *testing.T) {
	rec := &published{}
	env := newEnv(t, rec)
	const stage = 10 * time.Minute
	var midway *demarchev1.CrisisState
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryState)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		midway = &demarchev1.CrisisState{}
		if err := v.Get(midway); err != nil {
			t.Errorf("decode query: %v", err)
		}
	}, 2*stage+stage/2)
	env.ExecuteWorkflow(WorkflowName, drillInput(stage))
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow did not complete: %v", env.GetWorkflowError())
	}
	var want []string
	want = append(want, "CrisisOpened")
	for _, s := range demarchev1.LifecycleStages {
		want = append(want, "StageEntered:"+s.Slug(), "StageCompleted:"+s.Slug())
	}
	want = append(want, "CrisisClosed")
	if fmt.Sprint(rec.kinds) != fmt.Sprint(want) {
		t.Fatalf("events\n got %v\nwant %v", rec.kinds, want)
	}
	for i, id := range rec.ids {
		if wantID := fmt.Sprintf("GN-20261127-TEST1-%04d", i+1); id != wantID {
			t.Fatalf("event %d id %q, want %q (ids must be deterministic)", i, id, wantID)
		}
	}

	var final demarchev1.CrisisState
	if err := env.GetWorkflowResult(&final); err != nil {
		t.Fatal(err)
	}
	if final.GetCurrentStage() != demarchev1.Stage_STAGE_CLOSED || final.GetClosedAt() == nil {
		t.Fatalf("final stage %v", final.GetCurrentStage())
	}
	if len(final.GetTimeline()) != 6 {
		t.Fatalf("timeline has %d entries, want 6", len(final.GetTimeline()))
	}
	for i, r := range final.GetTimeline() {
		if r.GetStage() != demarchev1.LifecycleStages[i] || r.GetDuration().AsDuration() != stage {
			t.Fatalf("timeline[%d] = %v for %v, want %v for %v", i, r.GetStage(), r.GetDuration().AsDuration(), demarchev1.LifecycleStages[i], stage)
		}
	}
	if midway == nil || midway.GetCurrentStage() != demarchev1.Stage_STAGE_FACT_FINDING || len(midway.GetTimeline()) != 3 ||
		midway.GetTimeline()[2].GetCompletedAt() != nil {
		t.Fatalf("query at 2.5 stages: %v", midway)
	}
}

func TestInvalidInputFailsWithoutSideEffects(t *testing.T) {
	rec := &published{}
	env := newEnv(t, rec)
	in := drillInput(time.Minute)
	in.Crisis.Severity = 9
	env.ExecuteWorkflow(WorkflowName, in)
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrInvalidInput || !appErr.NonRetryable() {
		t.Fatalf("want a non-retryable %s error, got %v", ErrInvalidInput, err)
	}
	if len(rec.ids) != 0 {
		t.Fatalf("invalid input published %v", rec.kinds)
	}
}
