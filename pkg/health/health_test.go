package health_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/demarche/demarche/pkg/health"
	"github.com/demarche/demarche/pkg/metrics"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// Ready only once started and while every check passes; not ready from the
// moment it stops; live throughout.
func TestReadiness(t *testing.T) {
	s, err := health.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var natsDown atomic.Bool
	s.Add("nats", func(context.Context) string {
		if natsDown.Load() {
			return "not connected"
		}
		return ""
	})
	if code, body := get(t, s.URL()+"/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("before Started: %d %q, want 503 starting", code, body)
	}
	if got := testutil.ToFloat64(metrics.Ready); got != 0 {
		t.Fatalf("demarche_ready before Started: %v, want 0", got)
	}
	s.Started()
	if got := testutil.ToFloat64(metrics.Ready); got != 1 {
		t.Fatalf("demarche_ready once started with its checks passing: %v, want 1", got)
	}
	if code, body := get(t, s.URL()+"/readyz"); code != 200 {
		t.Fatalf("started, NATS up: %d %q, want 200", code, body)
	}
	natsDown.Store(true)
	if code, body := get(t, s.URL()+"/readyz"); code != 503 || !strings.Contains(body, "nats: not connected") {
		t.Fatalf("NATS down: %d %q, want 503 naming nats", code, body)
	}
	if got := testutil.ToFloat64(metrics.Ready); got != 0 {
		t.Fatalf("demarche_ready with NATS down: %v, want 0", got)
	}
	natsDown.Store(false)
	get(t, s.URL()+"/readyz")
	if got := testutil.ToFloat64(metrics.Ready); got != 1 {
		t.Fatalf("demarche_ready with NATS back: %v, want 1", got)
	}
	s.Stopping()
	if got := testutil.ToFloat64(metrics.Ready); got != 0 {
		t.Fatalf("demarche_ready while stopping: %v, want 0", got)
	}
	if code, body := get(t, s.URL()+"/readyz"); code != 503 || !strings.Contains(body, "stopping") {
		t.Fatalf("stopping: %d %q, want 503 stopping", code, body)
	}
	if code, _ := get(t, s.URL()+"/healthz"); code != 200 {
		t.Fatalf("healthz while stopping: %d, want 200 (the process still runs)", code)
	}
}

// No address, no endpoint, and its methods are safe to call.
func TestOff(t *testing.T) {
	s, err := health.Serve("")
	if err != nil || s != nil {
		t.Fatalf("Serve(\"\") = %v, %v; want nil, nil", s, err)
	}
	s.Started()
	s.Stopping()
	s.Add("x", nil)
	s.Close()
	if s.URL() != "" {
		t.Fatal("a nil server has a URL")
	}
}
