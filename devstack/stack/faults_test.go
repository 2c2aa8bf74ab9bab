package stack_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func TestWithoutRefusesWhatIsNotAService(t *testing.T) {
	_, err := stack.Start(context.Background(), stack.Config{DataDir: t.TempDir(), Without: []string{"worker", "gateway"}}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), `--without: "gateway"`) || !strings.Contains(err.Error(), "allowed: roster") {
		t.Fatalf("--without gateway: %v", err)
	}
}

// TestNATSRestartLosesNothing: the fault suite's NATS restart (demarche dev on
// SIGUSR1) keeps what JetStream held, on the same port, and the services
// reconnect by themselves; --without leaves the worker out.
func TestNATSRestartLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	dir := t.TempDir()
	log := fileLogger(t, t.TempDir())
	s, err := stack.Start(context.Background(), stack.Config{DataDir: dir, TemporalLogLevel: "error", NoUI: true, Without: []string{"worker"}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ctx := context.Background()
	_, js := jsOf(t, s)
	st, err := js.Stream(ctx, eventbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	before, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url := s.NATSURL()
	if err := s.RestartNATS(500*time.Millisecond, log); err != nil {
		t.Fatal(err)
	}
	if s.NATSURL() != url {
		t.Fatalf("NATS moved from %s to %s", url, s.NATSURL())
	}
	nc := natsConn(t, s)
	waitWithin(t, time.Minute, "the roster service answers again after the restart", func() bool {
		var resp demarchev1.RosterSearchResponse
		return natsrpc.Call(ctx, nc, natsrpc.RosterSearch, &demarchev1.RosterSearchRequest{}, &resp) == nil && len(resp.GetCandidates()) > 0
	})
	_, js2 := jsOf(t, s)
	st2, err := js2.Stream(ctx, eventbus.StreamName)
	if err != nil {
		t.Fatalf("the crisis stream after the restart: %v", err)
	}
	after, err := st2.Info(ctx)
	if err != nil || after.State.Msgs != before.State.Msgs || after.Config.Duplicates != before.Config.Duplicates {
		t.Fatalf("the stream changed across the restart: %+v -> %+v (%v)", before.State, after.State, err)
	}
}
