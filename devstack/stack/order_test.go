package stack_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsembed"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/contract"
)

// orderSub is a subscriber as the AsyncAPI document tells one to be written:
// de-duplicate by ce-id, handle, then acknowledge (and wait for the
// acknowledgement to be taken). It records each crisis's events in the order
// it handled them.
type orderSub struct {
	seen  map[string]bool
	order map[string][]int // crisis → event numbers, as handled
	dups  int
}

func (s *orderSub) handle(ctx context.Context, t *testing.T, m jetstream.Msg) {
	id := m.Headers().Get(eventbus.HeaderID)
	if s.seen[id] {
		s.dups++
		_ = m.Ack()
		return
	}
	crisis, n, _ := strings.Cut(id, "/")
	i, err := strconv.Atoi(n)
	if err != nil {
		t.Fatalf("event id %q", id)
	}
	s.order[crisis] = append(s.order[crisis], i)
	s.seen[id] = true
	if err := m.DoubleAck(ctx); err != nil {
		t.Fatalf("ack %s: %v", id, err)
	}
}

// outOfOrder counts the events handled after a later one of their crisis.
func (s *orderSub) outOfOrder() int {
	n := 0
	for _, seq := range s.order {
		for i := 1; i < len(seq); i++ {
			if seq[i] < seq[i-1] {
				n++
			}
		}
	}
	return n
}

// orderStream is an embedded NATS server with the crisis stream as the
// platform defines it (eventbus.EnsureStreams), and a publisher of
// numbered events of three crises, interleaved.
func orderStream(t *testing.T) (url string, publish func(from, n int)) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := eventbus.EnsureStreams(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	base, err := contract.ExampleEvent(contract.CrisisEvents()[1])
	if err != nil {
		t.Fatal(err)
	}
	pub := eventbus.NewPublisher(js, "/test")
	crises := []string{"GN-20261207-ORDA1", "GN-20261207-ORDB2", "GN-20261207-ORDC3"}
	return srv.ClientURL(), func(from, n int) {
		for i := from; i < from+n; i++ {
			c := crises[i%len(crises)]
			ev := base
			ev.ID, ev.Subject, ev.Time = fmt.Sprintf("%s/%d", c, i), c, time.Now()
			if _, err := pub.Publish(ctx, eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "GN", CrisisID: c}, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func orderConsumer(t *testing.T, url, name string, maxAckPending int, ackWait time.Duration) (*nats.Conn, jetstream.Consumer) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(context.Background(), eventbus.StreamName, jetstream.ConsumerConfig{
		Durable: name, FilterSubject: eventbus.AllEvents(), AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: ackWait, MaxAckPending: maxAckPending, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	return nc, cons
}

// crashRun: a subscriber fetches 60 at a time, handles 10 events and crashes
// holding the rest of its fetch un-acknowledged; 60 newer events arrive; it
// restarts and handles everything. It returns the subscriber and how long the
// restarted one waited for its first event.
func crashRun(t *testing.T, url, name string, maxAckPending int, ackWait time.Duration, publish func(from, n int)) (*orderSub, time.Duration) {
	ctx := context.Background()
	sub := &orderSub{seen: map[string]bool{}, order: map[string][]int{}}
	publish(0, 60)
	nc, cons := orderConsumer(t, url, name, maxAckPending, ackWait)
	handled := 0
crash:
	for {
		batch, err := cons.Fetch(60, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if handled == 10 {
				break crash // it holds m (and the rest of the batch) un-acknowledged
			}
			sub.handle(ctx, t, m)
			handled++
		}
	}
	nc.Close() // the crash
	publish(60, 60)
	nc, cons = orderConsumer(t, url, name, maxAckPending, ackWait)
	defer nc.Close()
	start := time.Now()
	var stall time.Duration
	for len(sub.seen) < 120 {
		if time.Since(start) > time.Minute {
			t.Fatalf("%s: %d of 120 events handled after a minute", name, len(sub.seen))
		}
		batch, err := cons.Fetch(60, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if stall == 0 {
				stall = time.Since(start)
			}
			sub.handle(ctx, t, m)
		}
	}
	return sub, stall
}

// drain measures how fast a consumer handles n events (fetch 100, handle,
// acknowledge, and with waitAck wait for the acknowledgement to be taken, as
// examples/subscriber does).
func drain(t *testing.T, url, name string, maxAckPending, n int, waitAck bool) float64 {
	ctx := context.Background()
	nc, cons := orderConsumer(t, url, name, maxAckPending, 30*time.Second)
	defer nc.Close()
	start := time.Now()
	for got := 0; got < n; {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			ack := m.Ack
			if waitAck {
				ack = func() error { return m.DoubleAck(ctx) }
			}
			if err := ack(); err != nil {
				t.Fatal(err)
			}
			got++
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("%s: %d of %d events in two minutes", name, got, n)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// The per-crisis order rule of the AsyncAPI document (x-demarche-delivery,
// docs/events.md "Duplicates and order"), shown: a subscriber whose consumer
// has max_ack_pending 1 fetches, handles 10 events and crashes holding an
// un-acknowledged one; newer events arrive; restarted, it handles every
// event exactly once and each crisis's in order. The same crash with the
// default max_ack_pending is logged (its redeliveries come behind newer
// events), and the rule's costs are measured: the stall after the crash and
// the throughput, against the default's.
func TestSubscriberOrderAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded NATS; skipped with -short")
	}
	const ackWait = 2 * time.Second
	url, publish := orderStream(t)
	sub, stall := crashRun(t, url, "ordered", 1, ackWait, publish)
	if n := sub.outOfOrder(); n != 0 {
		t.Errorf("max_ack_pending 1: %d events handled after a later one of their crisis: %v", n, sub.order)
	}
	for c, seq := range sub.order {
		if len(seq) != 40 {
			t.Errorf("crisis %s: %d events handled, want 40", c, len(seq))
		}
	}

	url2, publish2 := orderStream(t)
	loose, looseStall := crashRun(t, url2, "loose", 1000, ackWait, publish2)

	publish(120, 2000)
	one := drain(t, url, "throughput-1", 1, 2000, true)
	many := drain(t, url, "throughput-1000", 1000, 2000, true)
	oneFast := drain(t, url, "throughput-1-async", 1, 2000, false)
	manyFast := drain(t, url, "throughput-1000-async", 1000, 2000, false)
	t.Logf("after a crash with un-acknowledged events (ack_wait %s): max_ack_pending 1: %d events out of their crisis's order, first event after %s (the stall); "+
		"max_ack_pending 1000: %d out of order, first event after %s", ackWait, sub.outOfOrder(), stall.Round(10*time.Millisecond),
		loose.outOfOrder(), looseStall.Round(10*time.Millisecond))
	t.Logf("throughput (fetch 100, ack and wait for it): max_ack_pending 1: %.0f events/s; max_ack_pending 1000: %.0f events/s", one, many)
	t.Logf("throughput (fetch 100, ack without waiting): max_ack_pending 1: %.0f events/s; max_ack_pending 1000: %.0f events/s", oneFast, manyFast)
}
