package earlywarning

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Write-behind situations. A batch of signals from the stream is planned on
// this process's copy of each situation, as every ingest is, but the copy is
// not written at once: it is held here as dirty, and the stream messages whose
// signals it holds (accepted or recognised as duplicates) are acknowledged
// only after a flush wrote it, every FlushInterval or as soon as
// FlushPending messages wait. A busy situation is then written once per
// flush, not once per batch, and each stream signal costs its publication
// and its acknowledgement, nothing more.
//
// What a crash replays. Until its situation is written, a message stays
// unacknowledged: a process killed between two flushes loses only the unwritten
// tail, and JetStream redelivers exactly that tail (to this process restarted,
// or another instance). A redelivered signal that a flush did write (the
// flush succeeded, the acknowledgement was lost) is in its situation's window
// and recognised there as a duplicate; one older than the window never counts.
// So no signal is lost and none is counted twice (TestWriteBehindCrash kills
// a process between flushes). A crossing is not held back: its side effects
// (WarningRaised, the crisis's opening) happen at once and the situation is
// written at once, as before; they are idempotent, so a replay repeats them
// at worst.
//
// A flush that fails (another instance wrote the situation meanwhile, or
// NATS did not answer) forgets the copy and redelivers its messages: they are
// planned again on what NATS holds. Any write of a dirty situation (an
// import's batch, a rules reload, a crossing) writes what the copy holds, so
// it settles the messages held for it too. Score and the list of situations
// read the dirty copy in this process.
//
// Requests (the ingest endpoint: imports, reports) are still written before
// they are answered: the answer says what is recorded.

// Write-behind defaults.
const (
	// FlushInterval is the longest a stream signal's situation stays unwritten.
	FlushInterval = 200 * time.Millisecond
	// FlushPending is how many unacknowledged stream messages start a flush
	// before the interval is up; the consumer lets twice as many wait
	// (signalsMaxAckPending), so consuming never stalls on a flush.
	FlushPending = 4 * SignalBatch
)

// signalsMaxAckPending is what the signals consumer lets wait unacknowledged.
const signalsMaxAckPending = 2 * FlushPending

// situationCacheSize bounds the clean situations a process holds a copy of
// (dirty ones are held until written, whatever their number).
const situationCacheSize = 4096

// situationCache holds the situations this process read or wrote last, with
// their revisions, so a busy situation is planned without reading it back
// first. A clean copy is only a guess: the compare-and-set write against its
// revision fails when another instance wrote since, and the retry reads
// afresh. A dirty copy is newer than NATS: planned on revision rev, not yet
// written; waiters settle the stream messages it holds once it is. Cached
// states are never modified (plan works on a copy).
type situationCache struct {
	mu      sync.Mutex
	m       map[string]*cachedState
	waiting int           // stream messages held by dirty copies
	kick    chan struct{} // a flush is wanted now (FlushPending reached)
}

type cachedState struct {
	st      *demarchev1.SituationState
	rev     uint64
	dirty   bool
	waiters []func(error)
	// stored are the signal store's writes of the signals the dirty copy
	// holds, published, not yet confirmed: the situation is written after
	// them (awaitStored).
	stored []jetstream.PubAckFuture
}

func (c *situationCache) get(situation string) (*demarchev1.SituationState, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[situation]
	if !ok {
		return nil, 0, false
	}
	return e.st, e.rev, true
}

// dirtyState is the copy of a situation not yet written (nil when none).
func (c *situationCache) dirtyState(situation string) *demarchev1.SituationState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[situation]; ok && e.dirty {
		return e.st
	}
	return nil
}

// put records what was written at rev, or forgets the situation when the
// write failed (err): its revision is no longer known. Either way the stream
// messages held by a dirty copy are settled: the write held them (the state
// written was planned on the copy), or they are redelivered.
func (c *situationCache) put(situation string, st *demarchev1.SituationState, rev uint64, err error) {
	c.mu.Lock()
	e := c.m[situation]
	var waiters []func(error)
	if e != nil {
		waiters = e.waiters
		c.waiting -= len(waiters)
	}
	if err != nil {
		delete(c.m, situation)
	} else {
		c.evict(situation)
		c.m[situation] = &cachedState{st: st, rev: rev}
	}
	c.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("%w: situation %s not written: %v", ErrUnavailable, situation, err)
	}
	for _, w := range waiters {
		w(err)
	}
}

// evict makes room for a new clean copy (c.mu held): any one clean copy goes
// (a miss costs only a read); dirty ones stay.
func (c *situationCache) evict(situation string) {
	if c.m == nil {
		c.m = map[string]*cachedState{}
	}
	if _, ok := c.m[situation]; ok || len(c.m) < situationCacheSize {
		return
	}
	for k, e := range c.m {
		if !e.dirty {
			delete(c.m, k)
			return
		}
	}
}

// stage holds st, planned on revision rev, as the situation's dirty copy,
// with the signal store's writes of its new signals (stored).
func (c *situationCache) stage(situation string, st *demarchev1.SituationState, rev uint64, stored []jetstream.PubAckFuture) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evict(situation)
	e, ok := c.m[situation]
	if !ok {
		e = &cachedState{}
		c.m[situation] = e
	}
	e.st, e.rev, e.dirty = st, rev, true
	e.stored = append(e.stored, stored...)
}

// takeStored takes the signal store's writes a situation's copy waits on.
func (c *situationCache) takeStored(situation string) []jetstream.PubAckFuture {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[situation]
	if !ok {
		return nil
	}
	stored := e.stored
	e.stored = nil
	return stored
}

// awaitStored waits, before a situation is written, for the signal store's
// writes of the signals its unwritten copy holds (the situation's lock
// held): a crash can then leave a signal stored and not in its situation
// (the replay stores it again, the same content), never in its situation and
// not stored (the replay would call it a duplicate and never store it).
func (s *Service) awaitStored(ctx context.Context, situation string) {
	s.waitStored(ctx, s.cache.takeStored(situation))
}

// hold keeps settle until the situation's dirty copy is written (true), or
// says the situation is written already (false: settle now).
func (c *situationCache) hold(situation string, settle func(error)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[situation]
	if !ok || !e.dirty {
		return false
	}
	e.waiters = append(e.waiters, settle)
	c.waiting++
	if c.waiting >= FlushPending && c.kick != nil {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// dirtyKeys are the situations held unwritten.
func (c *situationCache) dirtyKeys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k, e := range c.m {
		if e.dirty {
			out = append(out, k)
		}
	}
	return out
}

// holdSettle is handleSignalBatch's answer for a stream signal of the
// situation: settled now (nil) when the situation is written, else
// eventbus.ErrDeferred, settled by the flush that writes it.
func (s *Service) holdSettle(situation string, settle func(error)) bool {
	return settle != nil && s.cache.hold(situation, settle)
}

// flushLoop writes the dirty situations every FlushInterval, or at once when
// FlushPending messages wait, until stop is closed; then once more.
func (s *Service) flushLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.flushInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			s.flush(context.Background())
			return
		case <-t.C:
		case <-s.cache.kick:
		}
		s.flush(context.Background())
	}
}

// flush writes every dirty situation, side by side (situationConcurrency at
// once), each under its lock, and settles the messages each held.
func (s *Service) flush(ctx context.Context) {
	keys := s.cache.dirtyKeys()
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	sem := make(chan struct{}, situationConcurrency)
	var wg sync.WaitGroup
	for _, key := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.flushSituation(ctx, key); err != nil {
				s.log.Warn("situation flush failed; its signals are redelivered", zap.String("situation", key), zap.Error(err))
			}
		}()
	}
	wg.Wait()
}

// flushSituation writes a situation's dirty copy (compare-and-set against the
// revision it was planned on) and settles what it held.
func (s *Service) flushSituation(ctx context.Context, situation string) error {
	defer s.lock(situation)()
	s.cache.mu.Lock()
	e, ok := s.cache.m[situation]
	var st *demarchev1.SituationState
	var rev uint64
	if ok && e.dirty {
		st, rev = e.st, e.rev
	}
	s.cache.mu.Unlock()
	if st == nil {
		return nil // written meanwhile (an import's batch, a crossing)
	}
	written, err := s.writeSituation(ctx, situation, st, rev)
	s.cache.put(situation, st, written, err)
	return err
}

// writeSituation writes a situation's state: created when rev is 0, else
// compare-and-set against rev. It answers the new revision.
func (s *Service) writeSituation(ctx context.Context, situation string, st *demarchev1.SituationState, rev uint64) (uint64, error) {
	s.awaitStored(ctx, situation)
	data, err := proto.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("encode situation %s: %w", situation, err)
	}
	if rev == 0 {
		return s.situations.Create(ctx, situation, data)
	}
	return s.situations.Update(ctx, situation, data, rev)
}

// readSituation is a situation as a reader should see it: this process's
// unwritten copy when it holds one, else what NATS holds.
func (s *Service) readSituation(ctx context.Context, situation string) (*demarchev1.SituationState, error) {
	if st := s.cache.dirtyState(situation); st != nil {
		return st, nil
	}
	st, _, err := s.loadSituation(ctx, situation)
	return st, err
}
