package earlywarning

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/metrics"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The open crises of each situation, read from the crisis stream.
//
// A crossing of a situation without an open crisis of its own first looks
// for an open real crisis of the same country and type (one an operator
// opened), so the warning goes there instead of opening a second crisis
// (resolve). Asking Temporal's visibility for it on every crossing was the
// bound of warning-to-action on the embedded stack: the list query holds
// Temporal's single SQLite connection, which the crises' own writes wait
// for (docs/performance.md). The crisis stream already says the same thing:
// every crisis publishes CrisisOpened when it starts and CrisisClosed when it
// ends. So early warning reads those two event types (two ordered consumers,
// each filtered to one type: the only consumers its credential may make on
// the crisis stream) into this index, from the stream's start, and answers
// from it once it has caught up; until then, or when the stream cannot be
// read, visibility answers as before.
//
// Both sources lag the workflow a little (CrisisOpened is published by the
// crisis's first activity, visibility by Temporal's visibility queue), so
// the index is no staler than visibility was. A crisis that ended without
// CrisisClosed (terminated by an administrator) is learnt when a warning is
// refused as closed (forget), as visibility would have said.
type openIndex struct {
	js  jetstream.JetStream
	log *zap.Logger

	mu     sync.Mutex
	open   map[string][]string // situation key → open real crises, oldest first
	where  map[string]string   // open crisis → its situation key
	closed map[string]bool     // crises whose CrisisClosed was read (an opening read later is ignored)

	// caughtUp counts the consumers (one per event type) that have read
	// what the stream held when they started.
	caughtUp atomic.Int32
	stops    []func()
}

// indexedTypes are the event types the index reads, each by its own
// consumer (natsauth.EventReads: the filters early warning may consume).
var indexedTypes = []string{"crisis_opened", "crisis_closed"}

// OpenIndexFilters are the crisis stream's subjects the index reads: one
// event type each, on every crisis.
func OpenIndexFilters() []string {
	out := make([]string, len(indexedTypes))
	for i, token := range indexedTypes {
		out[i] = eventbus.SubjectRoot + ".*.*.*." + token
	}
	return out
}

func newOpenIndex(js jetstream.JetStream, log *zap.Logger) *openIndex {
	return &openIndex{js: js, log: log, open: map[string][]string{}, where: map[string]string{}, closed: map[string]bool{}}
}

// ready says the index has read every opening and closing the stream held
// when it started (and whatever came since).
func (x *openIndex) ready() bool {
	return x != nil && int(x.caughtUp.Load()) == len(indexedTypes)
}

// find is the oldest open real crisis of the country and type ("" if none).
func (x *openIndex) find(country string, t demarchev1.CrisisType) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if ids := x.open[demarchev1.SituationKey(country, t)]; len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// forget takes a crisis found closed out of the index.
func (x *openIndex) forget(crisisID string) {
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.remove(crisisID)
}

// remove takes crisisID out of its situation's open crises (x.mu held) and
// remembers it closed.
func (x *openIndex) remove(crisisID string) {
	x.closed[crisisID] = true
	sk, ok := x.where[crisisID]
	if !ok {
		return
	}
	delete(x.where, crisisID)
	ids := slices.DeleteFunc(x.open[sk], func(id string) bool { return id == crisisID })
	if len(ids) == 0 {
		delete(x.open, sk)
	} else {
		x.open[sk] = ids
	}
}

// opened adds a crisis (not a drill: drills never take real warnings).
func (x *openIndex) opened(c *demarchev1.Crisis) {
	if c.GetDrill() || c.GetId() == "" {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed[c.GetId()] {
		return // its closing was read first (the two consumers run apart)
	}
	if _, ok := x.where[c.GetId()]; ok {
		return // published again (a retried activity)
	}
	sk := demarchev1.SituationKey(c.GetCountryCode(), c.GetCrisisType())
	x.where[c.GetId()] = sk
	x.open[sk] = append(x.open[sk], c.GetId())
}

// handle applies one message of the crisis stream; what it cannot decode
// it skips (the index only reads: the stream's own consumers dead-letter).
func (x *openIndex) handle(msg jetstream.Msg) {
	ev, err := eventbus.Decode(msg.Headers(), msg.Data())
	if err != nil {
		x.log.Warn("open crises index: event skipped", zap.String("subject", msg.Subject()), zap.Error(err))
		return
	}
	switch d := ev.Data.(type) {
	case *demarchev1.CrisisOpened:
		x.opened(d.GetCrisis())
	case *demarchev1.CrisisClosed:
		x.forget(d.GetCrisisId())
	}
}

// start reads each event type with an ordered consumer from the stream's
// start, retrying until the stream can be read (it may be provisioned after
// this service starts); stop ends the reading.
func (x *openIndex) start(ctx context.Context) {
	for _, token := range indexedTypes {
		metrics.OpenCrisesIndexSequence.WithLabelValues(token).Set(0) // this index has applied nothing yet
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, filter := range OpenIndexFilters() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x.follow(ctx, filter)
		}()
	}
	x.stops = append(x.stops, func() { cancel(); wg.Wait() })
}

func (x *openIndex) stop() {
	for _, s := range x.stops {
		s()
	}
	x.stops = nil
}

// openIndexRetry is how long the index waits before trying a failed read again.
const openIndexRetry = 5 * time.Second

// follow reads one event type until ctx ends: caught up once it read every
// message the filter held when its consumer was made.
func (x *openIndex) follow(ctx context.Context, filter string) {
	var once sync.Once // counted once, whatever the retries
	for {
		err := x.consume(ctx, filter, &once)
		if ctx.Err() != nil {
			return
		}
		x.log.Warn("open crises index: crisis stream not read; visibility answers meanwhile", zap.String("filter", filter), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(openIndexRetry):
		}
	}
}

// consume runs one ordered consumer of filter until ctx ends (nil) or it
// cannot be made (the error).
func (x *openIndex) consume(ctx context.Context, filter string, once *sync.Once) error {
	cons, err := x.js.OrderedConsumer(ctx, eventbus.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer of %s: %w", filter, err)
	}
	caughtUp := func() {
		once.Do(func() {
			if int(x.caughtUp.Add(1)) == len(indexedTypes) {
				x.mu.Lock()
				open, closed := len(x.where), len(x.closed)
				x.mu.Unlock()
				x.log.Info("open crises index caught up: crossings find open crises here, not in visibility",
					zap.Int("open_real_crises", open), zap.Int("closed_crises", closed))
			}
		})
	}
	applied := metrics.OpenCrisesIndexSequence.WithLabelValues(filter[strings.LastIndexByte(filter, '.')+1:])
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		x.handle(msg)
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		applied.Set(float64(md.Sequence.Stream))
		if md.NumPending == 0 {
			caughtUp()
		}
	})
	if err != nil {
		return fmt.Errorf("consume %s: %w", filter, err)
	}
	defer cc.Stop()
	// Nothing to read at all: no message will say it caught up.
	info, err := cons.Info(ctx)
	if err == nil && info.NumPending == 0 && info.Delivered.Consumer == 0 {
		caughtUp()
	}
	<-ctx.Done()
	return nil
}
