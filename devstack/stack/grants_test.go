package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/services/contract"
)

// The published document's word on access, as a partner's engineer reads it:
// docs/asyncapi.json, not pkg/natsauth (a document that lies must fail here).
type grantDoc struct {
	Servers    map[string]struct{ Security []any } `json:"servers"`
	Components struct {
		SecuritySchemes struct {
			NATS struct {
				Identities map[string]grantIdentity `json:"x-demarche-identities"`
			} `json:"nats"`
		} `json:"securitySchemes"`
	} `json:"components"`
}

type grantIdentity struct {
	User        string
	InboxPrefix string `json:"inboxPrefix"`
	Credential  struct{ Dev string }
	Durables    []struct {
		Stream, Name  string
		FilterSubject string `json:"filterSubject"`
	} `json:"durableConsumers"`
	JetStreamAPI  []string `json:"jetStreamAPI"`
	Publish       []string
	PublishDenied []string `json:"publishDenied"`
	Subscribe     []string
	Instances     []string
}

// expand turns a template ({ORG}, {source}) into one entry per instance.
func (g grantDoc) identities() map[string]grantIdentity {
	out := map[string]grantIdentity{}
	for name, id := range g.Components.SecuritySchemes.NATS.Identities {
		if len(id.Instances) == 0 {
			out[name] = id
			continue
		}
		placeholder := regexp.MustCompile(`\{[A-Za-z]+\}`).FindString(name)
		for _, inst := range id.Instances {
			b, _ := json.Marshal(id)
			b = []byte(strings.ReplaceAll(string(b), placeholder, inst))
			var one grantIdentity
			if err := json.Unmarshal(b, &one); err != nil {
				panic(err)
			}
			one.Instances = nil
			out[strings.ReplaceAll(name, placeholder, inst)] = one
		}
	}
	return out
}

// covers tells whether pattern (NATS wildcards) covers subject (wildcards
// allowed: a subscription must be a subset of an allowed pattern).
func covers(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i := range p {
		if p[i] == ">" {
			return i < len(s)
		}
		if i >= len(s) || s[i] == ">" || (p[i] != "*" && p[i] != s[i]) || (p[i] == "*" && s[i] == ">") {
			return false
		}
	}
	return len(p) == len(s)
}

func (id grantIdentity) mayPublish(subject string) bool {
	has := func(list []string) bool {
		return slices.ContainsFunc(list, func(p string) bool { return covers(p, subject) })
	}
	return has(id.Publish) && !has(id.PublishDenied)
}

func (id grantIdentity) maySubscribe(subject string) bool {
	return slices.ContainsFunc(id.Subscribe, func(p string) bool { return covers(p, subject) })
}

// concrete is a subject in a permission with its wildcards filled.
func concrete(subject string) string {
	t := strings.Split(subject, ".")
	for i := range t {
		if t[i] == "*" || t[i] == ">" {
			t[i] = "granttest"
		}
	}
	return strings.Join(t, ".")
}

var violation = regexp.MustCompile(`(?i)permissions violation for (publish|subscription) to "([^"]*)"`)

// violations collects a connection's permission errors in the order the
// server sent them.
type violations struct {
	mu   sync.Mutex
	seen []string // "pub <subject>" / "sub <subject>"
	cond *sync.Cond
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	m := violation.FindStringSubmatch(err.Error())
	if m == nil {
		return
	}
	kind := "pub"
	if strings.EqualFold(m[1], "subscription") {
		kind = "sub"
	}
	v.mu.Lock()
	v.seen = append(v.seen, kind+" "+m[2])
	v.mu.Unlock()
	v.cond.Broadcast()
}

// until waits for the violation want (the server answers in order: every
// violation of what came before it has arrived by then), bounded by the
// test's own deadline.
func (v *violations) until(t *testing.T, want string) []string {
	t.Helper()
	deadline := time.AfterFunc(30*time.Second, v.cond.Broadcast)
	defer deadline.Stop()
	start := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	for !slices.Contains(v.seen, want) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no permissions violation for %s (seen %v)", want, v.seen)
		}
		v.cond.Wait()
	}
	return slices.Clone(v.seen[:slices.Index(v.seen, want)])
}

// noStream makes a publish on a stream's subject one JetStream refuses to
// store: the permission is checked, nothing lands in the stream.
const noStream = "GRANT_TEST_NO_SUCH_STREAM"

// Every credential the AsyncAPI document lists, on the running stack: it
// connects (and without a credential the dev server refuses), every subject
// the document lets it publish and subscribe to is accepted, its inbox gets
// its replies, its durable consumers work under their documented names, and a
// sample of what the document does not grant (account info, another's
// consumer name, _INBOX.>, another's inbox, subjects outside) is refused:
// exactly what the document says, read from docs/asyncapi.json.
func TestAsyncAPIGrantsAreExact(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "asyncapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc grantDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Servers["dev"].Security) == 0 {
		t.Fatal("the document's dev server lists no security")
	}
	if contract.CredentialsDir != stack.CredentialsDir {
		t.Fatalf("the document says credentials live in %s, demarche dev writes them in %s", contract.CredentialsDir, stack.CredentialsDir)
	}
	dataDir := t.TempDir()
	s := startStack(t, dataDir)
	defer s.Stop()
	if nc, err := nats.Connect(s.NATSURL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("the dev server let in a connection without credentials")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("without credentials: %v, want an authorization violation", err)
	}

	ids := doc.identities()
	if len(ids) < 20 {
		t.Fatalf("the document lists %d identities", len(ids))
	}
	names := make([]string, 0, len(ids))
	for n := range ids {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) { checkGrants(t, s.NATSURL(), dataDir, name, ids[name]) })
	}
}

// clientOwned are the durables no running service uses: the test may create
// and pull from them (the services' own it only reads the state of).
func clientOwned(name string) bool {
	return name == "subscriber" || strings.HasPrefix(name, "partner-")
}

func checkGrants(t *testing.T, url, dataDir, name string, id grantIdentity) {
	credFile := strings.ReplaceAll(id.Credential.Dev, "<data-dir>", dataDir)
	raw, err := os.ReadFile(credFile)
	if err != nil {
		t.Fatalf("the documented credential %s: %v", id.Credential.Dev, err)
	}
	user, password, _ := strings.Cut(strings.TrimSpace(string(raw)), ":")
	if user != id.User {
		t.Fatalf("credential file holds user %s, the document says %s", user, id.User)
	}
	v := &violations{}
	v.cond = sync.NewCond(&v.mu)
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.CustomInboxPrefix(id.InboxPrefix), nats.ErrorHandler(v.handler), nats.NoReconnect())
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	defer nc.Close()

	// Its inbox gets its replies: a JetStream API call it is granted (or,
	// with none, a publish JetStream answers).
	reply := func(subject string) error {
		m := nats.NewMsg(subject)
		m.Header.Set("Nats-Expected-Stream", noStream)
		_, err := nc.RequestMsg(m, 10*time.Second)
		if errors.Is(err, nats.ErrNoResponders) {
			return nil // the server answered on the inbox: no one listens there
		}
		return err
	}
	probe := ""
	for _, s := range append(slices.Clone(id.JetStreamAPI), id.Publish...) {
		if strings.HasPrefix(s, "$JS.API.STREAM.INFO.") || strings.HasPrefix(s, "$JS.API.STREAM.NAMES") || strings.HasPrefix(s, "demarche.signals.") {
			probe = s
			break
		}
	}
	if probe == "" {
		t.Fatalf("no subject to check the inbox with among %v", id.Publish)
	}
	if err := reply(concrete(probe)); err != nil {
		t.Errorf("request on %s (reply on %s.…): %v", concrete(probe), id.InboxPrefix, err)
	}

	// Durable consumers under their documented names.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var refused []string // in the order the server must refuse them
	for _, d := range id.Durables {
		if !clientOwned(name) {
			if _, err := js.Consumer(ctx, d.Stream, d.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				t.Errorf("consumer %s.%s info: %v", d.Stream, d.Name, err)
			}
			continue
		}
		filter := d.FilterSubject
		if filter == "" {
			filter = "demarche.crisis.>"
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, d.Stream, jetstream.ConsumerConfig{Durable: d.Name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1})
		if err != nil {
			t.Errorf("create its consumer %s on %s, filter %s: %v", d.Name, d.Stream, filter, err)
			continue
		}
		batch, err := cons.FetchNoWait(1)
		if err != nil {
			t.Errorf("pull from %s.%s: %v", d.Stream, d.Name, err)
		} else {
			for m := range batch.Messages() {
				_ = m.Nak()
			}
			if err := batch.Error(); err != nil {
				t.Errorf("pull from %s.%s: %v", d.Stream, d.Name, err)
			}
		}
		// Not under another name (refused: no answer comes; the violation
		// below is the proof, the short wait only spares the test's time).
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := js.CreateOrUpdateConsumer(short, d.Stream, jetstream.ConsumerConfig{Durable: d.Name + "-other", FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
			t.Errorf("created a consumer %s-other on %s: the document grants %s alone", d.Name, d.Stream, d.Name)
		}
		refused = append(refused, "pub $JS.API.CONSUMER.CREATE."+d.Stream+"."+d.Name+"-other."+filter)
	}

	// Everything it may subscribe to and publish is accepted; the sample of
	// what it may not is refused, each with its own violation, in order.
	for _, sub := range id.Subscribe {
		if _, err := nc.SubscribeSync(sub); err != nil {
			t.Errorf("subscribe %s: %v", sub, err)
		}
	}
	for _, pub := range id.Publish {
		c := concrete(pub)
		if c == "demarche.audit.alarm" {
			continue // a core message audit records as an alarm: not sent for a test
		}
		if m := regexp.MustCompile(`^\$JS\.API\.CONSUMER\.(DELETE|MSG\.NEXT)\.[^.]+\.([^.]+)$`).FindStringSubmatch(pub); m != nil && m[2] != "*" {
			continue // a running service's consumer: not deleted nor pulled from by a test
		}
		m := nats.NewMsg(c)
		m.Header.Set("Nats-Expected-Stream", noStream) // on a stream's subject: checked, not stored
		if err := nc.PublishMsg(m); err != nil {
			t.Errorf("publish %s: %v", c, err)
		}
	}
	other := "_INBOX_observer.>"
	if id.InboxPrefix == "_INBOX_observer" {
		other = "_INBOX_worker.>"
	}
	for _, sub := range []string{"_INBOX.>", other, "demarche.>", "demarche.crisis.>", "demarche.partner.AU.>", "demarche.partner.ECOWAS.>", "$JS.API.>", "demarche.signals.>"} {
		if id.maySubscribe(sub) {
			continue
		}
		if _, err := nc.SubscribeSync(sub); err != nil {
			t.Errorf("subscribe %s: %v", sub, err)
		}
		refused = append(refused, "sub "+sub)
	}
	for _, pub := range []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.INFO.DEMARCHE_CRISIS", "$JS.API.STREAM.INFO.DEMARCHE_PARTNER_AU",
		"$JS.API.CONSUMER.CREATE.DEMARCHE_CRISIS.eventlog", "$JS.API.CONSUMER.CREATE.DEMARCHE_CRISIS.example-subscriber",
		"$JS.API.CONSUMER.CREATE.DEMARCHE_PARTNER_AU.AU.demarche.partner.AU.>", "$JS.API.CONSUMER.CREATE.DEMARCHE_PARTNER_ECOWAS.AU.demarche.partner.ECOWAS.>",
		"$JS.API.CONSUMER.CREATE.DEMARCHE_PARTNER_ECOWAS.ECOWAS.demarche.partner.ECOWAS.>", "$JS.API.CONSUMER.MSG.NEXT.DEMARCHE_PARTNER_ECOWAS.ECOWAS",
		"demarche.crisis.africa.GN.GN-20261207-GRANT.crisis_opened", "demarche.partner.ECOWAS.africa.GN.GN-20261207-GRANT.crisis_opened",
		"demarche.signals.acled", "demarche.schema.get", "demarche.roster.reserve", "$KV.DEMARCHE_ROSTER.granttest", "granttest.outside"} {
		if id.mayPublish(pub) {
			continue
		}
		m := nats.NewMsg(pub)
		m.Header.Set("Nats-Expected-Stream", noStream)
		if err := nc.PublishMsg(m); err != nil {
			t.Errorf("publish %s: %v", pub, err)
		}
		refused = append(refused, "pub "+pub)
	}
	const sentinel = "granttest.sentinel"
	if id.mayPublish(sentinel) {
		t.Fatalf("the document lets %s publish on %s", name, sentinel)
	}
	if err := nc.Publish(sentinel, nil); err != nil {
		t.Fatal(err)
	}
	got := v.until(t, "pub "+sentinel)
	if !slices.Equal(got, refused) {
		t.Errorf("refused by the server:\n %v\nrefused by the document (sample):\n %v\n(the document's grants: publish %v, subscribe %v)", got, refused, id.Publish, id.Subscribe)
	}
	if len(refused) == 0 {
		t.Errorf("%s: nothing in the sample is refused", name)
	}
}
