package natsauth_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
)

// TestConsumersHoldOnAServer tries the consumer rules on a real (embedded)
// server: the observer makes an ordered consumer but cannot edit the audit
// consumer, not even through the legacy ephemeral form whose name is in the
// body; eventlog cannot delete it nor pull from it.
func TestConsumersHoldOnAServer(t *testing.T) {
	creds, err := natsauth.Ensure(filepath.Join(t.TempDir(), "creds"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Users: creds}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	errs := map[natsauth.Identity]chan error{}
	js := func(id natsauth.Identity) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		u, _ := creds[id].URL(srv.URL())
		ch := make(chan error, 16)
		errs[id] = ch
		nc, err := nats.Connect(u, nats.CustomInboxPrefix(natsauth.InboxPrefix(id)), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case ch <- err:
			default:
			}
		}))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		t.Cleanup(nc.Close)
		j, _ := jetstream.New(nc)
		return nc, j
	}
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		t.Cleanup(cancel)
		return c
	}
	violation := func(id natsauth.Identity, subject string) {
		t.Helper()
		select {
		case err := <-errs[id]:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") || !strings.Contains(err.Error(), subject) {
				t.Errorf("%s: %v, want a permissions violation for %s", id, err, subject)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: no permissions violation for %s", id, subject)
		}
	}
	_, pjs := js(natsauth.Provisioner)
	if _, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: natsauth.CrisisStream, Subjects: []string{"demarche.crisis.>"}}); err != nil {
		t.Fatal(err)
	}
	_, ajs := js(natsauth.Audit)
	cfg := jetstream.ConsumerConfig{Durable: "audit", FilterSubject: "demarche.crisis.>", AckPolicy: jetstream.AckExplicitPolicy}
	if _, err := ajs.CreateOrUpdateConsumer(short(), natsauth.CrisisStream, cfg); err != nil {
		t.Fatalf("audit's own consumer: %v", err)
	}

	onc, ojs := js(natsauth.Observer)
	forged := cfg
	forged.FilterSubject = "demarche.crisis.europe.>"
	if _, err := ojs.CreateOrUpdateConsumer(short(), natsauth.CrisisStream, forged); err == nil {
		t.Fatal("the observer edited the audit consumer")
	}
	violation(natsauth.Observer, "$JS.API.CONSUMER.CREATE."+natsauth.CrisisStream+".audit")
	// The legacy ephemeral form names the consumer in the body alone.
	body, _ := json.Marshal(map[string]any{"stream_name": natsauth.CrisisStream, "config": map[string]any{"name": "audit", "filter_subject": "demarche.crisis.europe.>", "ack_policy": "explicit", "deliver_policy": "all"}})
	if _, err := onc.Request("$JS.API.CONSUMER.CREATE."+natsauth.CrisisStream, body, time.Second); err == nil {
		t.Fatal("the legacy ephemeral form was answered")
	}
	violation(natsauth.Observer, "$JS.API.CONSUMER.CREATE."+natsauth.CrisisStream)
	oc, err := ojs.OrderedConsumer(short(), natsauth.CrisisStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"demarche.crisis.>"}})
	if err != nil {
		t.Fatalf("the observer's ordered consumer: %v", err)
	}
	if _, err := oc.Fetch(1, jetstream.FetchMaxWait(time.Second)); err != nil {
		t.Fatalf("the observer's ordered consumer fetch: %v", err)
	}

	_, ejs := js(natsauth.EventLog)
	if err := ejs.DeleteConsumer(short(), natsauth.CrisisStream, "audit"); err == nil {
		t.Fatal("eventlog deleted the audit consumer")
	}
	violation(natsauth.EventLog, "$JS.API.CONSUMER.DELETE."+natsauth.CrisisStream+".audit")

	got, err := ajs.Consumer(short(), natsauth.CrisisStream, "audit")
	if err != nil || got.CachedInfo().Config.FilterSubject != "demarche.crisis.>" {
		t.Fatalf("the audit consumer after the attempts: %v", err)
	}
}
