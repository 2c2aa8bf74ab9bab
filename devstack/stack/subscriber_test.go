package stack_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/services/contract"
)

// subscriberRun is the example subscriber (examples/subscriber, its own
// module) running as a process, and the events it handled.
type subscriberRun struct {
	mu     sync.Mutex
	lines  []map[string]any
	stderr strings.Builder
}

func (r *subscriberRun) start(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// Stdout through an io.Pipe, not StdoutPipe: Wait then returns only once
	// every line the subscriber wrote before it stopped has been read (with
	// StdoutPipe, Wait closes the pipe and a last line can be lost).
	stdout, pw := io.Pipe()
	cmd.Stdout = pw
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l map[string]any
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				continue
			}
			r.mu.Lock()
			r.lines = append(r.lines, l)
			r.mu.Unlock()
		}
	}()
	go func() {
		b, _ := io.ReadAll(stderr)
		r.mu.Lock()
		r.stderr.Write(b)
		r.mu.Unlock()
	}()
	return cmd
}

// ids are the ce-ids handled for one crisis, in order, and the count of lines whose type is typ.
func (r *subscriberRun) ids(crisisID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if l["crisis"] == crisisID {
			out = append(out, l["id"].(string))
		}
	}
	return out
}

func (r *subscriberRun) saw(crisisID, ceType string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if l["crisis"] == crisisID && l["type"] == ceType {
			return true
		}
	}
	return false
}

// The example subscriber, built on its own with only nats.go and protobuf,
// follows the africa region through a drill while it is stopped and
// restarted: it sees every event of the crisis once, in stream order, decoded
// with the schema it fetched; nothing of a crisis in another region; and it
// reports its lag.
func TestExampleSubscriberFollowsARegion(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	dir := t.TempDir()
	bin := filepath.Join(dir, "subscriber")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..", "examples", "subscriber")
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build examples/subscriber: %v\n%s", err, out)
	}
	args := []string{"--nats-url", s.NATSURLFor(natsauth.Subscriber), "--region", "africa", "--durable", "example-subscriber", "--state", filepath.Join(dir, "seen"), "--lag-every", "200ms"}
	run := &subscriberRun{}
	cmd := run.start(t, bin, args...)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	// Drills, named by their opener (ids in the opener's own namespace).
	id, other := drillID(t, "duty", "SUB01"), drillID(t, "duty", "SUB02")
	for _, c := range []struct{ id, country string }{{"SUB01", "GN"}, {"SUB02", "FR"}} {
		out, err := runCLI(t, s, "crisis", "open", "--id", c.id, "--title", "Subscriber drill", "--country", c.country,
			"--type", "unconstitutional-change", "--severity", "3", "--playbook", "general",
			"--drill", "--drill-delay", "1s", "--drill-time-scale", "0.000001")
		if err != nil {
			t.Fatalf("crisis open %s: %v\n%s", c.id, err, out)
		}
	}
	// Stop it mid-crisis and start it again: the durable consumer resumes.
	waitFor(t, func() bool { return len(run.ids(id)) >= 3 })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	cmd = run.start(t, bin, args...)
	closed := "org.demarche.crisis.crisis_closed.v1"
	waitFor(t, func() bool { return run.saw(id, closed) })

	// What the stream holds for the crisis, in order.
	_, js := jsOf(t, s)
	oc, err := js.OrderedConsumer(context.Background(), eventbus.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventbus.CrisisEvents(id)}})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for n := streamCount(t, js, eventbus.CrisisEvents(id)); uint64(len(want)) < n; {
		m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, m.Headers().Get("ce-id"))
	}
	if got := run.ids(id); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the subscriber did not see every event once, in order\n got %v\nwant %v", got, want)
	}
	if got := run.ids(other); len(got) != 0 {
		t.Errorf("the africa subscriber saw %d events of a crisis in europe", len(got))
	}
	run.mu.Lock()
	for _, l := range run.lines {
		if d, ok := l["data"].(map[string]any); l["crisis"] == id && (!ok || d["crisisId"] == nil && d["crisis"] == nil) {
			t.Errorf("event %v decoded without its crisis", l)
		}
	}
	run.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	run.mu.Lock()
	stderr := run.stderr.String()
	run.mu.Unlock()
	if !strings.Contains(stderr, "lag: ") {
		t.Errorf("no lag report:\n%s", stderr)
	}
}

// Every request subject the running services announce is in the AsyncAPI
// document, and every one the document lists is announced.
func TestAsyncAPIListsEveryServedSubject(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	nc, _ := jsOf(t, s)
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest("$SRV.INFO", inbox, nil); err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for {
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			break
		}
		var info micro.Info
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Fatal(err)
		}
		for _, ep := range info.Endpoints {
			served[info.Name+" "+ep.Subject] = true
		}
	}
	documented := map[string]bool{}
	for _, ep := range contract.Endpoints() {
		documented[ep.Service+" "+ep.Subject] = true
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("served but not in the AsyncAPI document (services/contract/endpoints.go): %s", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("in the AsyncAPI document but not served by the stack: %s", k)
		}
	}
}
