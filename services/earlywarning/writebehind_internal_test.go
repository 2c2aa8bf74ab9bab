package earlywarning

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// quietOpener is a CrisisOpener for signals that stay below the threshold.
type quietOpener struct{}

func (quietOpener) OpenOrSignal(context.Context, *demarchev1.CrisisWorkflowInput, *demarchev1.Warning) error {
	return fmt.Errorf("no crisis expected")
}
func (quietOpener) IsOpen(context.Context, string) (bool, error) { return false, nil }
func (quietOpener) FindOpen(context.Context, string, demarchev1.CrisisType) (string, error) {
	return "", nil
}

// crashChildURL, when set, makes TestWriteBehindCrash the child process: an
// early-warning service on that NATS server that flushes only when told.
const crashChildURL = "EARLYWARNING_CRASH_CHILD_NATS"

// Subjects the child answers on: flush (write and acknowledge), and write
// without acknowledging (the process dies right after a flush wrote, before
// its acknowledgements left).
const (
	crashFlush      = "test.earlywarning.flush"
	crashWriteNoAck = "test.earlywarning.write-no-ack"
	crashWaiting    = "test.earlywarning.waiting" // how many messages the child holds
)

// TestWriteBehindCrash kills an early-warning process (SIGKILL, no Stop)
// between flushes, holding three kinds of stream signals: written and
// acknowledged, written but not acknowledged (the flush wrote, the process
// died before its acknowledgements), and neither (the unwritten tail). A new
// process then takes the redeliveries: every signal is in its situation once,
// each score is the sum of its signals' weights, none counted twice, and the
// consumer has acknowledged everything.
func TestWriteBehindCrash(t *testing.T) {
	if url := os.Getenv(crashChildURL); url != "" {
		runCrashChild(t, url)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	srv := natstest.Server(t)
	nc, js := natstest.Connect(t, srv.URL())
	ctx := context.Background()

	child := exec.Command(os.Args[0], "-test.run=^TestWriteBehindCrash$", "-test.count=1")
	child.Env = append(os.Environ(), crashChildURL+"="+srv.URL())
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = child.Process.Kill() // the test failed before the kill
			_, _ = child.Process.Wait()
		}
	}()
	ask := func(subject string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := nc.Request(subject, nil, 5*time.Second)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("child: %s: %v", subject, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ask(crashFlush) // the child is up

	type want struct {
		ids    map[string]bool
		weight float64
	}
	wants := map[string]*want{}
	var sent []*demarchev1.Signal
	n := 0
	publish := func(count int, countries ...string) {
		t.Helper()
		for i := range count {
			c := countries[i%len(countries)]
			sig := &demarchev1.Signal{Source: "crashsrc", SourceId: fmt.Sprintf("s%03d", n), CountryCode: c,
				CrisisType: demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE, Weight: 0.1 + float64(n%5)/100,
				ObservedAt: timestamppb.New(time.Now().Add(-time.Duration(100-n) * time.Minute)), Summary: "crash test"}
			if err := PublishSignal(ctx, js, "/test", sig); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, sig)
			key := demarchev1.SituationKey(c, sig.GetCrisisType())
			if wants[key] == nil {
				wants[key] = &want{ids: map[string]bool{}}
			}
			wants[key].ids[sig.GetSourceId()] = true
			wants[key].weight += sig.GetWeight()
			n++
		}
	}
	cons, err := js.Consumer(ctx, SignalsStream, SignalsDurable)
	if err != nil {
		t.Fatal(err)
	}
	// held waits until the child holds want messages for its next flush
	// and the consumer has acked and waits for what is said.
	held := func(want, acked, pending int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			m, rerr := nc.Request(crashWaiting, nil, 5*time.Second)
			info, err := cons.Info(ctx)
			if rerr == nil && string(m.Data) == fmt.Sprint(want) &&
				err == nil && info.NumPending == 0 && info.NumAckPending == pending && info.AckFloor.Stream == uint64(acked) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer: want %d acknowledged and %d held: %+v (%v)", acked, pending, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	publish(30, "GN", "ML", "NE")
	held(30, 0, 30)
	ask(crashFlush) // written and acknowledged
	held(0, 30, 0)
	publish(20, "GN", "ML", "BF")
	held(20, 30, 20)
	ask(crashWriteNoAck) // written, not acknowledged
	publish(20, "GN", "NE", "TD")
	held(20, 30, 40)
	// NATS holds the first two sets, not the tail.
	kv, err := js.KeyValue(ctx, SituationBucket)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, demarchev1.SituationKey("TD", demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE)); err == nil {
		t.Fatalf("the unwritten tail's situation is written already (revision %d)", e.Revision())
	}

	if err := child.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_, _ = child.Process.Wait()
	killed = true

	// A new process takes the redeliveries (its consumer waits 2 s, not 30,
	// for the acknowledgements the dead one owes).
	defer setAckWait(2 * time.Second)()
	s, err := Start(ctx, Config{NATSURL: srv.URL()}, quietOpener{}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err == nil && info.AckFloor.Stream == uint64(n) && info.NumAckPending == 0 {
			if info.NumRedelivered != 0 {
				t.Logf("redelivered still counted: %d", info.NumRedelivered)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the crash the consumer acknowledged %+v, want all %d (%v)", info, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop() // and what it holds is written
	for key, w := range wants {
		st, _, err := s.loadSituationFrom(ctx, kv, key)
		if err != nil || st == nil {
			t.Fatalf("situation %s: %v", key, err)
		}
		got := map[string]int{}
		for _, c := range st.GetContributions() {
			got[c.GetSourceId()]++
		}
		for id := range w.ids {
			if got[id] != 1 {
				t.Errorf("situation %s: signal %s counted %d times, want once", key, id, got[id])
			}
		}
		if len(got) != len(w.ids) || len(st.GetContributions()) != len(w.ids) {
			t.Errorf("situation %s holds %d contributions (%d distinct), want %d", key, len(st.GetContributions()), len(got), len(w.ids))
		}
		if score := s.score(st); math.Abs(score-w.weight) > 1e-9 {
			t.Errorf("situation %s scores %.4f, want %.4f (each signal once)", key, score, w.weight)
		}
		if len(st.GetHistory()) != len(w.ids) {
			t.Errorf("situation %s has %d score points, want one per signal (%d)", key, len(st.GetHistory()), len(w.ids))
		}
	}
	// Every signal is in the signal store too, the tail stored by the replay
	// (the store is written before its situation: awaitStored).
	store, err := js.KeyValue(ctx, StoreBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range sent {
		e, err := store.Get(ctx, storeKey(sig))
		if err != nil {
			t.Errorf("signal %s not in the signal store: %v", sig.GetSourceId(), err)
			continue
		}
		var got demarchev1.StoredSignal
		if err := proto.Unmarshal(e.Value(), &got); err != nil || got.GetSignal().GetSourceId() != sig.GetSourceId() {
			t.Errorf("signal %s stored as %v (%v)", sig.GetSourceId(), got.GetSignal(), err)
		}
	}
}

// setAckWait shortens the redelivery wait of stream signals; the returned
// func restores it.
func setAckWait(d time.Duration) func() {
	saved := signalsAckWait
	signalsAckWait = d
	return func() { signalsAckWait = saved }
}

// runCrashChild is the process TestWriteBehindCrash kills: it never flushes
// by itself (an hour's interval), only when asked.
func runCrashChild(t *testing.T, url string) {
	s, err := Start(context.Background(), Config{NATSURL: url, FlushInterval: time.Hour}, quietOpener{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(crashFlush, func(m *nats.Msg) {
		s.flush(context.Background())
		_ = m.Respond(nil)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(crashWaiting, func(m *nats.Msg) {
		s.cache.mu.Lock()
		n := s.cache.waiting
		s.cache.mu.Unlock()
		_ = m.Respond([]byte(fmt.Sprint(n)))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(crashWriteNoAck, func(m *nats.Msg) {
		// The acknowledgements are lost with the process: take them out.
		s.cache.mu.Lock()
		for _, e := range s.cache.m {
			s.cache.waiting -= len(e.waiters)
			e.waiters = nil
		}
		s.cache.mu.Unlock()
		s.flush(context.Background())
		_ = m.Respond(nil)
	}); err != nil {
		t.Fatal(err)
	}
	select {} // until killed
}

// loadSituationFrom reads a situation from kv (after Stop, s's own bucket is closed).
func (s *Service) loadSituationFrom(ctx context.Context, kv jetstream.KeyValue, key string) (*demarchev1.SituationState, uint64, error) {
	saved := s.situations
	s.situations = kv
	defer func() { s.situations = saved }()
	return s.loadSituation(ctx, key)
}

// TestWriteBehindHoldsUntilFlush: a stream signal's situation is held
// unwritten and its message unacknowledged until a flush; Score reads the
// held copy meanwhile; Stop writes it and acknowledges.
func TestWriteBehindHoldsUntilFlush(t *testing.T) {
	srv := natstest.Server(t)
	_, js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	s, err := Start(ctx, Config{NATSURL: srv.URL(), FlushInterval: time.Hour}, quietOpener{}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			s.Stop()
		}
	}()
	sig := &demarchev1.Signal{Source: "heldsrc", SourceId: "one", CountryCode: "GN", CrisisType: demarchev1.CrisisType_CRISIS_TYPE_GENERAL,
		Weight: 2, ObservedAt: timestamppb.Now(), Summary: "held"}
	if err := PublishSignal(ctx, js, "/test", sig); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		sc, err := s.Score(ctx, "GN", demarchev1.CrisisType_CRISIS_TYPE_GENERAL)
		if err == nil && sc.GetScore() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Score does not see the held signal: %v %v", sc, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	kv, err := js.KeyValue(ctx, SituationBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, demarchev1.SituationKey("GN", demarchev1.CrisisType_CRISIS_TYPE_GENERAL)); err == nil {
		t.Fatal("the situation was written before a flush")
	}
	cons, err := js.Consumer(ctx, SignalsStream, SignalsDurable)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := cons.Info(ctx); err != nil || info.NumAckPending != 1 || info.AckFloor.Stream != 0 {
		t.Fatalf("the message is acknowledged before its situation is written: %+v %v", info, err)
	}
	s.Stop()
	stopped = true
	e, err := kv.Get(ctx, demarchev1.SituationKey("GN", demarchev1.CrisisType_CRISIS_TYPE_GENERAL))
	if err != nil {
		t.Fatalf("Stop did not write the held situation: %v", err)
	}
	if info, err := cons.Info(ctx); err != nil || info.NumAckPending != 0 || info.AckFloor.Stream != 1 {
		t.Fatalf("Stop did not acknowledge the written signal: %+v %v (revision %d)", info, err, e.Revision())
	}
}
