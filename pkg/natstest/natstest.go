// Package natstest starts real NATS for tests: an embedded server with
// JetStream in a temporary folder on a random port, stopped when the test ends.
package natstest

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsx"
)

// Server starts an embedded NATS server for the test.
func Server(t testing.TB) *natsembed.Server {
	t.Helper()
	return ServerIn(t, t.TempDir())
}

// ServerIn starts an embedded NATS server storing in dir, so a test can start
// another on the same store after stopping it (restart tests). It is stopped
// when the test ends unless the test stopped it first.
func ServerIn(t testing.TB, dir string) *natsembed.Server {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// Connect connects to url for the test.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := natsx.Connect(url, t.Name(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

// Bus is a server, a connection to it, and the crisis event streams.
type Bus struct {
	Server *natsembed.Server
	NC     *nats.Conn
	JS     jetstream.JetStream
}

// NewBus starts a server, connects, and creates the event streams.
func NewBus(t testing.TB) *Bus {
	t.Helper()
	srv := Server(t)
	nc, js := Connect(t, srv.URL())
	if err := eventbus.EnsureStreams(context.Background(), js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return &Bus{Server: srv, NC: nc, JS: js}
}
