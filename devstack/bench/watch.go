package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/demarche/demarche/pkg/eventbus"
)

// watcher notes when each crisis event first reaches NATS, by crisis id and
// event token (demarche.crisis.<region>.<country>.<crisis-id>.<event>): what
// a subscriber sees is what the bench times.
type watcher struct {
	sub     *nats.Subscription
	mu      sync.Mutex
	seen    map[string]time.Time
	waiting map[string]chan struct{}
}

func watch(nc *nats.Conn) (*watcher, error) {
	w := &watcher{seen: map[string]time.Time{}, waiting: map[string]chan struct{}{}}
	sub, err := nc.Subscribe(eventbus.AllEvents(), func(m *nats.Msg) {
		at := time.Now()
		tokens := strings.Split(m.Subject, ".")
		if len(tokens) < 6 {
			return
		}
		key := tokens[len(tokens)-2] + "/" + tokens[len(tokens)-1]
		w.mu.Lock()
		if _, ok := w.seen[key]; !ok {
			w.seen[key] = at
			if ch, ok := w.waiting[key]; ok {
				close(ch)
				delete(w.waiting, key)
			}
		}
		w.mu.Unlock()
	})
	if err != nil {
		return nil, fmt.Errorf("bench: watch events: %w", err)
	}
	sub.SetPendingLimits(-1, -1)
	w.sub = sub
	return w, nil
}

func (w *watcher) stop() { _ = w.sub.Unsubscribe() }

// wait returns when the crisis's event of that token first arrived.
func (w *watcher) wait(ctx context.Context, crisisID, token string, timeout time.Duration) (time.Time, error) {
	key := crisisID + "/" + token
	w.mu.Lock()
	if at, ok := w.seen[key]; ok {
		w.mu.Unlock()
		return at, nil
	}
	ch, ok := w.waiting[key]
	if !ok {
		ch = make(chan struct{})
		w.waiting[key] = ch
	}
	w.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		return time.Time{}, fmt.Errorf("%w: no %s of %s on NATS after %s", errTimeout, token, crisisID, timeout)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[key], nil
}

// The baselines on Temporal: the least a workflow can do, on the same server.
const (
	baselineQueue       = "demarche-bench-baseline"
	baselineUpdateWF    = "BenchTrivialUpdate"
	baselineActivityWF  = "BenchOneActivity"
	baselineUpdate      = "bump"
	baselineReady       = "ready"
	baselineActivity    = "BenchNoop"
	baselineActivityTTL = 30 * time.Second
)

// trivialUpdate answers one update with a number and ends.
func trivialUpdate(ctx workflow.Context) (int, error) {
	n := 0
	if err := workflow.SetQueryHandler(ctx, baselineReady, func() (bool, error) { return true, nil }); err != nil {
		return 0, err
	}
	if err := workflow.SetUpdateHandler(ctx, baselineUpdate, func(ctx workflow.Context, by int) (int, error) {
		n += by
		return n, nil
	}); err != nil {
		return 0, err
	}
	if err := workflow.Await(ctx, func() bool { return n > 0 }); err != nil {
		return 0, err
	}
	return n, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

// oneActivity runs one activity that does nothing, and ends.
func oneActivity(ctx workflow.Context, in string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: baselineActivityTTL})
	var out string
	err := workflow.ExecuteActivity(ctx, baselineActivity, in).Get(ctx, &out)
	return out, err
}

func noop(_ context.Context, in string) (string, error) { return in, nil }

type baselineWorker struct{ w sdkworker.Worker }

func startBaselineWorker(tc client.Client) (*baselineWorker, error) {
	w := sdkworker.New(tc, baselineQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(trivialUpdate, workflow.RegisterOptions{Name: baselineUpdateWF})
	w.RegisterWorkflowWithOptions(oneActivity, workflow.RegisterOptions{Name: baselineActivityWF})
	w.RegisterActivityWithOptions(noop, activity.RegisterOptions{Name: baselineActivity})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("bench: baseline worker: %w", err)
	}
	return &baselineWorker{w: w}, nil
}

func (b *baselineWorker) stop() { b.w.Stop() }
