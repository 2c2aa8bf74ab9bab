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
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// watcher notes when each crisis event first reaches NATS, by crisis id and
// event token (demarche.crisis.<region>.<country>.<crisis-id>.<event>): what
// a subscriber sees is what the bench times. It also notes, per situation
// (country + crisis type), the crisis its first WarningRaised names: early
// warning opens each situation's crisis as an episode with an id of its own,
// and WarningRaised is how it says which.
type watcher struct {
	sub     *nats.Subscription
	mu      sync.Mutex
	seen    map[string]time.Time
	crisis  map[string]string // situation key → crisis id of its first WarningRaised
	waiting map[string]chan struct{}
}

// Keys of the seen map: a crisis's event, or a situation's first warning.
func eventKey(crisisID, token string) string { return crisisID + "/" + token }
func situationKey(situation string) string   { return "situation:" + situation }

func watch(nc *nats.Conn) (*watcher, error) {
	w := &watcher{seen: map[string]time.Time{}, crisis: map[string]string{}, waiting: map[string]chan struct{}{}}
	sub, err := nc.Subscribe(eventbus.AllEvents(), func(m *nats.Msg) {
		at := time.Now()
		tokens := strings.Split(m.Subject, ".")
		if len(tokens) < 6 {
			return
		}
		token := tokens[len(tokens)-1]
		w.mu.Lock()
		defer w.mu.Unlock()
		w.note(eventKey(tokens[len(tokens)-2], token), at)
		if token != warningRaised {
			return
		}
		ev, err := eventbus.Decode(m.Header, m.Data)
		if err != nil {
			return // not a warning the bench can read: its wait times out and says so
		}
		if wr, ok := ev.Data.(*demarchev1.WarningRaised); ok {
			key := situationKey(demarchev1.SituationKey(wr.GetCountryCode(), wr.GetCrisisType()))
			if _, ok := w.crisis[key]; !ok {
				w.crisis[key] = wr.GetCrisisId()
			}
			w.note(key, at)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bench: watch events: %w", err)
	}
	sub.SetPendingLimits(-1, -1)
	w.sub = sub
	return w, nil
}

// The event token of WarningRaised on the subject tree.
const warningRaised = "warning_raised"

// note records the first time a key was seen and wakes its waiter; w.mu is held.
func (w *watcher) note(key string, at time.Time) {
	if _, ok := w.seen[key]; ok {
		return
	}
	w.seen[key] = at
	if ch, ok := w.waiting[key]; ok {
		close(ch)
		delete(w.waiting, key)
	}
}

func (w *watcher) stop() { _ = w.sub.Unsubscribe() } // stopping: the subscription ends with the connection anyway

// wait returns when the crisis's event of that token first arrived.
func (w *watcher) wait(ctx context.Context, crisisID, token string, timeout time.Duration) (time.Time, error) {
	return w.waitKey(ctx, eventKey(crisisID, token), fmt.Sprintf("%s of %s", token, crisisID), timeout)
}

// crisisOf returns the crisis early warning named in the situation's first
// WarningRaised (the crisis its crossing opened or signalled).
func (w *watcher) crisisOf(ctx context.Context, situation string, timeout time.Duration) (string, error) {
	key := situationKey(situation)
	if _, err := w.waitKey(ctx, key, fmt.Sprintf("%s of situation %s", warningRaised, situation), timeout); err != nil {
		return "", err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.crisis[key], nil
}

func (w *watcher) waitKey(ctx context.Context, key, what string, timeout time.Duration) (time.Time, error) {
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
		return time.Time{}, fmt.Errorf("%w: no %s on NATS after %s", errTimeout, what, timeout)
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
