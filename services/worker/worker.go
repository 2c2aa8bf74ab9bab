// Package worker is the Temporal worker service: it runs the crisis workflows
// and their activities, which reach other services only over NATS.
package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/workflows/crisis"
)

// Config says where the worker's dependencies are.
type Config struct {
	NATSURL         string
	TemporalAddress string
	Namespace       string
	// OutsideWatchInterval is how often the worker looks for crisis runs
	// terminated, cancelled or reset outside Démarche (default 10s).
	OutsideWatchInterval time.Duration
	// WorkflowCacheSize is how many crisis and stage workflows the worker
	// keeps in memory between their workflow tasks (default
	// DefaultWorkflowCacheSize); see LimitWorkflowCache.
	WorkflowCacheSize int
}

// LimitWorkflowCache bounds the workflows a process's Temporal workers keep
// in memory between workflow tasks (n <= 0: DefaultWorkflowCacheSize). A
// workflow not held is replayed from its history at its next task, a few
// milliseconds. The SDK keeps one cache per process, made when the first
// worker starts, and an embedded Temporal server starts system workers of its
// own: a process that embeds one (demarche dev) calls this before starting it,
// or the SDK's default of 10,000 stays.
func LimitWorkflowCache(n int) {
	if n <= 0 {
		n = DefaultWorkflowCacheSize
	}
	sdkworker.SetStickyWorkflowCacheSize(n)
}

// DefaultWorkflowCacheSize bounds the workflows held in memory. The SDK's
// default, 10,000, keeps every waiting crisis's coroutines and state alive:
// a third of the memory a waiting crisis costs (docs/performance.md).
const DefaultWorkflowCacheSize = 1000

// Service is a running worker.
type Service struct {
	nc     *nats.Conn
	tc     client.Client
	worker sdkworker.Worker
	stop   context.CancelFunc
	done   chan struct{}
}

// Start connects to NATS and Temporal, makes sure the event streams exist, and
// starts polling the crisis task queue.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*Service, error) {
	log = log.Named("worker")
	nc, js, err := natsx.Connect(cfg.NATSURL, "demarche-worker", log)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if err := eventbus.EnsureStreams(ctx, js, eventbus.StreamOptions{}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("worker: %w", err)
	}
	tc, err := temporalx.Dial(ctx, cfg.TemporalAddress, cfg.Namespace, log, temporalx.As(temporalx.IdentityWorker))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("worker: %w", err)
	}
	// On stop, running activity attempts get WorkerStopTimeout to finish
	// (and publish what they did) before they are cancelled and retried
	// elsewhere; their effects are idempotent either way.
	LimitWorkflowCache(cfg.WorkflowCacheSize)
	w := sdkworker.New(tc, crisis.TaskQueue, sdkworker.Options{WorkerStopTimeout: 10 * time.Second})
	crisis.Register(w, &crisis.Activities{Bus: eventbus.NewPublisher(js, crisis.EventSource), NC: nc})
	if err := w.Start(); err != nil {
		tc.Close()
		nc.Close()
		return nil, fmt.Errorf("worker: start polling %s: %w", crisis.TaskQueue, err)
	}
	log.Info("worker polling", zap.String("task_queue", crisis.TaskQueue), zap.String("namespace", cfg.Namespace))
	s := &Service{nc: nc, tc: tc, worker: w, done: make(chan struct{})}
	interval := cfg.OutsideWatchInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	watch := &outsideWatch{tc: tc, bus: eventbus.NewPublisher(js, crisis.OutsideWatchSource), ns: cfg.Namespace,
		interval: interval, lookback: 23 * time.Hour, log: log, seen: map[string]bool{}}
	var wctx context.Context
	wctx, s.stop = context.WithCancel(context.Background())
	go func() {
		defer close(s.done)
		watch.run(wctx)
	}()
	return s, nil
}

// Stop finishes the tasks in hand and disconnects.
func (s *Service) Stop() {
	s.stop()
	<-s.done
	s.worker.Stop()
	s.tc.Close()
	natsx.DrainClose(s.nc, 5*time.Second)
}
