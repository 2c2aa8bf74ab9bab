package eventbus_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestServicesReconnectForEver is the rolling restart that left eventlog
// "not connected (CLOSED)": NATS goes away for longer than nats.go's default
// reconnect budget (60 attempts), then comes back with eventlog's password
// rotated while eventlog's credentials file still holds the old one. With
// nats.go's defaults the refused reconnections (twice in a row) close the
// connection for good; a Démarche connection keeps trying, reads its
// credentials file again at each attempt, and comes back once the file holds
// the new password. Its durable consumer carries on: an event published
// after the restart is handled. The worker's connection comes back too.
func TestServicesReconnectForEver(t *testing.T) {
	if testing.Short() {
		t.Skip("a NATS outage of 40 s")
	}
	ctx := context.Background()
	dir := t.TempDir()
	credDir := filepath.Join(dir, "creds")
	creds, err := natsauth.Ensure(credDir)
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "nats")
	srv, err := natsembed.Start(natsembed.Options{StoreDir: store, Users: creds}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	port := srv.Addr().(*net.TCPAddr).Port
	url := srv.URL()
	connect := func(id natsauth.Identity) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		u, err := natsauth.WithCredentialsFile(url, natsauth.FileName(credDir, id))
		if err != nil {
			t.Fatal(err)
		}
		nc, js, err := natsx.Connect(u, "test-"+string(id), zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if id == natsauth.Provisioner {
			if err := eventbus.EnsureStreams(ctx, js, eventbus.StreamOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		return nc, js
	}
	prov, _ := connect(natsauth.Provisioner)
	prov.Close()
	worker, wjs := connect(natsauth.Worker)
	eventlog, ejs := connect(natsauth.EventLog)
	got := newCollector()
	c, err := eventbus.Consume(ctx, ejs, eventbus.ConsumerConfig{Durable: "eventlog"}, got.handle, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	pub := eventbus.NewPublisher(wjs, "/test")
	if _, err := pub.Publish(ctx, route, entered("before", demarchev1.Stage_STAGE_WARNING)); err != nil {
		t.Fatal(err)
	}
	if ev := got.next(t); ev.ID != "before" {
		t.Fatalf("got %s", ev.ID)
	}

	// The outage: longer than 60 reconnection attempts (nats.go's default
	// MaxReconnect; ours wait 0.5 s between attempts on one server).
	srv.Stop()
	time.Sleep(40 * time.Second)
	rotated := creds[natsauth.EventLog]
	rotated.Password = "rotated-" + rotated.Password
	creds[natsauth.EventLog] = rotated
	for attempt := 0; ; attempt++ { // the port can take a moment to be free again
		srv, err = natsembed.Start(natsembed.Options{Port: port, StoreDir: store, Users: creds}, zap.NewNop())
		if err == nil {
			break
		}
		if attempt == 50 {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer srv.Stop()
	waitFor(t, "the worker reconnects", worker.IsConnected)
	// eventlog is refused (its file still holds the old password) and keeps
	// trying: more than two refusals in a row, where nats.go would close.
	time.Sleep(3 * time.Second)
	if eventlog.IsClosed() {
		t.Fatalf("eventlog's connection closed after its password was refused: %v", eventlog.LastError())
	}
	if err := os.WriteFile(natsauth.FileName(credDir, natsauth.EventLog), []byte(rotated.Identity.User()+":"+rotated.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "eventlog reconnects with the password of its file", eventlog.IsConnected)
	if _, err := pub.Publish(ctx, route, entered("after", demarchev1.Stage_STAGE_WARNING)); err != nil {
		t.Fatal(err)
	}
	if ev := got.next(t); ev.ID != "after" {
		t.Fatalf("after the restart the consumer got %s", ev.ID)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2 minutes", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsumerComesBackAfterItsDurableIsDeleted: nats.go ends a consume for
// good when the server says its consumer is gone (deleted, lost by a
// cluster, a stream restored); the service would stay up doing nothing. The
// consumer is created again and consumption resumes.
func TestConsumerComesBackAfterItsDurableIsDeleted(t *testing.T) {
	ctx := context.Background()
	_, js := startNATS(t)
	got := newCollector()
	c, err := eventbus.Consume(ctx, js, eventbus.ConsumerConfig{Durable: "comeback"}, got.handle, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	pub := eventbus.NewPublisher(js, "/test")
	if _, err := pub.Publish(ctx, route, entered("first", demarchev1.Stage_STAGE_WARNING)); err != nil {
		t.Fatal(err)
	}
	if ev := got.next(t); ev.ID != "first" {
		t.Fatalf("got %s", ev.ID)
	}
	if err := js.DeleteConsumer(ctx, eventbus.StreamName, "comeback"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the durable is created again", func() bool {
		_, err := js.Consumer(ctx, eventbus.StreamName, "comeback")
		return err == nil
	})
	if _, err := pub.Publish(ctx, route, entered("second", demarchev1.Stage_STAGE_WARNING)); err != nil {
		t.Fatal(err)
	}
	// A new durable starts from the stream's first event (DeliverAll): the
	// handler sees "first" again (consumers are idempotent), then "second".
	for {
		if ev := got.next(t); ev.ID == "second" {
			return
		}
	}
}
