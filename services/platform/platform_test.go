package platform_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/pkg/natstest"
	"github.com/demarche/demarche/services/platform"
)

func TestResourcesTakeTheReplicaCount(t *testing.T) {
	r := platform.Resources(3)
	if len(r.Streams) == 0 || len(r.Buckets) == 0 {
		t.Fatalf("no streams or buckets: %+v", r)
	}
	for _, s := range r.Streams {
		if s.Replicas != 3 {
			t.Errorf("stream %s: replicas %d, want 3", s.Name, s.Replicas)
		}
	}
	for _, b := range r.Buckets {
		if b.Replicas != 3 {
			t.Errorf("bucket %s: replicas %d, want 3", b.Bucket, b.Replicas)
		}
	}
	for _, s := range platform.Resources(0).Streams {
		if s.Replicas != 1 {
			t.Errorf("default: stream %s has %d replicas, want 1", s.Name, s.Replicas)
		}
	}
}

// Provisioning twice gives the same streams and buckets, and the second run
// creates nothing.
func TestProvisionNATSIsIdempotent(t *testing.T) {
	srv := natstest.Server(t)
	nc, js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	first, err := platform.ProvisionNATS(ctx, nc, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := len(platform.Resources(1).Streams) + len(platform.Resources(1).Buckets)
	if len(first.Created) != want || len(first.Existing) != 0 {
		t.Fatalf("first run: created %d (%v), existing %v; want %d created", len(first.Created), first.Created, first.Existing, want)
	}
	before := streamConfigs(t, js)
	second, err := platform.ProvisionNATS(ctx, nc, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Created) != 0 || len(second.Existing) != want {
		t.Fatalf("second run: created %v, existing %d; want nothing created, %d existing", second.Created, len(second.Existing), want)
	}
	after := streamConfigs(t, js)
	if !slices.Equal(before, after) {
		t.Fatalf("the second run changed the streams:\nbefore %v\nafter  %v", before, after)
	}
}

func streamConfigs(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var out []string
	l := js.ListStreams(context.Background())
	for info := range l.Info() {
		c := info.Config
		out = append(out, c.Name+"|"+strings.Join(c.Subjects, ",")+"|"+c.Storage.String()+"|"+time.Duration(c.Duplicates).String()+"|"+string(rune('0'+c.Replicas)))
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// A lone server cannot hold three replicas: refused, saying so, and nothing created.
func TestProvisionRefusesReplicasALoneServerCannotHold(t *testing.T) {
	srv := natstest.Server(t)
	nc, js := natstest.Connect(t, srv.URL())
	_, err := platform.ProvisionNATS(context.Background(), nc, 3)
	if !errors.Is(err, platform.ErrUnfit) || !strings.Contains(err.Error(), "lone server") || !strings.Contains(err.Error(), "--replicas 3") {
		t.Fatalf("want a refusal naming the lone server and --replicas 3, got %v", err)
	}
	if names := streamConfigs(t, js); len(names) != 0 {
		t.Fatalf("a refused provisioning created %v", names)
	}
}

// A NATS server without JetStream is refused with what to do.
func TestProvisionRefusesNATSWithoutJetStream(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	_, err = platform.ProvisionNATS(context.Background(), nc, 1)
	if !errors.Is(err, platform.ErrUnfit) || !strings.Contains(err.Error(), "no JetStream") {
		t.Fatalf("want a refusal saying there is no JetStream, got %v", err)
	}
}
