package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/devstack/cluster"
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/services/roster"
)

// Faults of the cluster test.
const (
	faultNATSNodeKill = "kill -9 one NATS node"
	faultGatewayTerm  = "SIGTERM gateway mid-request"
	faultFundingTerm  = "SIGTERM funding mid-request"
	faultTemporalKill = "kill -9 Temporal server"
)

// clusterRun is the topology of devstack/cluster on loopback: PostgreSQL,
// a Temporal server process on it, three clustered NATS servers, and every
// Démarche service as its own process with its own credentials.
type clusterRun struct {
	p        *platform
	natsBin  string
	pgBin    string
	nodes    []cluster.Endpoint
	health   map[string]int // service -> health port
	pprof    map[string]int // service or "temporal" -> /debug/pprof/ port (loopback; bench --profile reads it)
	pgPort   int
	graceful []string // SIGTERM stops: how each ended
	gmu      sync.Mutex
	inFlight []string // requests in flight at a graceful stop, and how they ended
}

// TestCluster is the multi-process cluster test (make cluster-test; env
// DEMARCHE_CLUSTER_TEST=1, so make test does not run it twice). It drives
// drills and people-driven crises through the gateway while it kills -9 one
// NATS node, the worker and the Temporal server, and stops the gateway and funding with SIGTERM
// mid-request (graceful: they must exit 0, finishing or refusing what they
// took), restarting each; then it checks, through public interfaces only,
// that every crisis closed or kept its state, no event is missing or
// duplicated on the crisis stream, every disbursement is paid once, and
// every audit chain verifies. Then it runs a tiny demarche bench against the
// cluster, as docs/operations.md says to (its counts must add up; no figure
// is asserted). It prints its figures.
func TestCluster(t *testing.T) {
	if os.Getenv("DEMARCHE_CLUSTER_TEST") == "" {
		t.Skip("the multi-process cluster test runs with make cluster-test (DEMARCHE_CLUSTER_TEST=1)")
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("DEMARCHE_CHAOS_SEED"), 10, 64); err == nil {
		seed = s
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	say := func(format string, args ...any) { t.Logf("cluster: "+format, args...) }
	say("seed %d (repeat the fault plan with DEMARCHE_CHAOS_SEED=%d)", seed, seed)
	c, ctx, began := startCluster(t)
	p := c.p

	// The workload: drills and people-driven crises through the gateway.
	w := newWorkload(p)
	in := newInjector(p, w, rng, size{})
	var wg sync.WaitGroup
	countries := []string{"GN", "ML", "NE", "KE", "SN", "GH"}
	drills, people := 6, 3
	for i := range drills {
		cr := &crisisRun{name: w.newID(countries[i%len(countries)]), country: countries[i%len(countries)], crisisType: drillTypes[rng.IntN(len(drillTypes))], drill: true}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.open(ctx, cr); err != nil {
				cr.mu.Lock()
				cr.err = err
				cr.mu.Unlock()
			}
		}()
	}
	for i := range people {
		cr := &crisisRun{name: w.newID("NE"), country: "NE", crisisType: "constitutional-crisis",
			start: time.Duration(rng.IntN(10_000)) * time.Millisecond, think: time.Duration(500+rng.IntN(2000)) * time.Millisecond}
		if i == 0 {
			cr.keepAfter = 2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.drive(ctx, cr)
		}()
	}
	plan := []string{faultNATSNodeKill, faultWorkerKill, faultGatewayTerm, faultFundingTerm, faultTemporalKill}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	say("fault plan: %s", strings.Join(plan, " → "))
	var faultErr error
	for _, kind := range plan {
		time.Sleep(time.Duration(2000+rng.IntN(5000)) * time.Millisecond)
		if faultErr = c.inject(ctx, w, in, rng, kind); faultErr != nil {
			faultErr = fmt.Errorf("%s: %w", kind, faultErr)
			break
		}
	}
	wg.Wait()
	for _, l := range in.log {
		say("%s", l)
	}
	if faultErr != nil {
		// The error again after the logs: a CI that shows only the end of
		// the output still shows what failed.
		t.Fatalf("a fault could not be injected or recovered from: %v\n%s\nFAULT NOT RECOVERED: %v", faultErr, p.logTails(30), faultErr)
	}

	fig := &figures{}
	v := check(ctx, p, w, in, fig)
	for _, u := range p.unexpectedExits() {
		v.fail("%s", u)
	}
	c.checkReplicas(ctx, v, fig)
	c.gmu.Lock()
	fig.add("graceful stops", "%s; %s", strings.Join(c.graceful, "; "), strings.Join(c.inFlight, "; "))
	c.gmu.Unlock()
	// A tiny demarche bench against the cluster, as docs/operations.md
	// says to measure one: its counts must add up; no figure is asserted.
	// Every scenario but the two that wait for drills to close (a minute
	// and more each here): the workload above ran drills to closure through
	// faults, make test's tiny bench runs them, make bench-cluster too.
	// With --profile, as docs/operations.md says to profile a cluster: each
	// process's CPU profile per scenario is read from its --pprof-listen.
	benchStart := time.Now()
	benchOut := filepath.Join(p.dir, "bench-results")
	if rep, err := c.bench(ctx, benchOut, "--size", "tiny", "--only", tinyClusterBench, "--profile"); err != nil {
		v.fail("demarche bench --size tiny against the cluster: %v", err)
	} else {
		for _, bad := range rep.CheckCounts() {
			v.fail("demarche bench --size tiny against the cluster: %s", bad)
		}
		for name := range c.pprof {
			if err := readProfile(filepath.Join(benchOut, "open."+name+".cpu.pprof")); err != nil {
				v.fail("demarche bench --profile against the cluster: %s's CPU profile of the open scenario: %v", name, err)
			}
		}
		// And each process's CPU per opening, read from /proc: every process
		// of the cluster named (PostgreSQL, Temporal, the NATS nodes, each
		// service), something spent.
		for _, res := range rep.Results {
			if res.Scenario != "open" {
				continue
			}
			for _, name := range append([]string{"postgres", "temporal", "worker", "bench"}, cluster.NATSNodes...) {
				if _, ok := res.Demarche.CPU[name]; !ok {
					v.fail("demarche bench --service-pid against the cluster: no CPU per opening for %s: %v", name, res.Demarche.CPU)
				}
			}
			if res.Demarche.CPU["total"] <= 0 || res.Baseline == nil || res.Baseline.CPU["total"] <= 0 {
				v.fail("demarche bench --service-pid against the cluster: no CPU spent per opening or per bare workflow: %v / %v", res.Demarche.CPU, res.Baseline)
			}
		}
		fig.add("tiny bench", "%d results against the cluster (%s) in %v; counts add up", len(rep.Results), rep.Deployment, time.Since(benchStart).Round(time.Second))
	}
	fig.add("run time", "%v (from building the binaries to the last check)", time.Since(began).Round(time.Second))
	var table strings.Builder
	fig.print(&table)
	say("seed %d: figures\n%s", seed, table.String())
	if path := os.Getenv("DEMARCHE_CLUSTER_REPORT"); path != "" {
		_ = os.WriteFile(path, []byte(fmt.Sprintf("seed %d\n%s", seed, table.String())), 0o644)
	}
	for _, l := range v.losses {
		t.Errorf("LOSS: %s", l)
	}
	for _, d := range v.doubles {
		t.Errorf("DUPLICATE / DOUBLE PAYMENT: %s", d)
	}
	for _, f := range v.failures {
		t.Errorf("%s", f)
	}
}

// tinyClusterBench are the scenarios of the tiny bench in make cluster-test.
const tinyClusterBench = "decide,open,ingest,warning-to-action,fanout,capacity"

// startCluster builds the binaries and starts the cluster (PostgreSQL,
// Temporal on it, three NATS nodes, every service its own process) for one
// test: TestCluster and TestBenchCluster (make bench-cluster) share it. It
// skips the test without PostgreSQL; the processes stop when the test ends,
// and the folder and logs are kept when it failed.
func startCluster(t *testing.T) (*clusterRun, context.Context, time.Time) {
	pgBin := cluster.PostgresBin()
	if pgBin == "" {
		t.Skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it): the cluster test needs its server binaries")
	}
	began := time.Now()
	bin := buildBinary(t)
	natsBin := filepath.Join(t.TempDir(), "nats-server")
	if out, err := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("build nats-server from the module in go.mod: %v\n%s", err, out)
	}
	dir, err := os.MkdirTemp("", "demarche-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	// Every child serves /metrics on a port of its own.
	t.Setenv("DEMARCHE_METRICS_LISTEN", "127.0.0.1:0")
	p := newPlatform(t, bin, dir)
	c := &clusterRun{p: p, natsBin: natsBin, pgBin: pgBin, health: map[string]int{}, pprof: map[string]int{}}
	p.separate = append(append([]string(nil), cluster.NATSNodes...), "postgres", "temporal", "provision")
	for _, s := range cluster.Services {
		p.separate = append(p.separate, s.Name)
	}
	t.Cleanup(func() {
		p.stopAll()
		if t.Failed() {
			t.Logf("cluster: folder and logs kept in %s\n%s", dir, p.logTails(30))
			return
		}
		_ = os.RemoveAll(dir) // a temporary folder: what is left is the system's to clean
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	t.Cleanup(cancel)
	if err := c.start(ctx, t); err != nil {
		t.Fatalf("%v\n%s\nSTART-UP FAILED: %v", err, p.logTails(30), err)
	}
	t.Logf("cluster: up in %v: PostgreSQL, Temporal on it, %d NATS nodes (replicas %d), %d services", time.Since(began).Round(time.Second), len(c.nodes), cluster.Replicas, len(cluster.Services))
	return c, ctx, began
}

// spawnExe runs an executable as a child process tracked like p.spawn's
// (kill, unexpected exits, log file); asPostgres runs it as PostgreSQL's
// user when this test runs as root (the server refuses root; CI is root).
func (p *platform) spawnExe(name, exe string, env []string, asPostgres bool, args ...string) error {
	f, err := os.OpenFile(p.logFile(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "\n===== %s start %s: %s %s\n", time.Now().Format(time.RFC3339Nano), name, exe, strings.Join(args, " "))
	cmd := exec.Command(exe, args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if asPostgres {
		cred, err := cluster.PostgresCredential()
		if err != nil {
			f.Close()
			return err
		}
		cmd.SysProcAttr.Credential = cred
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	pr := &proc{cmd: cmd, done: make(chan struct{})}
	p.mu.Lock()
	p.procs[name] = pr
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		if !pr.killed {
			p.unexpected = append(p.unexpected, fmt.Sprintf("%s exited by itself: %v (see %s)", name, err, p.logFile(name)))
		}
		p.mu.Unlock()
		close(pr.done)
	}()
	return nil
}

func (c *clusterRun) start(ctx context.Context, t *testing.T) error {
	p := c.p
	taken := map[int]bool{}
	// PostgreSQL on a temporary data folder, as its own unprivileged user.
	c.pgPort = stablePort(t, taken)
	pgData := filepath.Join(p.dir, "pg")
	if err := cluster.InitPostgres(c.pgBin, pgData); err != nil {
		return err
	}
	if err := p.spawnExe("postgres", filepath.Join(c.pgBin, "postgres"), nil, true, cluster.PostgresArgs(pgData, c.pgPort)...); err != nil {
		return err
	}

	// A Temporal API key per identity, the server reading their hashes as it
	// starts (so they exist before it does).
	if _, err := temporalx.EnsureKeys(filepath.Join(p.data, temporalx.CredentialsDir)); err != nil {
		return err
	}
	// Temporal on PostgreSQL (the schema tool runs inside, on start).
	p.ports.temporal = stablePort(t, taken)
	p.ports.temporalHTTP = stablePort(t, taken)
	c.pprof["temporal"] = stablePort(t, taken)
	if err := c.startTemporal(); err != nil {
		return err
	}

	// Credentials: one per identity, as deploy/nats/authorization.conf lists
	// them; the servers read the password hashes from nats-passwords.conf
	// beside authorization.conf (a reload reads it again), as `demarche
	// admin credentials` writes it.
	credDir := filepath.Join(p.data, "nats-credentials")
	creds, err := natsauth.Ensure(credDir, natsauth.DeployIdentities()...)
	if err != nil {
		return err
	}
	if err := natsauth.WritePasswords(credDir, creds); err != nil {
		return err
	}
	authConf, err := os.ReadFile("../../deploy/nats/authorization.conf")
	if err != nil {
		return err
	}
	for range cluster.NATSNodes {
		c.nodes = append(c.nodes, cluster.Endpoint{Host: "127.0.0.1", Bind: "127.0.0.1",
			ClientPort: stablePort(t, taken), ClusterPort: stablePort(t, taken), Monitor: stablePort(t, taken)})
	}
	for i, name := range cluster.NATSNodes {
		nodeDir := filepath.Join(p.dir, name)
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(nodeDir, "authorization.conf"), authConf, 0o644); err != nil {
			return err
		}
		// The hashes, one file shared by the three nodes (a secret mounted
		// on each in production).
		if err := os.Symlink(natsauth.PasswordsFileName(credDir), filepath.Join(nodeDir, natsauth.PasswordsFile)); err != nil {
			return err
		}
		conf := cluster.NATSServerConfig(name, c.nodes[i], c.nodes, filepath.Join(nodeDir, "jetstream"), "authorization.conf")
		// Go's profiler on a loopback port of its own, as every other
		// process of the cluster has: the bench's --profile reads it.
		c.pprof[name] = stablePort(t, taken)
		conf, err := withNATSSync(conf, os.Getenv("DEMARCHE_CLUSTER_NATS_SYNC"))
		if err != nil {
			return err
		}
		conf += fmt.Sprintf("\n# Go's /debug/pprof/ for demarche bench --profile (loopback only)\nprof_port: %d\n", c.pprof[name])
		if err := os.WriteFile(filepath.Join(nodeDir, "nats-server.conf"), []byte(conf), 0o644); err != nil {
			return err
		}
	}
	for i := range cluster.NATSNodes {
		if err := c.startNATS(i); err != nil {
			return err
		}
	}
	p.natsURL = cluster.SeedList(c.nodes)
	if err := eventually(ctx, 2*time.Minute, "NATS cluster with JetStream", func() (bool, string) {
		nc, err := p.connect(natsauth.Observer)
		if err != nil {
			return false, err.Error()
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false, err.Error()
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second) // a request lost in an election is not answered
		defer cancel()
		if _, err := js.AccountInfo(actx); err != nil {
			return false, err.Error()
		}
		return true, ""
	}); err != nil {
		return err
	}

	// Provisioning, twice: the second run must change nothing.
	provision := func() (string, error) {
		var out string
		err := eventually(ctx, 3*time.Minute, "demarche admin provision", func() (bool, string) {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, p.bin, "admin", "provision", "--replicas", strconv.Itoa(cluster.Replicas), "--log-level", "error",
				"--nats-url", p.natsURL, "--nats-creds", natsauth.FileName(filepath.Join(p.data, "nats-credentials"), natsauth.Provisioner),
				"--temporal-address", fmt.Sprintf("127.0.0.1:%d", p.ports.temporal),
				"--temporal-key-file", temporalx.KeyFile(filepath.Join(p.data, temporalx.CredentialsDir), temporalx.IdentityAdmin))
			cmd.Dir = p.dir
			b, err := cmd.CombinedOutput()
			out = string(b)
			return err == nil, strings.TrimSpace(out)
		})
		return out, err
	}
	first, err := provision()
	if err != nil {
		return err
	}
	second, err := provision()
	if err != nil {
		return err
	}
	if !strings.Contains(second, "created: none") || !strings.Contains(second, "namespace demarche already there; search attributes added: none") {
		return fmt.Errorf("provisioning again changed something:\nfirst run:\n%s\nsecond run:\n%s", first, second)
	}

	// The dev issuer stands in for the organisation's OIDC issuer.
	iss, err := authn.LoadOrCreateIssuer(filepath.Join(p.data, "auth"))
	if err != nil {
		return err
	}
	if _, err := authn.WriteDevTokens(filepath.Join(p.data, "auth"), iss); err != nil {
		return err
	}
	// The audit signing key, as deploy/ mounts one: `serve audit` and the
	// auditor's `audit verify` find it (and its public key) in the data folder.
	if _, err := audit.EnsureSigningKey(filepath.Join(p.data, audit.DevKeyFile)); err != nil {
		return err
	}
	// The workload's funds and experts (the demo's), in the files the
	// services are given where deployments mount theirs.
	if err := os.WriteFile(c.localFile(cluster.FundsFile), funding.DemoFundsYAML(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c.localFile(cluster.RosterFile), roster.DemoRosterJSON(), 0o644); err != nil {
		return err
	}
	p.ports.http = stablePort(t, taken)
	p.apiURL = fmt.Sprintf("http://127.0.0.1:%d", p.ports.http)
	for _, s := range cluster.Services {
		c.health[s.Name] = stablePort(t, taken)
		c.pprof[s.Name] = stablePort(t, taken)
	}
	for _, s := range cluster.Services {
		if s.Name == "funding" { // its funds are opened first, an audited act (audit runs by now)
			if err := c.openFunds(ctx); err != nil {
				return err
			}
		}
		if err := c.startService(ctx, s.Name); err != nil {
			return err
		}
	}
	return nil
}

// localFile is where this run keeps a file deployments mount at path.
func (c *clusterRun) localFile(path string) string {
	return filepath.Join(c.p.data, filepath.Base(path))
}

// openFunds opens the funds file's funds as docs/operations.md says: demarche
// admin open-fund as the provisioner, before funding starts.
func (c *clusterRun) openFunds(ctx context.Context) error {
	p := c.p
	cmd := exec.CommandContext(ctx, p.bin, "admin", "open-fund", "--funds", c.localFile(cluster.FundsFile), "--all", "--reason", "cluster test: first deployment",
		"--log-level", "error", "--nats-url", p.natsURL, "--nats-creds", natsauth.FileName(filepath.Join(p.data, "nats-credentials"), natsauth.Provisioner))
	cmd.Dir = p.dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("demarche admin open-fund: %w\n%s", err, b)
	}
	return nil
}

func (c *clusterRun) startTemporal() error {
	p := c.p
	return p.spawn("temporal", "temporal-server", "--log-level", "warn", "--postgres-port", strconv.Itoa(c.pgPort),
		"--port", strconv.Itoa(p.ports.temporal), "--http-port", strconv.Itoa(p.ports.temporalHTTP),
		"--key-hashes", filepath.Join(p.data, temporalx.CredentialsDir, temporalx.KeyHashesFile),
		"--pprof-listen", c.pprofAddr("temporal"))
}

// pprofAddr is where a process of the cluster serves /debug/pprof/.
func (c *clusterRun) pprofAddr(name string) string {
	return fmt.Sprintf("127.0.0.1:%d", c.pprof[name])
}

func (c *clusterRun) startNATS(i int) error {
	name := cluster.NATSNodes[i]
	return c.p.spawnExe(name, c.natsBin, nil, false, "-c", filepath.Join(c.p.dir, name, "nats-server.conf"))
}

// startService runs one service of the topology as its own process with its
// own credentials, and waits until its /readyz says ready.
func (c *clusterRun) startService(ctx context.Context, name string) error {
	p := c.p
	s, ok := cluster.ServiceNamed(name)
	if !ok {
		return fmt.Errorf("no service %s in the topology", name)
	}
	args := append([]string{"serve", s.Name}, s.Args...)
	for i, a := range args { // the files deployments mount, kept in the data folder here
		if a == cluster.FundsFile || a == cluster.RosterFile {
			args[i] = c.localFile(a)
		}
	}
	args = append(args, "--log-level", "warn", "--nats-url", p.natsURL,
		"--nats-creds", natsauth.FileName(filepath.Join(p.data, "nats-credentials"), s.Identity),
		"--temporal-address", fmt.Sprintf("127.0.0.1:%d", p.ports.temporal),
		"--health-listen", fmt.Sprintf("127.0.0.1:%d", c.health[s.Name]), "--pprof-listen", c.pprofAddr(s.Name))
	if s.Temporal { // its own Temporal identity's key, as its NATS credentials
		args = append(args, "--temporal-key-file", temporalx.KeyFile(filepath.Join(p.data, temporalx.CredentialsDir), s.Name))
	}
	if s.Name == "gateway" {
		args = append(args, "--port", strconv.Itoa(p.ports.http), "--dev-issuer", filepath.Join(p.data, "auth"))
	}
	if err := p.spawn(s.Name, args...); err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", c.health[s.Name])
	return eventually(ctx, 3*time.Minute, s.Name+" ready ("+url+")", func() (bool, string) {
		resp, err := http.Get(url)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b := make([]byte, 512)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode == http.StatusOK, strings.TrimSpace(string(b[:n]))
	})
}

// inject applies one fault and recovers from it.
func (c *clusterRun) inject(ctx context.Context, w *workload, in *injector, rng *rand.Rand, kind string) error {
	down := time.Duration(500+rng.IntN(2500)) * time.Millisecond
	switch kind {
	case faultNATSNodeKill:
		i := rng.IntN(len(cluster.NATSNodes))
		c.p.kill(cluster.NATSNodes[i])
		in.note(kind, "%s killed, restarted after %v on its JetStream folder", cluster.NATSNodes[i], down)
		time.Sleep(down)
		return c.startNATS(i)
	case faultTemporalKill:
		// Every crisis's state is in PostgreSQL: the restarted server (same
		// database, schema already current) carries on, and its clients
		// reconnect.
		c.p.kill("temporal")
		in.note(kind, "Temporal server killed, restarted after %v on the same PostgreSQL", down)
		time.Sleep(down)
		if err := c.startTemporal(); err != nil {
			return err
		}
		return eventually(ctx, 2*time.Minute, "every Temporal client ready again", func() (bool, string) {
			for _, s := range cluster.Services {
				if !s.Temporal {
					continue
				}
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", c.health[s.Name]))
				if err != nil {
					return false, s.Name + ": " + err.Error()
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return false, s.Name + " not ready"
				}
			}
			return true, ""
		})
	case faultWorkerKill:
		c.p.kill("worker")
		in.note(kind, "worker killed, restarted after %v", down)
		time.Sleep(down)
		return c.startService(ctx, "worker")
	case faultGatewayTerm:
		// Requests in flight when the gateway is told to stop: drills opened
		// through the CLI at once. Each either is acknowledged (and must then
		// exist and run to closure) or fails and is retried under its id.
		var runs []*crisisRun
		results := make([]error, 4)
		var wg sync.WaitGroup
		for i := range results {
			cr := &crisisRun{name: w.newID("SN"), country: "SN", crisisType: drillTypes[rng.IntN(len(drillTypes))], drill: true}
			cr.id = chaosDrillID(cr.name)
			runs = append(runs, cr)
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := c.p.cli(ctx, "duty", "crisis", "open", "--id", cr.name, "--title", "Cluster "+cr.name, "--country", cr.country,
					"--type", cr.crisisType, "--severity", "3", "--drill", "--drill-delay", "1s", "--drill-time-scale", "0.000001")
				if err != nil {
					err = fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
				}
				results[i] = err
			}()
		}
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		took, code, err := c.terminate("gateway")
		wg.Wait()
		if err != nil {
			return err
		}
		acked := 0
		for i, cr := range runs {
			if results[i] == nil {
				acked++
				w.add(cr)
			}
		}
		in.note(kind, "gateway stopped gracefully in %v (exit %d) with %d opens in flight: %d acknowledged, %d refused or cut (retried); restarted after %v",
			took.Round(time.Millisecond), code, len(runs), acked, len(runs)-acked, down)
		c.gmu.Lock()
		c.inFlight = append(c.inFlight, fmt.Sprintf("gateway: %d of %d opens in flight acknowledged", acked, len(runs)))
		c.gmu.Unlock()
		time.Sleep(down)
		if err := c.startService(ctx, "gateway"); err != nil {
			return err
		}
		for i, cr := range runs {
			if results[i] == nil {
				// Acknowledged before the stop: it must be there now.
				// Asked until the restarted gateway answers for it (its
				// first reads may still meet a reconnecting client); a
				// crisis that is not there fails this after the bound.
				err := eventually(ctx, time.Minute, "crisis "+cr.id+" (acknowledged before the gateway stopped) readable", func() (bool, string) {
					var m map[string]any
					if err := c.p.api(ctx, "GET", "/v1/crises/"+cr.id, "auditor", nil, &m); err != nil {
						return false, err.Error()
					}
					return true, ""
				})
				if err != nil {
					return fmt.Errorf("crisis %s was acknowledged before the gateway stopped, and is not there: %w", cr.id, err)
				}
				continue
			}
			if err := w.open(ctx, cr); err != nil {
				return err
			}
		}
		return nil
	case faultFundingTerm:
		// Disbursements in flight: drills opened just before, whose drill
		// funding the worker asks of funding as it stops.
		for range 3 {
			cr := &crisisRun{name: w.newID("GH"), country: "GH", crisisType: drillTypes[rng.IntN(len(drillTypes))], drill: true}
			go func() {
				if err := w.open(ctx, cr); err != nil {
					cr.mu.Lock()
					cr.err = err
					cr.mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(1000+rng.IntN(1500)) * time.Millisecond)
		took, code, err := c.terminate("funding")
		if err != nil {
			return err
		}
		in.note(kind, "funding stopped gracefully in %v (exit %d) as drills asked for their disbursements, restarted after %v", took.Round(time.Millisecond), code, down)
		time.Sleep(down)
		return c.startService(ctx, "funding")
	}
	return fmt.Errorf("unknown fault %q", kind)
}

// terminate stops a service with SIGTERM, as an orchestrator does, and
// waits for it: a graceful stop exits 0 once what it took is finished.
func (c *clusterRun) terminate(name string) (time.Duration, int, error) {
	p := c.p
	p.mu.Lock()
	pr := p.procs[name]
	if pr != nil {
		pr.killed = true
	}
	p.mu.Unlock()
	if pr == nil {
		return 0, 0, fmt.Errorf("%s is not running", name)
	}
	start := time.Now()
	if err := pr.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, 0, err
	}
	select {
	case <-pr.done:
	case <-time.After(60 * time.Second):
		_ = pr.cmd.Process.Kill()
		<-pr.done
		return 0, 0, fmt.Errorf("%s did not stop within 60s of SIGTERM", name)
	}
	took := time.Since(start)
	code := pr.cmd.ProcessState.ExitCode()
	c.gmu.Lock()
	c.graceful = append(c.graceful, fmt.Sprintf("%s exit %d in %v", name, code, took.Round(time.Millisecond)))
	c.gmu.Unlock()
	if code != 0 {
		return took, code, fmt.Errorf("%s exited %d after SIGTERM: not a graceful stop (see %s)", name, code, p.logFile(name))
	}
	return took, code, nil
}

// checkReplicas: the crisis stream is replicated on every node and each
// replica is current once the faults are over.
func (c *clusterRun) checkReplicas(ctx context.Context, v *verdict, fig *figures) {
	var summary string
	err := eventually(ctx, 2*time.Minute, "crisis stream replicas current", func() (bool, string) {
		nc, err := c.p.connect(natsauth.Observer)
		if err != nil {
			return false, err.Error()
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false, err.Error()
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var parts []string
		for _, name := range []string{eventbus.StreamName, "DEMARCHE_LEDGER", "DEMARCHE_AUDIT"} {
			st, err := js.Stream(ctx, name)
			if err != nil {
				return false, name + ": " + err.Error()
			}
			info, err := st.Info(ctx)
			if err != nil {
				return false, name + ": " + err.Error()
			}
			if info.Config.Replicas != cluster.Replicas || info.Cluster == nil {
				return false, fmt.Sprintf("%s has %d replicas, want %d", name, info.Config.Replicas, cluster.Replicas)
			}
			current := 1 // the leader
			for _, r := range info.Cluster.Replicas {
				if r.Current && !r.Offline {
					current++
				}
			}
			if current != cluster.Replicas {
				return false, fmt.Sprintf("%s: %d of %d replicas current", name, current, cluster.Replicas)
			}
			parts = append(parts, fmt.Sprintf("%s R%d (leader %s, %d msgs)", name, info.Config.Replicas, info.Cluster.Leader, info.State.Msgs))
		}
		summary = strings.Join(parts, "; ")
		return true, ""
	})
	if err != nil {
		v.fail("%v", err)
		return
	}
	fig.add("replicas", "%s; every replica current", summary)
}

// readProfile checks that path holds a CPU profile pprof can read.
func readProfile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return fmt.Errorf("not a profile: %w", err)
	}
	if len(p.SampleType) == 0 {
		return fmt.Errorf("a profile without sample types")
	}
	return nil
}

// withNATSSync applies DEMARCHE_CLUSTER_NATS_SYNC to a node's configuration:
// "default" (make bench-cluster NATS_SYNC=default) measures what
// sync_interval: always costs by running NATS's default, an fsync every two
// minutes (services/platform says when that is safe); "" and "always" keep
// deploy/'s.
func withNATSSync(conf, sync string) (string, error) {
	switch sync {
	case "", "always":
		return conf, nil
	case "default":
		const line = "  sync_interval: always\n"
		if !strings.Contains(conf, line) {
			return "", fmt.Errorf("DEMARCHE_CLUSTER_NATS_SYNC=default: the node's configuration has no %q to take out", strings.TrimSpace(line))
		}
		return strings.Replace(conf, line, "", 1), nil
	default:
		return "", fmt.Errorf("DEMARCHE_CLUSTER_NATS_SYNC=%q: allowed always (deploy/'s) or default (NATS's: fsync every two minutes)", sync)
	}
}

// TestNATSSyncSwitch: NATS_SYNC=default takes sync_interval: always out of
// a real node configuration and leaves the rest; "" and always keep it; any
// other value is refused, naming both.
func TestNATSSyncSwitch(t *testing.T) {
	nodes := []cluster.Endpoint{{Host: "127.0.0.1", Bind: "127.0.0.1", ClientPort: 4222, ClusterPort: 6222, Monitor: 8222}}
	conf := cluster.NATSServerConfig("nats-1", nodes[0], nodes, "/data/jetstream", "authorization.conf")
	for _, keep := range []string{"", "always"} {
		if got, err := withNATSSync(conf, keep); err != nil || got != conf {
			t.Errorf("%q: changed the configuration or failed: %v", keep, err)
		}
	}
	got, err := withNATSSync(conf, "default")
	if err != nil || strings.Contains(got, "sync_interval") || !strings.Contains(got, "store_dir") || len(conf)-len(got) != len("  sync_interval: always\n") {
		t.Errorf("default: want only sync_interval taken out, got (%v):\n%s", err, got)
	}
	if _, err := withNATSSync(conf, "weekly"); err == nil || !strings.Contains(err.Error(), "always") || !strings.Contains(err.Error(), "default") {
		t.Errorf("weekly: want a refusal naming always and default, got %v", err)
	}
}
