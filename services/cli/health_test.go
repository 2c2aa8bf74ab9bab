package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natstest"
	"github.com/demarche/demarche/pkg/ports"
)

// `demarche serve NAME --health-listen` is ready once the service has bound
// its consumer with NATS connected, and stops cleanly (returns nil) when
// told to, its readiness gone first.
func TestServeHealthAndStop(t *testing.T) {
	bus := natstest.NewBus(t)
	port, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	root := NewRoot()
	root.SetArgs([]string{"serve", "eventlog", "--nats-url", bus.Server.URL(), "--health-listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--metrics-listen", "", "--log-level", "error"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	ready := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			ready = resp.StatusCode == http.StatusOK
			resp.Body.Close()
		}
	}
	if !ready {
		t.Fatalf("%s never answered 200", url)
	}
	cancel() // what SIGTERM does
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopping: %v, want a clean exit", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of being told to")
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("readiness still answers after the stop: %d", resp.StatusCode)
	}
}

// A start that fails because an engine is briefly unavailable is retried;
// any other failure is not.
func TestStartRetriesOnlyPassingFailures(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w: funding: read ledger of x: context deadline exceeded", errs.ErrUnavailable), true},
		{fmt.Errorf("bind: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("funding: %w", errs.ErrInvalid), false},
		{errors.New("nats: Authorization Violation"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	app := &App{Log: zap.NewNop()}
	calls := 0
	stop, err := startRetrying(context.Background(), app, func(context.Context) (func(), error) {
		calls++
		if calls < 3 {
			return nil, fmt.Errorf("%w: not yet", errs.ErrUnavailable)
		}
		return func() {}, nil
	})
	if err != nil || stop == nil || calls != 3 {
		t.Fatalf("after two passing failures: stop %v, err %v, %d calls; want started on the third", stop != nil, err, calls)
	}
	calls = 0
	if _, err := startRetrying(context.Background(), app, func(context.Context) (func(), error) {
		calls++
		return nil, errors.New("bad flag")
	}); err == nil || calls != 1 {
		t.Fatalf("a lasting failure: err %v after %d calls; want it returned at once", err, calls)
	}
}
