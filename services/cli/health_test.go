package cli

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

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
