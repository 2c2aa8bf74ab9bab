// Package health serves a service process's liveness and readiness, for
// orchestrators (Kubernetes probes, compose healthchecks) and for the
// multi-process cluster test:
//
//   - /healthz answers 200 while the process runs (its event loop answers):
//     restart the process when it stops answering;
//   - /readyz answers 200 only when the service has bound its streams,
//     buckets and consumers (Started) and every check passes (its NATS
//     connection is up, Temporal answers its health check); 503 otherwise,
//     with the failing check named. It turns 503 as soon as the process
//     starts stopping (Stopping), so traffic leaves before the drain.
package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/demarche/demarche/pkg/metrics"
)

// Check says why a dependency is not ready ("" when it is).
type Check func(ctx context.Context) string

// Server is a running health endpoint.
type Server struct {
	srv      *http.Server
	done     chan struct{}
	closed   sync.Once
	url      string
	started  atomic.Bool
	stopping atomic.Bool
	mu       sync.Mutex
	checks   map[string]Check
}

// Serve listens on addr ("" turns it off: a nil *Server, whose methods do nothing).
func Serve(addr string) (*Server, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health: listen on %s: %w", addr, err)
	}
	s := &Server{url: "http://" + ln.Addr().String(), checks: map[string]Check{}, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "live") // a probe that went away: no one to tell
	})
	mux.HandleFunc("GET /readyz", s.ready)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }() // Serve returns when Close is called; a failed listener shows as failed probes
	go s.publish()
	return s, nil
}

// ReadyEvery is how often the readiness checks run for demarche_ready:
// Prometheus scrapes /metrics, not /readyz, so the process evaluates its own
// readiness and serves the answer as a gauge (1 ready, 0 not).
const ReadyEvery = 10 * time.Second

func (s *Server) publish() {
	t := time.NewTicker(ReadyEvery)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			metrics.Ready.Set(0)
			return
		case <-t.C:
			s.evaluate(context.Background())
		}
	}
}

// evaluate runs the checks once and sets demarche_ready from the answer.
func (s *Server) evaluate(ctx context.Context) []string {
	why := s.why(ctx)
	if len(why) == 0 {
		metrics.Ready.Set(1)
	} else {
		metrics.Ready.Set(0)
	}
	return why
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	why := s.evaluate(r.Context())
	if len(why) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "not ready: "+strings.Join(why, "; ")) // a probe that went away: no one to tell
		return
	}
	_, _ = fmt.Fprintln(w, "ready") // a probe that went away: no one to tell
}

// why says what keeps the process from being ready (nothing when it is).
func (s *Server) why(ctx context.Context) []string {
	var why []string
	switch {
	case s.stopping.Load():
		why = append(why, "stopping")
	case !s.started.Load():
		why = append(why, "starting: streams, buckets and consumers not bound yet")
	default:
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		s.mu.Lock()
		checks := make(map[string]Check, len(s.checks))
		for k, v := range s.checks {
			checks[k] = v
		}
		s.mu.Unlock()
		for name, c := range checks {
			if msg := c(ctx); msg != "" {
				why = append(why, name+": "+msg)
			}
		}
	}
	return why
}

// URL is the endpoint's base URL.
func (s *Server) URL() string {
	if s == nil {
		return ""
	}
	return s.url
}

// Add registers a readiness check under a name.
func (s *Server) Add(name string, c Check) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.checks[name] = c
	s.mu.Unlock()
}

// Started marks the service as having bound what it serves from
// (demarche_ready turns 1 once its checks pass, at once if they do; without
// a health endpoint, a nil *Server, at once: the process started).
func (s *Server) Started() {
	if s == nil {
		metrics.Ready.Set(1)
		return
	}
	s.started.Store(true)
	s.evaluate(context.Background())
}

// Stopping marks the process as stopping: /readyz answers 503 from now on,
// and demarche_ready is 0 (with or without a health endpoint).
func (s *Server) Stopping() {
	metrics.Ready.Set(0)
	if s != nil {
		s.stopping.Store(true)
	}
}

// Close stops the endpoint.
func (s *Server) Close() {
	if s != nil {
		s.closed.Do(func() { close(s.done) })
		_ = s.srv.Close() // stopping: nothing to do about a close error
	}
}
