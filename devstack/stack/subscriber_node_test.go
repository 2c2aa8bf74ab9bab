package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	_ "github.com/demarche/demarche/proto/demarche/v1" // the event types, to decode the platform's own copy
	"github.com/demarche/demarche/services/partners"
)

// journalLine is one event the Node subscriber handled (its --state journal).
type journalLine struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	Crisis  string         `json:"crisis"`
	Subject string         `json:"subject"`
	Seq     uint64         `json:"seq"`
	Data    map[string]any `json:"data"`
}

func readJournal(t *testing.T, path string) []journalLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	var out []journalLine
	for _, l := range strings.Split(string(b), "\n") {
		var j journalLine
		if l == "" || json.Unmarshal([]byte(l), &j) != nil {
			continue // a line cut by the kill: its event was not acknowledged
		}
		out = append(out, j)
	}
	return out
}

// TestNodeSubscriberFollowsASharedThenUnsharedCrisis runs
// examples/subscriber-node (Node.js, nats.js and @bufbuild/protobuf, written
// from docs/asyncapi.json and docs/events.md alone) as the partner ECOWAS,
// with ECOWAS's own credential, during a crisis shared with ECOWAS and then
// unshared; the subscriber is killed with SIGKILL mid-stream and restarted.
// Every event delivered to ECOWAS is handled exactly once, in the crisis's
// order, decoded (with the descriptor set fetched over NATS) to the same
// protobuf JSON as ECOWAS's copy (partners.PartnerCopy) of the platform's
// event on DEMARCHE_CRISIS; nothing after
// the unsharing reaches it; it reports its lag.
// Skipped when node or npm is missing (CI installs Debian's nodejs and npm);
// npm ci needs the npm registry.
func TestNodeSubscriberFollowsASharedThenUnsharedCrisis(t *testing.T) {
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		t.Skip("node and npm are needed for examples/subscriber-node (Debian: apt-get install nodejs npm)")
	}
	example, err := filepath.Abs(filepath.Join("..", "..", "examples", "subscriber-node"))
	if err != nil {
		t.Fatal(err)
	}
	install := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	install.Dir = example
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci (examples/subscriber-node): %v\n%s", err, out)
	}

	s := startStack(t, t.TempDir())
	defer s.Stop()
	duty := apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile("duty"))}
	open := func(title, country string) string {
		t.Helper()
		code, opened, raw := duty.call("POST", "/v1/crises", `{"crisis": {"title": "`+title+`", "countryCode": "`+country+`", "crisisType": "unconstitutional-change", "severity": 1, "confidentiality": "restricted"}}`)
		if code != http.StatusCreated {
			t.Fatalf("open: %d %s", code, raw)
		}
		return openedIDHTTP(t, opened)
	}
	// Two crises shared with ECOWAS: one unshared midway, one kept.
	titles := map[string]string{}
	unshared := open("Node subscriber: talks in Conakry", "GN")
	kept := open("Node subscriber: Bamako transition", "ML")
	titles[unshared], titles[kept] = "Node subscriber: talks in Conakry", "Node subscriber: Bamako transition"

	// The subscriber, as a partner would run it: its credentials file, the
	// server's URL without credentials, a short ack wait (a crash stalls the
	// feed this long).
	dir := t.TempDir()
	state := filepath.Join(dir, "ecowas-handled.jsonl")
	args := []string{filepath.Join(example, "subscriber.mjs"), "--server", s.NATSURL(),
		"--creds", s.CredentialsFile(natsauth.PartnerIdentity("ECOWAS")), "--org", "ECOWAS",
		"--state", state, "--ack-wait", "2", "--lag-every", "0.5"}
	run := &subscriberRun{}
	// The first run holds its 5th event handled but unacknowledged (the
	// worst moment to crash) until it is killed.
	const held = 5
	cmd := run.start(t, node, append(args, "--hold-after", fmt.Sprint(held))...)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	handled := func(id string) []journalLine {
		var out []journalLine
		for _, l := range readJournal(t, state) {
			if l.Crisis == id || id == "" {
				out = append(out, l)
			}
		}
		return out
	}
	escalate := func(id, why string) {
		t.Helper()
		if code, _, raw := duty.call("POST", "/v1/crises/"+id+"/controls/escalate", `{"reason": "`+why+`"}`); code != http.StatusOK {
			t.Fatalf("escalate: %d %s", code, raw)
		}
	}
	share := func(id string, args ...string) {
		t.Helper()
		if out, err := runCLI(t, s, append([]string{"crisis", "share", id}, args...)...); err != nil || !strings.Contains(out, "shared with") {
			t.Fatalf("crisis share %v: %v\n%s", args, err, out)
		}
	}

	// Shared with ECOWAS (the first also with the AU, whose feed shows when
	// the fan-out has passed the events after ECOWAS's unsharing).
	share(unshared, "--with", "ECOWAS,AU", "--reason", "ECOWAS mediates")
	share(kept, "--with", "ECOWAS", "--reason", "ECOWAS observes")
	escalate(unshared, "the junta closes the borders")
	escalate(kept, "curfew")
	escalate(kept, "arrests")
	// Killed mid-stream (SIGKILL: no goodbye) holding an event, while more happens.
	waitFor(t, func() bool { return len(handled("")) >= held })
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	killedAt := len(handled(""))
	if killedAt != held {
		t.Fatalf("the first run handled %d events, want %d then held", killedAt, held)
	}
	heldID := handled("")[held-1].ID
	escalate(unshared, "troops in the capital")
	escalate(kept, "strikes")
	cmd = run.start(t, node, args...)

	// Unshared; what follows reaches the AU and not ECOWAS.
	share(unshared, "--unshare", "ECOWAS", "--reason", "the AU takes over")
	escalate(unshared, "the talks collapse")
	escalate(kept, "the army splits")
	_, js := jsOf(t, s)
	partnerCount := func(partner, id, event string) uint64 {
		st, err := js.Stream(context.Background(), partners.PartnerStream(partner))
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(fmt.Sprintf("%s.%s.*.*.%s.%s", partners.SubjectRoot, partner, id, event)))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	waitFor(t, func() bool {
		return partnerCount("AU", unshared, "severity_changed") == 3 && partnerCount("ECOWAS", kept, "severity_changed") == 4
	})
	delivered := map[string]uint64{unshared: partnerCount("ECOWAS", unshared, "*"), kept: partnerCount("ECOWAS", kept, "*")}
	waitFor(t, func() bool {
		return uint64(len(handled(unshared))) >= delivered[unshared] && uint64(len(handled(kept))) >= delivered[kept]
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	t.Logf("ECOWAS: %d events delivered, %d handled (%d before the kill)", delivered[unshared]+delivered[kept], len(handled("")), killedAt)

	once := map[string]bool{}
	for _, c := range []struct {
		id       string
		severity string // the changes ECOWAS must see
		last     string // the last event it must see
		now      string // the platform's severity at the end
	}{
		{unshared, "[2 3]", "org.demarche.crisis.sharing_changed.v1", "4"},
		{kept, "[2 3 4 5]", "org.demarche.crisis.severity_changed.v1", "5"},
	} {
		id := c.id
		// The platform's own copy: the crisis's events on DEMARCHE_CRISIS,
		// in order, decoded by Go's protojson.
		oc, err := js.OrderedConsumer(context.Background(), eventbus.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventbus.CrisisEvents(id)}})
		if err != nil {
			t.Fatal(err)
		}
		type platformEvent struct {
			index int
			typ   string
			data  map[string]any
		}
		platform := map[string]platformEvent{}
		var lastSeverity string
		for n, i := streamCount(t, js, eventbus.CrisisEvents(id)), 0; uint64(i) < n; i++ {
			m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			mt, err := protoregistry.GlobalTypes.FindMessageByURL(m.Headers().Get("ce-dataschema"))
			if err != nil {
				t.Fatalf("the platform's event %s: %v", m.Headers().Get("ce-id"), err)
			}
			msg := mt.New().Interface()
			if err := proto.Unmarshal(m.Data(), msg); err != nil {
				t.Fatal(err)
			}
			// What ECOWAS must have decoded is its own copy of the event
			// (partners.PartnerCopy); an event it receives nothing of is
			// kept for the order only.
			if copied, ok := partners.PartnerCopy(eventbus.Event{Data: msg}, "ECOWAS"); ok {
				msg = copied.Data
			}
			b, err := protojson.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			var data map[string]any
			if err := json.Unmarshal(b, &data); err != nil {
				t.Fatal(err)
			}
			ceID := m.Headers().Get("ce-id")
			platform[ceID] = platformEvent{index: i, typ: m.Headers().Get("ce-type"), data: data}
			if strings.HasSuffix(m.Subject(), ".severity_changed") {
				lastSeverity = ceID
			}
		}

		got := handled(id)
		if uint64(len(got)) != delivered[id] {
			t.Errorf("%s: the subscriber handled %d events, ECOWAS's stream delivered %d", id, len(got), delivered[id])
		}
		last := -1
		for _, l := range got {
			if once[l.ID] {
				t.Errorf("%s: event %s (%s) handled twice", id, l.ID, l.Type)
			}
			once[l.ID] = true
			p, ok := platform[l.ID]
			if !ok {
				t.Errorf("%s: event %s (%s) is not one of the crisis's events on DEMARCHE_CRISIS", id, l.ID, l.Type)
				continue
			}
			if p.index <= last {
				t.Errorf("%s: event %s (%s) handled after a later event of its crisis", id, l.ID, l.Type)
			}
			last = p.index
			if l.Type != p.typ || !reflect.DeepEqual(l.Data, p.data) {
				t.Errorf("%s: event %s decoded by Node as %s %v; the platform's: %s %v", id, l.ID, l.Type, l.Data, p.typ, p.data)
			}
			if !strings.HasPrefix(l.Subject, "demarche.partner.ECOWAS.") || !strings.Contains(l.Subject, "."+id+".") {
				t.Errorf("%s: event %s on subject %s, not ECOWAS's copy of its crisis's", id, l.ID, l.Subject)
			}
		}
		if len(got) == 0 || got[0].Type != "org.demarche.crisis.crisis_opened.v1" {
			t.Fatalf("%s: the first event handled is not the crisis's opening: %v", id, got)
		}
		if cr, _ := got[0].Data["crisis"].(map[string]any); cr["id"] != id || cr["title"] != titles[id] {
			t.Errorf("%s: the opening decoded as %v, want titled %q", id, got[0].Data, titles[id])
		}
		var sev []any
		for _, l := range got {
			if l.Type == "org.demarche.crisis.severity_changed.v1" {
				sev = append(sev, l.Data["to"])
			}
		}
		if fmt.Sprint(sev) != c.severity {
			t.Errorf("%s: severity changes handled: %v, want %s", id, sev, c.severity)
		}
		if l := got[len(got)-1]; l.Type != c.last {
			t.Errorf("%s: the last event handled is %s %v, want a %s", id, l.Type, l.Data, c.last)
		}
		if id == unshared {
			if l := got[len(got)-1]; fmt.Sprint(l.Data["removed"]) != "[ECOWAS]" {
				t.Errorf("%s: the last event handled is %v, want the unsharing", id, l.Data)
			}
			if once[lastSeverity] {
				t.Errorf("%s: the escalation after the unsharing (%s) reached ECOWAS", id, lastSeverity)
			}
		}
		_, st, _ := duty.call("GET", "/v1/crises/"+id, "")
		if cr, _ := st["crisis"].(map[string]any); fmt.Sprint(cr["severity"]) != c.now {
			t.Errorf("%s: the platform's view: severity %v, want %s", id, cr["severity"], c.now)
		}
	}

	// What it printed, and its lag reports.
	run.mu.Lock()
	defer run.mu.Unlock()
	printed := map[string]int{}
	for _, l := range run.lines {
		printed[fmt.Sprint(l["id"])]++
	}
	for ceID, n := range printed {
		if n > 1 || !once[ceID] {
			t.Errorf("stdout: event %s printed %d times (in the journal: %v)", ceID, n, once[ceID])
		}
	}
	// The held event came back after the restart, was recognised, and not handled again.
	if !strings.Contains(run.stderr.String(), "duplicate "+heldID) {
		t.Errorf("the restarted subscriber did not receive the held event %s again, or handled it:\n%s", heldID, run.stderr.String())
	}
	if !strings.Contains(run.stderr.String(), "lag: 0 pending") {
		t.Errorf("no lag report reaching 0:\n%s", run.stderr.String())
	}
}
