package chaos_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/ports"
)

// platform is `demarche dev` and the services run beside it as child
// processes, on one data folder and fixed ports (kept across restarts).
type platform struct {
	t       *testing.T
	bin     string
	dir     string // logs and the data folder
	data    string
	natsURL string
	apiURL  string
	ports   struct{ nats, temporal, temporalHTTP, http int }
	// metrics is each process's Prometheus port: `demarche dev` and every
	// `demarche serve` default to 127.0.0.1:9464, and a second process on
	// that port (or another test's) would exit at start.
	metrics map[string]int
	// separate lists the services run as their own processes.
	separate []string

	mu         sync.Mutex
	procs      map[string]*proc
	unexpected []string // processes that died without being killed
}

type proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	killed bool
}

// buildBinary builds demarche from this repository (or takes DEMARCHE_CHAOS_BIN).
func buildBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("DEMARCHE_CHAOS_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "demarche")
	build := exec.Command("go", "build", "-o", bin, "../cmd/demarche")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build demarche: %v\n%s", err, out)
	}
	return bin
}

func newPlatform(t *testing.T, bin, dir string) *platform {
	t.Helper()
	p := &platform{t: t, bin: bin, dir: dir, data: filepath.Join(dir, "data"), procs: map[string]*proc{}, separate: []string{"worker", "audit"}}
	taken := map[int]bool{}
	for _, port := range []*int{&p.ports.nats, &p.ports.temporal, &p.ports.temporalHTTP, &p.ports.http} {
		*port = stablePort(t, taken)
	}
	p.metrics = map[string]int{}
	for _, name := range append([]string{"dev"}, p.separate...) {
		p.metrics[name] = stablePort(t, taken)
	}
	p.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", p.ports.nats)
	p.apiURL = fmt.Sprintf("http://127.0.0.1:%d", p.ports.http)
	return p
}

// stablePort picks a free port below Linux's ephemeral range (32768 and
// up): the stack is restarted on the same ports, and while it is down an
// ephemeral port could be taken by any client connection's source port.
func stablePort(t *testing.T, taken map[int]bool) int {
	t.Helper()
	for range 1000 {
		port := 20000 + mrand.IntN(12000)
		if taken[port] {
			continue
		}
		if ports.CheckFree("127.0.0.1", port, "") == nil {
			taken[port] = true
			return port
		}
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}

// logFile is where a process's output goes, appended across restarts.
func (p *platform) logFile(name string) string { return filepath.Join(p.dir, name+".log") }

func (p *platform) spawn(name string, args ...string) error {
	f, err := os.OpenFile(p.logFile(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "\n===== %s start %s: %s\n", time.Now().Format(time.RFC3339Nano), name, strings.Join(args, " "))
	cmd := exec.Command(p.bin, args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "DEMARCHE_DATA_DIR="+p.data)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
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

// startDev starts `demarche dev` and waits until the gateway and NATS answer.
// A new data folder's demo funds are opened on the audit chain, so the very
// first start of a folder runs the audit service inside dev (`demarche dev
// --without audit` refuses a new folder): it is stopped gracefully once
// ready, and dev starts again without the separate services.
func (p *platform) startDev(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(p.data, "nats")); os.IsNotExist(err) && slices.Contains(p.separate, "audit") {
		first := slices.DeleteFunc(slices.Clone(p.separate), func(s string) bool { return s == "audit" })
		if err := p.runDev(ctx, first); err != nil {
			return fmt.Errorf("first start of the data folder: %w", err)
		}
		p.mu.Lock()
		pr := p.procs["dev"]
		pr.killed = true
		p.mu.Unlock()
		_ = pr.cmd.Process.Signal(syscall.SIGTERM)
		<-pr.done
	}
	return p.runDev(ctx, p.separate)
}

func (p *platform) runDev(ctx context.Context, without []string) error {
	args := []string{"dev", "--data-dir", p.data, "--no-ui", "--log-level", "warn",
		"--nats-port", fmt.Sprint(p.ports.nats), "--temporal-port", fmt.Sprint(p.ports.temporal),
		"--temporal-http-port", fmt.Sprint(p.ports.temporalHTTP), "--http-port", fmt.Sprint(p.ports.http),
		"--nats-restart-downtime", "2s", "--metrics-listen", p.metricsAddr("dev")}
	if len(without) > 0 {
		args = append(args, "--without", strings.Join(without, ","))
	}
	if err := p.spawn("dev", args...); err != nil {
		return err
	}
	return eventually(ctx, 3*time.Minute, "demarche dev ready (gateway /healthz and NATS)", func() (bool, string) {
		resp, err := http.Get(p.apiURL + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		nc, err := p.connect(natsauth.Observer)
		if err != nil {
			return false, err.Error()
		}
		nc.Close()
		return true, ""
	})
}

// startService runs one service as its own process with its own credentials.
// Roster and funding take the demo roster and funds demarche dev writes into
// its data folder.
func (p *platform) startService(name string) error {
	args := []string{"serve", name, "--log-level", "warn", "--nats-url", p.natsURL, "--metrics-listen", p.metricsAddr(name),
		"--nats-creds", natsauth.FileName(filepath.Join(p.data, "nats-credentials"), natsauth.Identity(name)),
		"--temporal-address", fmt.Sprintf("127.0.0.1:%d", p.ports.temporal)}
	switch name {
	case "roster":
		args = append(args, "--roster", filepath.Join(p.data, stack.DemoRosterFile))
	case "funding":
		args = append(args, "--funds", filepath.Join(p.data, stack.DemoFundsFile))
	}
	return p.spawn(name, args...)
}

// metricsAddr is where a process serves /metrics.
func (p *platform) metricsAddr(name string) string {
	return fmt.Sprintf("127.0.0.1:%d", p.metrics[name])
}

// kill sends SIGKILL to a process and waits for it to be gone.
func (p *platform) kill(name string) {
	p.mu.Lock()
	pr := p.procs[name]
	if pr != nil {
		pr.killed = true
	}
	p.mu.Unlock()
	if pr == nil {
		return
	}
	_ = pr.cmd.Process.Signal(syscall.SIGKILL)
	<-pr.done
}

// signal sends a signal to a running process.
func (p *platform) signal(name string, sig os.Signal) error {
	p.mu.Lock()
	pr := p.procs[name]
	p.mu.Unlock()
	if pr == nil {
		return fmt.Errorf("%s is not running", name)
	}
	return pr.cmd.Process.Signal(sig)
}

// stopAll kills every process (the end of the run).
func (p *platform) stopAll() {
	p.mu.Lock()
	names := make([]string, 0, len(p.procs))
	for n := range p.procs {
		names = append(names, n)
	}
	p.mu.Unlock()
	for _, n := range names {
		p.kill(n)
	}
}

func (p *platform) unexpectedExits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}

// logTails is the end of each process's log, for a failure message.
func (p *platform) logTails(lines int) string {
	var b strings.Builder
	for _, name := range append([]string{"dev"}, p.separate...) {
		f, err := os.Open(p.logFile(name))
		if err != nil {
			continue
		}
		var all []string
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			all = append(all, sc.Text())
		}
		f.Close()
		fmt.Fprintf(&b, "--- %s (last %d lines of %s)\n%s\n", name, lines, p.logFile(name), strings.Join(all[max(0, len(all)-lines):], "\n"))
	}
	return b.String()
}

// connect opens a NATS connection as one of the data folder's identities.
func (p *platform) connect(id natsauth.Identity) (*nats.Conn, error) {
	u, err := natsauth.WithCredentialsFile(p.natsURL, natsauth.FileName(filepath.Join(p.data, "nats-credentials"), id))
	if err != nil {
		return nil, err
	}
	return nats.Connect(u, natsx.InboxOption(u), nats.Name("demarche-chaos"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.Timeout(5*time.Second))
}

// token is a demo identity's bearer token from the data folder.
func (p *platform) token(identity string) string {
	b, err := os.ReadFile(filepath.Join(p.data, "auth", identity+".token"))
	if err != nil {
		p.t.Fatalf("token of %s: %v", identity, err)
	}
	return strings.TrimSpace(string(b))
}

// errUnavailable marks an answer that says nothing about the platform's
// state: the gateway was down or answered 5xx (a fault in progress).
var errUnavailable = errors.New("platform unavailable")

// api sends one request to the gateway and decodes the JSON answer into out.
func (p *platform) api(ctx context.Context, method, path, identity string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.apiURL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.token(identity))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", errUnavailable, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", errUnavailable, method, path, err)
	}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%w: %s %s: %d %s", errUnavailable, method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// cli runs one demarche command against the gateway as a demo identity.
func (p *platform) cli(ctx context.Context, identity string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append(args, "--server", p.apiURL, "--token", p.token(identity), "--log-level", "error")...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "DEMARCHE_DATA_DIR="+p.data, "DEMARCHE_NATS_URL="+p.natsURL,
		fmt.Sprintf("DEMARCHE_TEMPORAL_ADDRESS=127.0.0.1:%d", p.ports.temporal))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// eventually polls cond until it holds; after timeout it fails with what was
// awaited and the last thing cond said was missing. No timing is asserted:
// the timeouts are generous bounds, not expectations.
func eventually(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if why != "" {
			last = why
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v (last: %s)", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %s)", what, ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
