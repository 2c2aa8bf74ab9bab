package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/demarche/demarche/devstack/bench"
	"github.com/demarche/demarche/pkg/temporalx"
)

// TestBenchCluster is make bench-cluster (env DEMARCHE_BENCH_CLUSTER=1): it
// starts the cluster of TestCluster (PostgreSQL, Temporal on it, three NATS
// nodes, every service its own process) and runs demarche bench against it
// at full size, as docs/operations.md says to measure a cluster; the table
// is printed, bench.json, bench.svg and bench.md go to DEMARCHE_BENCH_OUT
// (default bench-results/cluster at the repository's root). Extra flags
// (--only, sizes, --profile) come from DEMARCHE_BENCH_FLAGS; with --profile,
// every service's and Temporal's CPU profile per scenario is written too
// (<scenario>.<process>.cpu.pprof, read from their --pprof-listen). The figures are
// measured, not judged: it fails only when the bench could not run or a
// scenario failed.
func TestBenchCluster(t *testing.T) {
	if os.Getenv("DEMARCHE_BENCH_CLUSTER") == "" {
		t.Skip("demarche bench against the multi-process cluster runs with make bench-cluster (DEMARCHE_BENCH_CLUSTER=1)")
	}
	out := os.Getenv("DEMARCHE_BENCH_OUT")
	if out == "" {
		out = "../../bench-results/cluster"
	}
	out, err := filepath.Abs(out)
	if err != nil {
		t.Fatal(err)
	}
	c, ctx, _ := startCluster(t)
	rep, err := c.bench(ctx, out, strings.Fields(os.Getenv("DEMARCHE_BENCH_FLAGS"))...)
	if err != nil {
		t.Fatalf("demarche bench against the cluster: %v", err)
	}
	for _, f := range rep.Failures {
		t.Errorf("scenario failed: %s", f)
	}
}

// bench runs demarche bench against the cluster with the flags of
// docs/operations.md ("Sizing": measure a cluster) and extra ones, writing
// into out; its table and progress go to this test's output. It returns the
// report it wrote (bench.json), whether or not a scenario failed.
func (c *clusterRun) bench(ctx context.Context, out string, extra ...string) (*bench.Report, error) {
	p := c.p
	// Where the cluster is and the credentials of the identities the bench
	// acts as, as `demarche admin credentials` lays them out (here in the
	// data folder's nats-credentials and temporal-credentials).
	where := []string{
		"--nats-url", p.natsURL, "--nats-credentials", filepath.Join(p.data, "nats-credentials"),
		"--temporal-address", fmt.Sprintf("127.0.0.1:%d", p.ports.temporal), "--temporal-credentials", filepath.Join(p.data, temporalx.CredentialsDir)}
	if err := checkDocumentedBench(where); err != nil {
		return nil, err
	}
	args := append(append([]string{"bench"}, where...), append([]string{"--out", out}, extra...)...)
	if slices.Contains(extra, "--profile") {
		// Every process's own CPU profile beside the bench's
		// (<scenario>.<process>.cpu.pprof): where the cluster's time goes.
		var procs []string
		for _, name := range slices.Sorted(maps.Keys(c.pprof)) {
			procs = append(procs, name+"="+c.pprofAddr(name))
		}
		args = append(args, "--service-pprof", strings.Join(procs, ","))
	}
	// Every process's CPU per operation (PostgreSQL's with its connections'
	// processes): on one machine they share the cores, and what each spends
	// per crossing against per bare workflow says which one bounds it.
	var pids []string
	p.mu.Lock()
	for _, name := range slices.Sorted(maps.Keys(p.procs)) {
		if pr := p.procs[name]; name != "provision" && pr.cmd.Process != nil {
			pids = append(pids, fmt.Sprintf("%s=%d", name, pr.cmd.Process.Pid))
		}
	}
	p.mu.Unlock()
	args = append(args, "--service-pid", strings.Join(pids, ","))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(p.dir, "bench.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	fmt.Fprintf(log, "%s %s\n", p.bin, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Dir = p.dir // no .demarche there: the flags alone say where and as whom
	// The report names the commit measured: the child's git reads this
	// checkout, not the temporary folder it runs in.
	cmd.Env = os.Environ()
	if gitDir, err := exec.Command("git", "rev-parse", "--absolute-git-dir").Output(); err == nil {
		if top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output(); err == nil {
			cmd.Env = append(cmd.Env, "GIT_DIR="+strings.TrimSpace(string(gitDir)), "GIT_WORK_TREE="+strings.TrimSpace(string(top)))
		}
	}
	// The table (stdout) and the progress (stderr) show as they come, and
	// are kept beside the cluster's logs.
	cmd.Stdout, cmd.Stderr = io.MultiWriter(os.Stdout, log), io.MultiWriter(os.Stderr, log)
	runErr := cmd.Run()
	b, err := os.ReadFile(filepath.Join(out, "bench.json"))
	if err != nil {
		return nil, fmt.Errorf("no bench.json (%w); the bench said: %v (see %s)", err, runErr, log.Name())
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("bench.json: %w", err)
	}
	if runErr != nil && len(rep.Failures) == 0 {
		return nil, fmt.Errorf("demarche bench: %w (see %s)", runErr, log.Name())
	}
	return &rep, nil
}

// checkDocumentedBench: the command docs/operations.md gives to measure a
// cluster names the flags this run reaches the cluster with (a procedure in
// the docs is a test).
func checkDocumentedBench(args []string) error {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		return err
	}
	doc := string(b)
	i := strings.Index(doc, "demarche bench --nats-url")
	if i < 0 {
		return fmt.Errorf("docs/operations.md no longer says how to measure a cluster (demarche bench --nats-url ...)")
	}
	block := doc[i:]
	if j := strings.Index(block, "```"); j >= 0 {
		block = block[:j]
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--") && !strings.Contains(block, a+" ") {
			return fmt.Errorf("docs/operations.md's demarche bench command lacks %s, which the cluster's run uses", a)
		}
	}
	return nil
}
