// Package bench is `demarche bench`: it starts the embedded stack (NATS with
// JetStream, Temporal on SQLite, every service) in a fresh data folder, or
// reaches a running deployment (Target: a cluster's NATS seed list and
// Temporal frontend, with credentials), and measures what an operations
// centre feels — a decision, an opening, signal ingest, a warning becoming a
// crisis, event fan-out, capacity, drills and replay — each beside a bare
// baseline run in the same process, on the same servers, at the same time of
// day: a trivial Temporal update, a one-activity workflow, a bare JetStream
// publish→consume. Ratios between the two are what carry from one machine to
// another; absolute figures do not.
//
// The baselines reach NATS as the bench identity (natsauth.Bench) on
// subjects bench.>, which no service uses, in a stream of their own with the
// replicas of the signals stream, and Temporal on their own task queue with
// their own worker (as the admin); the Démarche side uses the real
// identities: the operator publishes signals and watches events, the worker
// publishes the fan-out's crisis events, the gateway opens and decides crises.
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/services/earlywarning"
)

// Scenarios, in the order they run.
var Scenarios = []string{"stack", "decide", "open", "ingest", "warning-to-action", "fanout", "drills", "replay", "capacity", "import"}

// Sizes say how much each scenario does.
type Sizes struct {
	// Decisions per concurrency level, at each of Concurrency.
	Decisions   int   `json:"decisions"`
	Concurrency []int `json:"concurrency"`
	// Opens crises, OpenConcurrency at a time.
	Opens           int `json:"opens"`
	OpenConcurrency int `json:"open_concurrency"`
	// Ingest signals below the threshold (spread, then as a flare).
	Ingest int `json:"ingest"`
	// Import rows of a generated ACLED file, imported live and historical.
	Import int `json:"import"`
	// Rates of threshold crossings per second, each for RateSeconds.
	Rates       []int   `json:"rates"`
	RateSeconds float64 `json:"rate_seconds"`
	// KeepUpRate is the crossing rate warning-to-action must keep up with,
	// or the rate the bare one-activity workflow sustains if that is lower
	// (measured first, at a steady offered rate, for RateSeconds).
	KeepUpRate int `json:"keep_up_rate"`
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
	return Sizes{Decisions: 100, Concurrency: []int{1, 20}, Opens: 200, OpenConcurrency: 20, Ingest: 20000, Import: 50000,
		Rates: []int{20, 100}, RateSeconds: 10, KeepUpRate: 100, FanoutSubscribers: 5, FanoutEvents: 2000,
		Drills: 50, DrillDelaySeconds: 1, ReplayRounds: 5, Capacity: []int{1000, 5000}, SettleSeconds: 30}
}

// Tiny are the sizes of the harness test in `make test`: every scenario runs,
// nothing is measured that matters.
func Tiny() Sizes {
	return Sizes{Decisions: 3, Concurrency: []int{1, 2}, Opens: 3, OpenConcurrency: 2, Ingest: 40, Import: 200,
		Rates: []int{4}, RateSeconds: 1, KeepUpRate: 4, FanoutSubscribers: 2, FanoutEvents: 5,
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
	// ServicePprof are processes of the deployment whose CPU profiles are
	// collected beside the bench's own when ProfileDir is set
	// (<scenario>.<name>.cpu.pprof).
	ServicePprof []ServicePprof
	// ServicePIDs are processes of the deployment on this machine whose CPU
	// time per operation decide, open and warning-to-action report
	// (Measure.CPU), the bench's own beside them.
	ServicePIDs []ServicePID
	// Target, when set, is the deployment to measure instead of an embedded
	// stack (DataDir is then unused).
	Target *Target
}

// Target is a running deployment: its NATS servers and Temporal frontend,
// and where the credentials of the identities the bench acts as are.
type Target struct {
	// NATSURL is the NATS seed list (nats://n1:4222,nats://n2:4222), without
	// credentials.
	NATSURL string
	// NATSCredentials is a folder of <identity>.creds files (`demarche admin
	// credentials --dir` writes one) holding those of operator, worker and bench.
	NATSCredentials string
	// TemporalAddress is the frontend's host:port, Namespace Démarche's namespace.
	TemporalAddress, Namespace string
	// TemporalCredentials is a folder of <identity>.key files (the
	// temporal-credentials folder `demarche admin credentials` writes)
	// holding those of gateway and admin.
	TemporalCredentials string
}

// The identities the bench acts as on a deployment.
var (
	natsIdentities     = []natsauth.Identity{natsauth.Operator, natsauth.Worker, natsauth.Bench}
	temporalIdentities = []string{temporalx.IdentityGateway, temporalx.IdentityAdmin}
)

// check says what is missing from a target, naming the flag.
func (t *Target) check() error {
	if t.NATSURL == "" || t.TemporalAddress == "" {
		return errors.New("bench: a deployment needs both --nats-url and --temporal-address")
	}
	if t.Namespace == "" {
		return errors.New("bench: a deployment needs --namespace")
	}
	if t.NATSCredentials == "" || t.TemporalCredentials == "" {
		return fmt.Errorf("bench: a deployment needs --nats-credentials (a folder with %s.creds) and --temporal-credentials (a folder with %s.key): the bench acts as these identities",
			strings.Join(idStrings(natsIdentities), ".creds, "), strings.Join(temporalIdentities, ".key, "))
	}
	for _, id := range natsIdentities {
		if _, err := natsauth.Load(natsauth.FileName(t.NATSCredentials, id)); err != nil {
			return fmt.Errorf("bench: --nats-credentials %s: %s's credentials: %w", t.NATSCredentials, id, err)
		}
	}
	for _, id := range temporalIdentities {
		if _, err := os.Stat(temporalx.KeyFile(t.TemporalCredentials, id)); err != nil {
			return fmt.Errorf("bench: --temporal-credentials %s: %s's API key: %w", t.TemporalCredentials, id, err)
		}
	}
	return nil
}

func idStrings(ids []natsauth.Identity) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
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

type runner struct {
	cfg Config
	log *zap.Logger
	st  *stack.Stack // nil against a deployment
	// natsURL is the NATS URL with an identity's credentials in it;
	// temporalAddr and namespace where Temporal is.
	natsURL      func(natsauth.Identity) (string, error)
	temporalAddr string
	namespace    string
	tc           client.Client
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
	cpu  *cpuMeter // nil: no processes to read

	mu      sync.Mutex
	drillID []string // drills run, for replay
	used    map[string]bool
}

// Run starts the stack (or reaches cfg.Target) and runs the scenarios. A
// scenario that fails is recorded in Failures and the others still run.
func Run(ctx context.Context, cfg Config, log *zap.Logger) (*Report, error) {
	r := &runner{cfg: cfg, log: log, used: map[string]bool{}, cpu: newCPUMeter(cfg.ServicePIDs),
		rep: &Report{Command: cfg.Command, Started: time.Now().UTC(), Machine: describeMachine(), Sizes: cfg.Sizes, Only: cfg.Only}}
	if cfg.Target != nil {
		if err := cfg.Target.check(); err != nil {
			return nil, err
		}
		t := cfg.Target
		r.progress("reaching the deployment: NATS %s, Temporal %s (namespace %s)", t.NATSURL, t.TemporalAddress, t.Namespace)
		r.natsURL = func(id natsauth.Identity) (string, error) {
			c, err := natsauth.Load(natsauth.FileName(t.NATSCredentials, id))
			if err != nil {
				return "", err
			}
			return c.URL(t.NATSURL)
		}
		r.temporalAddr, r.namespace = t.TemporalAddress, t.Namespace
		// Each Temporal client of the bench takes its identity's key from
		// the folder (gateway, admin), whatever the process default is.
		defer temporalx.SetCredentialsFor(t.TemporalAddress, t.TemporalCredentials)()
		r.rep.Deployment = &Deployment{NATSURL: t.NATSURL, TemporalAddress: t.TemporalAddress, Namespace: t.Namespace}
		if err := r.connect(ctx); err != nil {
			return nil, err
		}
		defer r.close()
	} else {
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
		r.progress("starting the embedded stack in %s", dir)
		rssBefore := rssMB()
		start := time.Now()
		st, err := stack.Start(ctx, stack.Config{DataDir: dir, NoUI: true, TemporalLogLevel: "error", MetricsAddr: "127.0.0.1:0"}, log)
		if err != nil {
			return nil, fmt.Errorf("bench: start stack: %w", err)
		}
		ready := time.Since(start)
		defer st.Stop()
		r.st = st
		r.natsURL = func(id natsauth.Identity) (string, error) { return st.NATSURLFor(id), nil }
		r.temporalAddr, r.namespace = st.TemporalAddress(), st.Namespace()
		r.rep.Deployment = &Deployment{Embedded: true}
		if err := r.connect(ctx); err != nil {
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
	}

	type scenario struct {
		name string
		run  func(context.Context) error
	}
	for _, sc := range []scenario{
		{"decide", r.decide}, {"open", r.open}, {"ingest", r.ingest}, {"warning-to-action", r.warningToAction},
		{"fanout", r.fanout}, {"drills", r.drills}, {"replay", r.replay}, {"capacity", r.capacity},
		{"import", r.importScenario},
	} {
		if !cfg.wants(sc.name) {
			continue
		}
		r.progress("scenario %s", sc.name)
		stopProfile := r.profile(ctx, sc.name)
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

// profile starts a CPU profile of a scenario when asked, of this process
// and of the deployment's processes named by ServicePprof; the returned
// func stops them.
func (r *runner) profile(ctx context.Context, name string) func() {
	if r.cfg.ProfileDir == "" {
		return func() {}
	}
	stopServices := newServiceProfiler(r.cfg.ServicePprof).start(ctx, r.cfg.ProfileDir, name)
	stopOwn := r.profileOwn(name)
	return func() {
		stopOwn()
		for _, note := range stopServices() {
			r.progress("  %s", note)
		}
	}
}

// profileOwn is profile's part for this process.
func (r *runner) profileOwn(name string) func() {
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

func (r *runner) connect(ctx context.Context) error {
	var err error
	if r.tc, err = temporalx.Dial(ctx, r.temporalAddr, r.namespace, r.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
		// Its baseline workflows run on a queue of their own, which the
		// admin may use; it reads crises, never drives them.
		temporalx.As(temporalx.IdentityAdmin)); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if r.gw, err = temporalx.Dial(ctx, r.temporalAddr, r.namespace, r.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
		temporalx.As(temporalx.IdentityGateway)); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	conn := func(id natsauth.Identity, name string) (*nats.Conn, jetstream.JetStream, error) {
		u, err := r.natsURL(id)
		if err != nil {
			return nil, nil, fmt.Errorf("bench: %s's NATS credentials: %w", id, err)
		}
		nc, js, err := natsx.Connect(u, name, r.log)
		if err != nil {
			return nil, nil, fmt.Errorf("bench: connect to NATS as %s: %w", id, err)
		}
		return nc, js, nil
	}
	if r.op, r.opJS, err = conn(natsauth.Operator, "demarche-bench-operator"); err != nil {
		return err
	}
	if r.wkNC, r.wk, err = conn(natsauth.Worker, "demarche-bench-worker"); err != nil {
		return err
	}
	if r.bare, r.bjs, err = conn(natsauth.Bench, "demarche-bench-baseline"); err != nil {
		return err
	}
	// The bare stream is stored as the signals stream is (file, its
	// replicas): the ingest baseline pays what Démarche's publish pays.
	sig, err := r.bjs.Stream(ctx, earlywarning.SignalsStream)
	if err != nil {
		return fmt.Errorf("bench: the signals stream (is the deployment provisioned?): %w", err)
	}
	replicas := max(1, sig.CachedInfo().Config.Replicas)
	if _, err := r.bjs.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: bareStream, Subjects: []string{"bench.>"},
		Storage: jetstream.FileStorage, Replicas: replicas, Duplicates: time.Hour}); err != nil {
		return fmt.Errorf("bench: baseline stream: %w", err)
	}
	if d := r.rep.Deployment; d != nil {
		d.NATSServers, d.NATSVersion, d.Replicas = len(r.bare.Servers()), r.bare.ConnectedServerVersion(), replicas
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
	if r.bjs != nil {
		// What the bench made on the servers goes with it (but the crises:
		// workflows stay in Temporal's history, as any crisis does).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := r.bjs.DeleteStream(ctx, bareStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			r.progress("could not remove the baseline stream %s: %v", bareStream, err)
		}
		cancel()
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
const bareStream = natsauth.BenchStream

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
