// Package bench is `demarche bench`: it starts the embedded stack (NATS with
// JetStream, Temporal on SQLite, every service) in a fresh data folder and
// measures what an operations centre feels — a decision, an opening, signal
// ingest, a warning becoming a crisis, event fan-out, capacity, drills and
// replay — each beside a bare baseline run in the same process, on the same
// servers, at the same time of day: a trivial Temporal update, a one-activity
// workflow, a bare JetStream publish→consume. Ratios between the two are what
// carry from one machine to another; absolute figures do not.
//
// The baselines reach NATS as a bench-only user (stack.Config.ExtraNATSUsers)
// on subjects bench.>, which no service uses, and Temporal on their own task
// queue with their own worker; the Démarche side uses the real identities.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
)

// Scenarios, in the order they run.
var Scenarios = []string{"stack", "decide", "open", "ingest", "warning-to-action", "fanout", "drills", "replay", "capacity"}

// Sizes say how much each scenario does.
type Sizes struct {
	// Decisions per concurrency level, at each of Concurrency.
	Decisions   int   `json:"decisions"`
	Concurrency []int `json:"concurrency"`
	// Opens crises, OpenConcurrency at a time.
	Opens           int `json:"opens"`
	OpenConcurrency int `json:"open_concurrency"`
	// Ingest signals below the threshold.
	Ingest int `json:"ingest"`
	// Rates of threshold crossings per second, each for RateSeconds.
	Rates       []int   `json:"rates"`
	RateSeconds float64 `json:"rate_seconds"`
	// FanoutSubscribers durable consumers, FanoutEvents events.
	FanoutSubscribers int `json:"fanout_subscribers"`
	FanoutEvents      int `json:"fanout_events"`
	// Drills at once (after one alone, the baseline); DrillDelaySeconds per drill decision.
	Drills            int     `json:"drills"`
	DrillDelaySeconds float64 `json:"drill_delay_seconds"`
	// ReplayRounds: how many times each recorded history is replayed.
	ReplayRounds int `json:"replay_rounds"`
	// Capacity: open crises up to each of these totals, then measure and list.
	Capacity []int `json:"capacity"`
	// SettleSeconds: how long opened crises sit before their memory is
	// measured (what opening them left in passing is released meanwhile).
	SettleSeconds float64 `json:"settle_seconds"`
}

// Full are the sizes of `make bench`.
func Full() Sizes {
	return Sizes{Decisions: 100, Concurrency: []int{1, 20}, Opens: 200, OpenConcurrency: 20, Ingest: 20000,
		Rates: []int{20, 100}, RateSeconds: 10, FanoutSubscribers: 5, FanoutEvents: 2000,
		Drills: 50, DrillDelaySeconds: 1, ReplayRounds: 5, Capacity: []int{1000, 5000}, SettleSeconds: 30}
}

// Tiny are the sizes of the harness test in `make test`: every scenario runs,
// nothing is measured that matters.
func Tiny() Sizes {
	return Sizes{Decisions: 3, Concurrency: []int{1, 2}, Opens: 3, OpenConcurrency: 2, Ingest: 40,
		Rates: []int{4}, RateSeconds: 1, FanoutSubscribers: 2, FanoutEvents: 5,
		Drills: 2, DrillDelaySeconds: 1, ReplayRounds: 1, Capacity: []int{4, 8}, SettleSeconds: 0.1}
}

// Config configures a run.
type Config struct {
	Sizes Sizes
	// Only runs these scenarios (default: all); "stack" always runs.
	Only []string
	// DataDir is the stack's data folder; it must be new or empty (default: a temporary one, removed after).
	DataDir string
	// Progress receives a line per step while running (nil: none).
	Progress io.Writer
	// Command is recorded in the report (how to reproduce it).
	Command string
	// ProfileDir, when set, receives a CPU profile of each scenario
	// (<scenario>.cpu.pprof): the evidence for what bounds a figure.
	ProfileDir string
}

func (c Config) wants(s string) bool {
	if s == "stack" || len(c.Only) == 0 {
		return true
	}
	for _, o := range c.Only {
		if o == s {
			return true
		}
	}
	return false
}

// benchUser is the NATS user of the baselines.
const benchUser = "bench"

type runner struct {
	cfg Config
	log *zap.Logger
	st  *stack.Stack
	tc  client.Client
	// gw opens and decides crises as the gateway does (the one identity
	// Temporal lets do so); tc, the admin, runs the baselines and reads.
	gw   client.Client
	op   *nats.Conn // the operator identity: publishes signals, watches events
	opJS jetstream.JetStream
	wk   jetstream.JetStream // the worker identity: publishes crisis events (fanout)
	wkNC *nats.Conn
	bare *nats.Conn // the bench user: bare JetStream baselines
	bjs  jetstream.JetStream
	ev   *watcher
	base *baselineWorker
	rep  *Report

	mu      sync.Mutex
	drillID []string // drills run, for replay
	used    map[string]bool
}

// Run starts the stack and runs the scenarios. A scenario that fails is
// recorded in Failures and the others still run.
func Run(ctx context.Context, cfg Config, log *zap.Logger) (*Report, error) {
	r := &runner{cfg: cfg, log: log, used: map[string]bool{},
		rep: &Report{Command: cfg.Command, Started: time.Now().UTC(), Machine: describeMachine(), Sizes: cfg.Sizes}}
	dir := cfg.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "demarche-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: data folder: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("bench: --data-dir %s is not empty: the bench measures a fresh stack", dir)
	}
	pass := randomHex(16)
	r.progress("starting the embedded stack in %s", dir)
	rssBefore := rssMB()
	start := time.Now()
	st, err := stack.Start(ctx, stack.Config{DataDir: dir, NoUI: true, TemporalLogLevel: "error", MetricsAddr: "127.0.0.1:0",
		ExtraNATSUsers: []*server.User{{Username: benchUser, Password: pass}}}, log)
	if err != nil {
		return nil, fmt.Errorf("bench: start stack: %w", err)
	}
	ready := time.Since(start)
	defer st.Stop()
	r.st = st
	if err := r.connect(ctx, pass); err != nil {
		return nil, err
	}
	defer r.close()
	time.Sleep(2 * time.Second) // let start-up work (seeding, first polls) settle before the idle reading
	runtime.GC()
	stackRes := Result{Scenario: "stack", Variant: "demarche dev start",
		Demarche: Measure{What: "stack.Start (NATS, Temporal, every service) until ready; resident memory when idle",
			Count: 1, Seconds: ready.Seconds(), Extra: map[string]float64{"ready_s": ready.Seconds(), "idle_rss_mb": rssMB(), "rss_before_start_mb": rssBefore}}}
	stackRes.judge("ready ≤ 5 s, idle memory ≤ 250 MB", ready <= 5*time.Second && rssMB() <= 250)
	r.add(stackRes)

	type scenario struct {
		name string
		run  func(context.Context) error
	}
	for _, sc := range []scenario{
		{"decide", r.decide}, {"open", r.open}, {"ingest", r.ingest}, {"warning-to-action", r.warningToAction},
		{"fanout", r.fanout}, {"drills", r.drills}, {"replay", r.replay}, {"capacity", r.capacity},
	} {
		if !cfg.wants(sc.name) {
			continue
		}
		r.progress("scenario %s", sc.name)
		stopProfile := r.profile(sc.name)
		err := sc.run(ctx)
		stopProfile()
		if err != nil {
			r.rep.Failures = append(r.rep.Failures, fmt.Sprintf("%s: %v", sc.name, err))
			r.progress("scenario %s failed: %v", sc.name, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	r.rep.Seconds = time.Since(r.rep.Started).Seconds()
	return r.rep, nil
}

// profile starts a CPU profile of a scenario when asked; the returned func stops it.
func (r *runner) profile(name string) func() {
	if r.cfg.ProfileDir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(r.cfg.ProfileDir, name+".cpu.pprof"))
	if err != nil {
		r.progress("  no profile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close() // nothing written yet: the StartCPUProfile error is the one to report
		r.progress("  no profile: %v", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			r.progress("  CPU profile lost: %v", err)
		}
		// And what the scenario left in memory (capacity: the waiting crises).
		runtime.GC()
		if h, err := os.Create(filepath.Join(r.cfg.ProfileDir, name+".heap.pprof")); err == nil {
			if err := errors.Join(pprof.Lookup("heap").WriteTo(h, 0), h.Close()); err != nil {
				r.progress("  heap profile lost: %v", err)
			}
		}
		if g, err := os.Create(filepath.Join(r.cfg.ProfileDir, name+".goroutine.txt")); err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(g, 1) // goroutines per waiting crisis
			_ = g.Close()
		}
	}
}

func (r *runner) connect(ctx context.Context, benchPass string) error {
	var err error
	if r.tc, err = temporalx.Dial(ctx, r.st.TemporalAddress(), r.st.Namespace(), r.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
		// Its baseline workflows run on a queue of their own, which the
		// admin may use; it reads crises, never drives them.
		temporalx.As(temporalx.IdentityAdmin)); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if r.gw, err = temporalx.Dial(ctx, r.st.TemporalAddress(), r.st.Namespace(), r.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
		temporalx.As(temporalx.IdentityGateway)); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if r.op, r.opJS, err = natsx.Connect(r.st.NATSURLFor(natsauth.Operator), "demarche-bench-operator", r.log); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if r.wkNC, r.wk, err = natsx.Connect(r.st.NATSURLFor(natsauth.Worker), "demarche-bench-worker", r.log); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if r.bare, err = nats.Connect(r.st.NATSURL(), nats.UserInfo(benchUser, benchPass), nats.Name("demarche-bench-baseline")); err != nil {
		return fmt.Errorf("bench: baseline connection: %w", err)
	}
	if r.bjs, err = jetstream.New(r.bare); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if _, err := r.bjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: bareStream, Subjects: []string{"bench.>"},
		Storage: jetstream.FileStorage, Duplicates: time.Hour}); err != nil {
		return fmt.Errorf("bench: baseline stream: %w", err)
	}
	if r.ev, err = watch(r.op); err != nil {
		return err
	}
	if r.base, err = startBaselineWorker(r.tc); err != nil {
		return err
	}
	return nil
}

func (r *runner) close() {
	if r.base != nil {
		r.base.stop()
	}
	if r.ev != nil {
		r.ev.stop()
	}
	for _, nc := range []*nats.Conn{r.op, r.wkNC, r.bare} {
		if nc != nil {
			nc.Close()
		}
	}
	if r.tc != nil {
		r.tc.Close()
	}
	if r.gw != nil {
		r.gw.Close()
	}
}

// bareStream holds the bare baselines' messages (subjects bench.>).
const bareStream = "BENCH_BARE"

func (r *runner) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

func (r *runner) add(res Result) {
	r.rep.Results = append(r.rep.Results, res)
	line := res.Demarche.short()
	if res.Baseline != nil {
		line += "  |  bare: " + res.Baseline.short()
	}
	if res.RatioOf != "" {
		line += fmt.Sprintf("  |  %.2f× %s", res.Ratio, res.RatioOf)
	}
	r.progress("  %s %s: %s", res.Scenario, res.Variant, line)
}

// parallel runs n operations, conc at a time, and times each.
func parallel(ctx context.Context, n, conc int, op func(ctx context.Context, i int) error) (lat []time.Duration, errs int, elapsed time.Duration, first error) {
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	start := time.Now()
	for range max(1, min(conc, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := op(ctx, i)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, errs, time.Since(start), first
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (it crashes the program instead)
	return hex.EncodeToString(b)
}

// rssMB is this process's resident memory.
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.Sys) / (1 << 20)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			_, _ = fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb) // an unreadable figure stays 0 (unknown)
			return kb / 1024
		}
	}
	return 0
}

// heapMB is the live Go heap after a collection.
func heapMB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

// diskMB is the size of the files under dir.
func diskMB(dir string) float64 {
	var total int64
	// a size for the report: what cannot be read is not counted
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return float64(total) / (1 << 20)
}

var errTimeout = errors.New("timed out")
