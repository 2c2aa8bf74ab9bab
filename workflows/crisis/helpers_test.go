package crisis

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// publishBadThenGood publishes an event that cannot be packed (invalid UTF-8
// in a text), then one that can, and returns the last event number.
func publishBadThenGood(ctx workflow.Context) (int, error) {
	em := &emitter{crisis: &demarchev1.Crisis{Id: "GN-1"}, prefix: "GN-1"}
	em.publishOrLog(ctx, &demarchev1.WarningAttached{CrisisId: "GN-1", Warning: &demarchev1.Warning{Summary: "\xff"}})
	em.publishOrLog(ctx, &demarchev1.CrisisRelapsed{CrisisId: "GN-1", Reason: "worse"})
	em.flush(ctx)
	return em.seq, nil
}

// An event the workflow cannot pack is logged, naming its type, and left out
// unnumbered: the next event is number 1 and goes out, and the workflow goes on.
func TestUnpackableEventIsLoggedAndLeftOut(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(temporalx.SDKLogger(zap.New(core)))
	env := suite.NewTestWorkflowEnvironment()
	Register(env, &Activities{})
	env.RegisterWorkflow(publishBadThenGood)
	var sent []*demarchev1.PublishEventRequest
	env.OnActivity(ActivityPublishEvents, mock.Anything, mock.Anything).Return(
		func(_ context.Context, b *demarchev1.PublishEventBatch) (*demarchev1.PublishEventBatch, error) {
			sent = append(sent, b.GetEvents()...)
			return b, nil
		})
	env.ExecuteWorkflow(publishBadThenGood)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var seq int
	if err := env.GetWorkflowResult(&seq); err != nil {
		t.Fatal(err)
	}
	if seq != 1 || len(sent) != 1 || sent[0].GetData().MessageName() != "demarche.v1.CrisisRelapsed" {
		t.Fatalf("last number %d, sent %v: want only CrisisRelapsed, number 1", seq, sent)
	}
	left := logs.FilterMessageSnippet("cannot be packed").All()
	if len(left) != 1 || left[0].ContextMap()["event"] != "*demarchev1.WarningAttached" {
		t.Fatalf("logged %v, want one error naming *demarchev1.WarningAttached", left)
	}
}
