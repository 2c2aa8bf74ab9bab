package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

var route = eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "ML", CrisisID: "ML-20261127-BBBBB"}

// startNATS runs a real embedded NATS server with JetStream on a random port.
func startNATS(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	b := natstest.NewBus(t)
	return b.NC, b.JS
}

func entered(id string, stage demarchev1.Stage) eventbus.Event {
	return eventbus.Event{ID: id, Source: "/test", Subject: route.CrisisID, Time: time.Now(), Data: &demarchev1.StageEntered{
		CrisisId: route.CrisisID, Stage: stage, EnteredAt: timestamppb.Now(),
	}}
}

// collector records what a handler saw.
type collector struct {
	mu   sync.Mutex
	seen []eventbus.Event
	ch   chan eventbus.Event
}

func newCollector() *collector { return &collector{ch: make(chan eventbus.Event, 100)} }

func (c *collector) handle(_ context.Context, ev eventbus.Event) error {
	c.mu.Lock()
	c.seen = append(c.seen, ev)
	c.mu.Unlock()
	c.ch <- ev
	return nil
}

func (c *collector) next(t *testing.T) eventbus.Event {
	t.Helper()
	select {
	case ev := <-c.ch:
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no event delivered")
		return eventbus.Event{}
	}
}

func TestPoisonEventsGoToDeadLetterAndConsumerMovesOn(t *testing.T) {
	ctx := context.Background()
	nc, js := startNATS(t)
	pub := eventbus.NewPublisher(js, "/test")

	// Three poison messages, published raw as a careless partner would.
	good, err := eventbus.Encode(route.Subject("stage_entered"), entered("tmpl", demarchev1.Stage_STAGE_WARNING))
	if err != nil {
		t.Fatal(err)
	}
	poison := map[string]func(m *nats.Msg){
		"bad-proto":  func(m *nats.Msg) { m.Data = []byte{0xff, 0x01, 0xff} },
		"invalid":    func(m *nats.Msg) { m.Data, _ = proto.Marshal(&demarchev1.StageEntered{CrisisId: route.CrisisID}) },
		"no-ce-type": func(m *nats.Msg) { m.Header.Del(eventbus.HeaderType) },
	}
	for _, name := range []string{"bad-proto", "invalid", "no-ce-type"} {
		m := nats.NewMsg(good.Subject)
		for k, v := range good.Header {
			m.Header[k] = append([]string(nil), v...)
		}
		m.Data = good.Data
		m.Header.Set(eventbus.HeaderID, name)
		m.Header.Set(nats.MsgIdHdr, name)
		poison[name](m)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pub.Publish(ctx, route, entered("good-1", demarchev1.Stage_STAGE_GOOD_OFFICES)); err != nil {
		t.Fatal(err)
	}

	dlq, err := nc.SubscribeSync(eventbus.DeadLetterSubject("test-consumer"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the server has the subscription before anything is published
		t.Fatal(err)
	}
	col := newCollector()
	c, err := eventbus.Consume(ctx, js, eventbus.ConsumerConfig{Durable: "test-consumer"}, col.handle, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	if ev := col.next(t); ev.ID != "good-1" {
		t.Fatalf("consumer handed over %q, want the good event", ev.ID)
	}
	reasons := map[string]string{}
	for range 3 {
		m, err := dlq.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("dead letters: %v (got %v)", err, reasons)
		}
		reasons[m.Header.Get(eventbus.HeaderID)] = m.Header.Get(eventbus.HeaderDeadLetterReason)
		if m.Header.Get(eventbus.HeaderDeadLetterSubject) != good.Subject {
			t.Errorf("dead letter does not name the original subject: %v", m.Header)
		}
	}
	for name, says := range map[string]string{"bad-proto": "undecodable event data", "invalid": "stage", "no-ce-type": "ce-type"} {
		if !strings.Contains(reasons[name], says) {
			t.Errorf("dead letter %s: reason %q does not say %q", name, reasons[name], says)
		}
	}
	// The dead letters are durable too: the DLQ stream holds them.
	info, err := js.Stream(ctx, eventbus.DeadLetterStreamName)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 3 {
		t.Fatalf("dead-letter stream holds %d messages, want 3", n)
	}
	// The poison messages are terminated: nothing is pending or redelivered.
	if _, err := pub.Publish(ctx, route, entered("good-2", demarchev1.Stage_STAGE_FACT_FINDING)); err != nil {
		t.Fatal(err)
	}
	if ev := col.next(t); ev.ID != "good-2" {
		t.Fatalf("after the poison, got %q, want good-2", ev.ID)
	}
}

func TestHandlerFailuresRetryThenDeadLetter(t *testing.T) {
	ctx := context.Background()
	nc, js := startNATS(t)
	pub := eventbus.NewPublisher(js, "/test")
	dlq, err := nc.SubscribeSync(eventbus.DeadLetterSubject("flaky"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the server has the subscription before anything is published
		t.Fatal(err)
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	done := make(chan string, 10)
	handler := func(_ context.Context, ev eventbus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[ev.ID]++
		switch {
		case ev.ID == "always-fails":
			return errors.New("downstream down")
		case ev.ID == "fails-once" && attempts[ev.ID] == 1:
			return errors.New("transient")
		case ev.ID == "permanent":
			return fmt.Errorf("no such crisis: %w", eventbus.ErrPermanent)
		}
		done <- ev.ID
		return nil
	}
	c, err := eventbus.Consume(ctx, js, eventbus.ConsumerConfig{
		Durable: "flaky", MaxDeliver: 3, Backoff: []time.Duration{50 * time.Millisecond},
	}, handler, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	for _, id := range []string{"always-fails", "fails-once", "permanent", "fine"} {
		if _, err := pub.Publish(ctx, route, entered(id, demarchev1.Stage_STAGE_WARNING)); err != nil {
			t.Fatal(err)
		}
	}
	handled := map[string]bool{}
	for range 2 {
		select {
		case id := <-done:
			handled[id] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("only %v handled", handled)
		}
	}
	if !handled["fails-once"] || !handled["fine"] {
		t.Fatalf("handled %v, want fails-once and fine", handled)
	}
	got := map[string]string{}
	for range 2 {
		m, err := dlq.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got[m.Header.Get(eventbus.HeaderID)] = m.Header.Get(eventbus.HeaderDeadLetterReason)
	}
	if !strings.Contains(got["always-fails"], "failed 3 times") || !strings.Contains(got["permanent"], "permanently") {
		t.Fatalf("dead-letter reasons: %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts["always-fails"] != 3 || attempts["permanent"] != 1 || attempts["fails-once"] != 2 {
		t.Fatalf("attempts: %v", attempts)
	}
}

func TestRepublishedEventIsStoredOnce(t *testing.T) {
	ctx := context.Background()
	_, js := startNATS(t)
	pub := eventbus.NewPublisher(js, "/test")
	ev := entered("same-id", demarchev1.Stage_STAGE_WARNING)
	dup, err := pub.Publish(ctx, route, ev)
	if err != nil || dup {
		t.Fatalf("first publish: dup=%v err=%v", dup, err)
	}
	dup, err = pub.Publish(ctx, route, ev)
	if err != nil || !dup {
		t.Fatalf("republish: dup=%v err=%v, want a duplicate", dup, err)
	}
	s, err := js.Stream(ctx, eventbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
}

// TestConcurrentConsumerKeepsEachKeyInOrder: with Concurrency, events of
// different keys are handled at once, a key's events one at a time in stream
// order, and every event is handled once.
func TestConcurrentConsumerKeepsEachKeyInOrder(t *testing.T) {
	_, js := startNATS(t)
	ctx := context.Background()
	if err := eventbus.EnsureStreams(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	pub := eventbus.NewPublisher(js, "/test")
	const keys, per = 6, 20
	var mu sync.Mutex
	busy := map[string]bool{}
	seen := map[string][]int{}
	overlap, together := false, 0
	inFlight := 0
	done := make(chan struct{})
	total := 0
	c, err := eventbus.Consume(ctx, js, eventbus.ConsumerConfig{Durable: "concurrent", Concurrency: 4, Key: eventbus.KeyBySubject},
		func(_ context.Context, ev eventbus.Event) error {
			mu.Lock()
			if busy[ev.Subject] {
				overlap = true
			}
			busy[ev.Subject] = true
			inFlight++
			together = max(together, inFlight)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			var n int
			_, _ = fmt.Sscanf(ev.ID[strings.LastIndexByte(ev.ID, '-')+1:], "%d", &n)
			mu.Lock()
			defer mu.Unlock()
			busy[ev.Subject] = false
			inFlight--
			seen[ev.Subject] = append(seen[ev.Subject], n)
			if total++; total == keys*per {
				close(done)
			}
			return nil
		}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	for i := range per {
		for k := range keys {
			r := route
			r.CrisisID = fmt.Sprintf("ML-20261127-KEY%02d", k)
			ev := entered(fmt.Sprintf("k%d-%d", k, i), demarchev1.Stage_STAGE_WARNING)
			ev.Subject = r.CrisisID
			if _, err := pub.Publish(ctx, r, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of %d", total, keys*per)
	}
	mu.Lock()
	defer mu.Unlock()
	if overlap {
		t.Fatal("two events of one key were handled at once")
	}
	for k, ns := range seen {
		for i, n := range ns {
			if n != i {
				t.Fatalf("key %s handled out of order: %v", k, ns)
			}
		}
	}
	if together < 2 {
		t.Fatalf("never more than %d event(s) in hand at once: not concurrent", together)
	}
}

// TestBatchConsumerTakesWhatIsWaiting: a batch consumer hands over what is
// waiting at once (more than one event, never more than BatchSize), in stream
// order; each event is settled by its own answer (acknowledged, redelivered,
// dead-lettered) and an undecodable message is dead-lettered on its own.
func TestBatchConsumerTakesWhatIsWaiting(t *testing.T) {
	ctx := context.Background()
	nc, js := startNATS(t)
	pub := eventbus.NewPublisher(js, "/test")
	dlq, err := nc.SubscribeSync(eventbus.DeadLetterSubject("batches"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const n, size = 200, 64
	for i := range n {
		id := fmt.Sprintf("ev-%03d", i)
		switch i {
		case 50:
			id = "permanent"
		case 120:
			id = "fails-once"
		}
		if _, err := pub.Publish(ctx, route, entered(id, demarchev1.Stage_STAGE_WARNING)); err != nil {
			t.Fatal(err)
		}
		if i == 10 { // a poison message among them, published raw
			m, err := eventbus.Encode(route.Subject("stage_entered"), entered("poison", demarchev1.Stage_STAGE_WARNING))
			if err != nil {
				t.Fatal(err)
			}
			m.Data = []byte{0xff, 0x01}
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	handled := map[string]int{}
	var sizes []int
	outOfOrder := false
	done := make(chan struct{})
	c, err := eventbus.ConsumeBatches(ctx, js, eventbus.ConsumerConfig{Durable: "batches", BatchSize: size, Backoff: []time.Duration{20 * time.Millisecond}},
		func(_ context.Context, batch []eventbus.Delivery) []error {
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(batch))
			errs := make([]error, len(batch))
			for i, d := range batch {
				if i > 0 && d.Event.ID < batch[i-1].Event.ID && strings.HasPrefix(batch[i-1].Event.ID, "ev-") && strings.HasPrefix(d.Event.ID, "ev-") {
					outOfOrder = true
				}
				if d.Ctx == nil {
					errs[i] = errors.New("no context")
					continue
				}
				handled[d.Event.ID]++
				switch {
				case d.Event.ID == "permanent":
					errs[i] = fmt.Errorf("refused: %w", eventbus.ErrPermanent)
				case d.Event.ID == "fails-once" && handled[d.Event.ID] == 1:
					errs[i] = errors.New("transient")
				}
			}
			if len(handled) == n && handled["fails-once"] == 2 {
				select {
				case <-done:
				default:
					close(done)
				}
			}
			return errs
		}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("handled %d of %d events", len(handled), n)
	}
	reasons := map[string]string{}
	for range 2 {
		m, err := dlq.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("dead letters: %v (got %v)", err, reasons)
		}
		reasons[m.Header.Get(eventbus.HeaderID)] = m.Header.Get(eventbus.HeaderDeadLetterReason)
	}
	if !strings.Contains(reasons["poison"], "undecodable") || !strings.Contains(reasons["permanent"], "permanently") {
		t.Fatalf("dead-letter reasons: %v", reasons)
	}
	mu.Lock()
	defer mu.Unlock()
	biggest := 0
	for _, s := range sizes {
		biggest = max(biggest, s)
	}
	if biggest < 2 || biggest > size {
		t.Fatalf("batch sizes %v: want some batch of 2..%d events", sizes, size)
	}
	if outOfOrder {
		t.Fatal("a batch handed events over out of stream order")
	}
	for id, k := range handled {
		if want := map[bool]int{true: 2, false: 1}[id == "fails-once"]; k != want {
			t.Errorf("%s handled %d times, want %d", id, k, want)
		}
	}
	// Everything is settled: nothing left waiting for an acknowledgement.
	cons, err := js.Consumer(ctx, eventbus.StreamName, "batches")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer left %d unacknowledged, %d pending", info.NumAckPending, info.NumPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
