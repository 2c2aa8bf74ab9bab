package eventbus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/tracing"
)

// Dead-letter headers added to the copy of a message a consumer gave up on.
const (
	HeaderDeadLetterReason   = "Demarche-Dead-Letter-Reason"
	HeaderDeadLetterConsumer = "Demarche-Dead-Letter-Consumer"
	HeaderDeadLetterSubject  = "Demarche-Dead-Letter-Subject"
	HeaderDeadLetterSequence = "Demarche-Dead-Letter-Stream-Sequence"
	HeaderDeadLetterAttempts = "Demarche-Dead-Letter-Attempts"
)

// ErrPermanent marks a handler failure that no retry can fix: the event goes to
// the dead-letter subject at once. Wrap it: fmt.Errorf("...: %w", eventbus.ErrPermanent).
var ErrPermanent = errors.New("permanent failure")

// Handler processes one decoded, validated event. A nil return acknowledges it;
// an error redelivers it with backoff, up to MaxDeliver times, then dead-letters it.
type Handler func(ctx context.Context, ev Event) error

// Delivery is one event of a batch, with the context its message carried (the
// trace it belongs to).
type Delivery struct {
	Ctx   context.Context
	Event Event
	// Subject is the NATS subject the event was published on: where NATS
	// permissions make it proof of the publisher (demarche.signals.<source>),
	// the consumer takes the publisher from it, never from the body.
	Subject string
	// Settle, with ConsumeBatches, settles the event later when the handler
	// answered ErrDeferred for it (a write-behind handler: once what it did is
	// durable): nil acknowledges, ErrPermanent dead-letters, another error
	// redelivers. Call it once.
	Settle func(error)
}

// ErrDeferred is a batch handler's answer for an event it settles later,
// with the Delivery's Settle.
var ErrDeferred = errors.New("eventbus: settled later")

// BatchHandler processes the events a batch consumer took at once and answers
// one error per event, in order, each settled as a Handler's would be: nil
// acknowledges, ErrPermanent dead-letters, another error redelivers.
type BatchHandler func(ctx context.Context, batch []Delivery) []error

// DefaultBatchSize is the most events ConsumeBatches hands over at once.
const DefaultBatchSize = 256

// ConsumerConfig describes one durable consumer of the crisis stream.
type ConsumerConfig struct {
	// Stream to consume (default: the crisis stream, StreamName). Any stream
	// whose messages are CloudEvents in this package's format will do.
	Stream string
	// Durable names the consumer; it survives restarts and resumes where it stopped.
	Durable string
	// FilterSubjects narrows the events received (default: all crisis events).
	FilterSubjects []string
	// MaxDeliver bounds deliveries of one event (default 5).
	MaxDeliver int
	// Backoff is the delay before each redelivery (default 1s, 5s, 30s, 2m).
	Backoff []time.Duration
	// AckWait is how long a handler may take before the event is redelivered (default 30s).
	AckWait time.Duration
	// Concurrency > 1 handles that many events at once, never two of the same
	// key at once and each key's events in stream order (Key: default the
	// subject, e.g. one crisis's events or one situation's signals). 0 or 1:
	// one event at a time, in stream order.
	Concurrency int
	// Key says which events must not be handled at once (with Concurrency > 1),
	// from the message's subject and headers (KeyBySubject: the CloudEvent's
	// subject, ce-subject).
	Key func(subject string, h nats.Header) string
	// BatchSize, with ConsumeBatches, is the most events handed over at once
	// (default DefaultBatchSize); twice as many may wait unacknowledged.
	BatchSize int
	// MaxAckPending, with ConsumeBatches, is how many events may wait
	// unacknowledged (default twice BatchSize): a handler that settles events
	// later (ErrDeferred) holds up to this many.
	MaxAckPending int
}

func (c *ConsumerConfig) defaults() {
	if c.Stream == "" {
		c.Stream = StreamName
	}
	if len(c.FilterSubjects) == 0 && c.Stream == StreamName {
		c.FilterSubjects = []string{AllEvents()}
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
}

// Consumer is a running durable consumer. Stop it with Stop.
type Consumer struct {
	cfg    ConsumerConfig
	js     jetstream.JetStream
	log    *zap.Logger
	handle Handler
	// mu guards cc, the running consume (replaced when it ends by itself), and
	// stopping, set by Stop.
	mu       sync.Mutex
	cc       jetstream.ConsumeContext
	stopping bool
	// consumeOpts and deliver make a new consume like the first.
	consumeOpts []jetstream.PullConsumeOpt
	deliver     jetstream.MessageHandler
	supervised  chan struct{} // closed when the supervisor goroutine is done
	quit        chan struct{} // closed by Stop: the supervisor stops waiting
	ctx         context.Context
	cancel      context.CancelFunc
	// lanes, with Concurrency > 1: one goroutine per lane, a key always in the same lane.
	lanes []chan jetstream.Msg
	// batchIn and handleBatch, with ConsumeBatches: messages waiting to be
	// taken into the next batch, and what handles a batch.
	batchIn     chan jetstream.Msg
	handleBatch BatchHandler
	wg          sync.WaitGroup
}

// Consume creates (or resumes) a durable, explicit-ack consumer on the crisis
// stream and calls handle for each event, one at a time, in stream order; or,
// with Concurrency > 1, several at a time, in stream order per Key.
func Consume(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, handle Handler, log *zap.Logger) (*Consumer, error) {
	if handle == nil {
		return nil, errors.New("consume: a handler is required")
	}
	return start(ctx, js, cfg, handle, nil, log)
}

// ConsumeBatches is Consume for a handler that gains from taking many events
// at once (one read and one write per key instead of per event): it hands
// over every event waiting, up to BatchSize, in stream order, one batch at a
// time. A lone event is handed over at once, never held back to fill a batch.
func ConsumeBatches(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, handle BatchHandler, log *zap.Logger) (*Consumer, error) {
	if handle == nil {
		return nil, errors.New("consume: a batch handler is required")
	}
	return start(ctx, js, cfg, nil, handle, log)
}

func start(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, handle Handler, handleBatch BatchHandler, log *zap.Logger) (*Consumer, error) {
	cfg.defaults()
	if cfg.Durable == "" {
		return nil, errors.New("consume: a durable name is required")
	}
	pending := maxAckPending(cfg)
	if handleBatch != nil {
		pending = max(cfg.MaxAckPending, 2*cfg.BatchSize)
	}
	jc, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, consumerConfig(cfg, pending))
	if err != nil {
		return nil, fmt.Errorf("consume %s: create consumer: %w", cfg.Durable, err)
	}
	metrics.Consumer(cfg.Durable) // its series at 0 before its first event
	c := &Consumer{cfg: cfg, js: js, log: log.With(zap.String("consumer", cfg.Durable)), handle: handle, handleBatch: handleBatch}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	deliver := c.onMessage
	opts := []jetstream.PullConsumeOpt{jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		c.log.Warn("consume error", zap.Error(err))
	})}
	switch {
	case handleBatch != nil:
		c.batchIn = make(chan jetstream.Msg, pending)
		c.wg.Add(1)
		go c.runBatches()
		deliver = func(msg jetstream.Msg) { c.batchIn <- msg }
		opts = append(opts, jetstream.PullMaxMessages(pending))
	case cfg.Concurrency > 1:
		c.startLanes()
		deliver = c.dispatch
		opts = append(opts, jetstream.PullMaxMessages(pending))
	}
	c.deliver, c.consumeOpts = deliver, opts
	cc, err := jc.Consume(deliver, opts...)
	if err != nil {
		c.stopLanes()
		c.cancel()
		return nil, fmt.Errorf("consume %s: %w", cfg.Durable, err)
	}
	c.cc = cc
	c.supervised, c.quit = make(chan struct{}), make(chan struct{})
	go c.supervise(pending)
	return c, nil
}

func consumerConfig(cfg ConsumerConfig, pending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        cfg.Durable,
		Description:    "Démarche consumer " + cfg.Durable,
		FilterSubjects: cfg.FilterSubjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		// The bound is enforced here, not by the server: an event past MaxDeliver
		// is dead-lettered, and if even that copy fails it stays redeliverable.
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: pending, // 1 for one at a time (each crisis in order); more for lanes and batches
	}
}

// supervise starts the consume again whenever it ends by itself: nats.go ends
// a consume for good on some errors (the consumer deleted or not found, as
// when a cluster loses it or a restore recreates the stream; the connection
// closed), and a service whose consume ended would stay up doing nothing.
// The durable is created again (same configuration: it resumes where it
// stopped when it still exists) and consumed, retried with a growing pause
// until it works or Stop is called.
func (c *Consumer) supervise(pending int) {
	defer close(c.supervised)
	for {
		c.mu.Lock()
		cc := c.cc
		c.mu.Unlock()
		select {
		case <-cc.Closed():
		case <-c.quit:
			return
		}
		wait := 250 * time.Millisecond
		for {
			c.mu.Lock()
			if c.stopping {
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			c.log.Warn("consume ended by itself: starting it again", zap.Duration("after", wait))
			select {
			case <-c.quit:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 10*time.Second)
			ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
			jc, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, consumerConfig(c.cfg, pending))
			cancel()
			if err != nil {
				c.log.Warn("consume: create consumer again", zap.Error(err))
				continue
			}
			c.mu.Lock()
			if c.stopping {
				c.mu.Unlock()
				return
			}
			cc, err := jc.Consume(c.deliver, c.consumeOpts...)
			if err != nil {
				c.mu.Unlock()
				c.log.Warn("consume again", zap.Error(err))
				continue
			}
			c.cc = cc
			c.mu.Unlock()
			c.log.Info("consume started again")
			break
		}
	}
}

// Stop stops delivery and waits for the events in hand to finish. A second
// Stop waits the same and does nothing more.
func (c *Consumer) Stop() {
	c.mu.Lock()
	first := !c.stopping
	c.stopping = true
	cc := c.cc
	c.mu.Unlock()
	cc.Drain()
	<-cc.Closed()
	if first {
		close(c.quit) // the supervisor, if it is waiting to start the consume again
	}
	<-c.supervised
	c.stopLanes()
	c.cancel()
}

// KeyBySubject keys events by their CloudEvent subject (ce-subject): a
// crisis, a situation.
func KeyBySubject(subject string, h nats.Header) string {
	if v := h.Get(HeaderSubject); v != "" {
		return v
	}
	return subject
}

func maxAckPending(cfg ConsumerConfig) int {
	if cfg.Concurrency > 1 {
		return 4 * cfg.Concurrency
	}
	return 1
}

func (c *Consumer) startLanes() {
	c.lanes = make([]chan jetstream.Msg, c.cfg.Concurrency)
	for i := range c.lanes {
		c.lanes[i] = make(chan jetstream.Msg, 4)
		c.wg.Add(1)
		go func(lane chan jetstream.Msg) {
			defer c.wg.Done()
			for msg := range lane {
				c.onMessage(msg)
			}
		}(c.lanes[i])
	}
}

func (c *Consumer) stopLanes() {
	for _, lane := range c.lanes {
		close(lane)
	}
	if c.batchIn != nil {
		close(c.batchIn)
	}
	c.wg.Wait()
	c.lanes, c.batchIn = nil, nil
}

// runBatches takes the first message waiting, then every other one already
// there up to BatchSize, and handles them as one batch; the consume callback
// blocks while the buffer is full (back-pressure).
func (c *Consumer) runBatches() {
	defer c.wg.Done()
	msgs := make([]jetstream.Msg, 0, c.cfg.BatchSize)
	for first := range c.batchIn {
		msgs = append(msgs[:0], first)
	fill:
		for len(msgs) < c.cfg.BatchSize {
			select {
			case m, ok := <-c.batchIn:
				if !ok {
					break fill
				}
				msgs = append(msgs, m)
			default:
				break fill
			}
		}
		c.onBatch(msgs)
	}
}

// onBatch decodes a batch (an undecodable message is dead-lettered on its
// own), hands the events over and settles each by its own answer.
func (c *Consumer) onBatch(msgs []jetstream.Msg) {
	type taken struct {
		msg  jetstream.Msg
		meta *jetstream.MsgMetadata
		ev   Event
	}
	batch := make([]taken, 0, len(msgs))
	deliveries := make([]Delivery, 0, len(msgs))
	for _, msg := range msgs {
		meta, ev, ok := c.take(msg)
		if !ok {
			continue
		}
		batch = append(batch, taken{msg, meta, ev})
		deliveries = append(deliveries, Delivery{Ctx: tracing.Extract(c.ctx, msg.Headers()), Event: ev, Subject: msg.Subject(),
			Settle: func(err error) { c.settle(msg, meta, ev, err, false) }})
	}
	if len(batch) == 0 {
		return
	}
	start := time.Now()
	errs := c.handleBatch(c.ctx, deliveries)
	per := time.Since(start).Seconds() / float64(len(batch))
	for i, t := range batch {
		var err error
		if i < len(errs) {
			err = errs[i]
		} else {
			err = fmt.Errorf("batch handler answered %d results for %d events", len(errs), len(batch))
		}
		metrics.ConsumerHandleSeconds.WithLabelValues(c.cfg.Durable).Observe(per)
		if errors.Is(err, ErrDeferred) {
			continue // the handler settles it (Delivery.Settle)
		}
		c.settle(t.msg, t.meta, t.ev, err, false)
	}
}

// dispatch hands a message to its key's lane; a full lane holds back the
// delivery callback (back-pressure), never another key's lane.
func (c *Consumer) dispatch(msg jetstream.Msg) {
	key := msg.Subject()
	if c.cfg.Key != nil {
		key = c.cfg.Key(msg.Subject(), msg.Headers())
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key)) // a hash.Hash's Write never returns an error
	c.lanes[h.Sum32()%uint32(len(c.lanes))] <- msg
}

func (c *Consumer) onMessage(msg jetstream.Msg) {
	meta, ev, ok := c.take(msg)
	if !ok {
		return
	}
	start := time.Now()
	err := c.handle(tracing.Extract(c.ctx, msg.Headers()), ev)
	metrics.ConsumerHandleSeconds.WithLabelValues(c.cfg.Durable).Observe(time.Since(start).Seconds())
	c.settle(msg, meta, ev, err, true)
}

// take reads a message's metadata and decodes its event, counting lag and
// redeliveries; a message without metadata is terminated and an undecodable
// one dead-lettered (ok false).
func (c *Consumer) take(msg jetstream.Msg) (*jetstream.MsgMetadata, Event, bool) {
	meta, err := msg.Metadata()
	if err != nil {
		c.log.Error("message without metadata", zap.Error(err))
		if err := msg.Term(); err != nil {
			c.log.Warn("term of a message without metadata failed; it comes back", zap.Error(err))
		}
		return nil, Event{}, false
	}
	ev, err := Decode(msg.Headers(), msg.Data())
	if err != nil {
		c.deadLetter(msg, meta, fmt.Sprintf("undecodable: %v", err))
		return nil, Event{}, false
	}
	metrics.ConsumerLag.WithLabelValues(c.cfg.Durable).Set(float64(meta.NumPending))
	if meta.NumDelivered > 1 {
		metrics.ConsumerRedeliveries.WithLabelValues(c.cfg.Durable).Inc()
	}
	return meta, ev, true
}

// settle acknowledges, dead-letters or redelivers an event by its handler's
// answer. double waits for the server to confirm the acknowledgement (one
// round trip per event); a batch consumer's handler is idempotent, so a lost
// acknowledgement only costs a redelivery it recognises.
func (c *Consumer) settle(msg jetstream.Msg, meta *jetstream.MsgMetadata, ev Event, err error, double bool) {
	switch {
	case err == nil:
		metrics.ConsumerHandled.WithLabelValues(c.cfg.Durable, "ack").Inc()
		ack := msg.Ack
		if double {
			ack = func() error { return msg.DoubleAck(c.ctx) }
		}
		if err := ack(); err != nil {
			c.log.Warn("ack failed; the event may be redelivered", zap.String("event_id", ev.ID), zap.Error(err))
		}
	case errors.Is(err, ErrPermanent):
		c.deadLetter(msg, meta, fmt.Sprintf("handler failed permanently: %v", err))
	case int(meta.NumDelivered) >= c.cfg.MaxDeliver:
		c.deadLetter(msg, meta, fmt.Sprintf("handler failed %d times, last: %v", meta.NumDelivered, err))
	default:
		metrics.ConsumerHandled.WithLabelValues(c.cfg.Durable, "retry").Inc()
		delay := c.cfg.Backoff[min(int(meta.NumDelivered)-1, len(c.cfg.Backoff)-1)]
		c.log.Warn("handler failed; will retry", zap.String("event_id", ev.ID), zap.String("type", ev.Type),
			zap.Uint64("delivery", meta.NumDelivered), zap.Error(err), zap.Duration("retry_in", delay))
		if err := msg.NakWithDelay(delay); err != nil {
			c.log.Warn("nak failed", zap.Error(err))
		}
	}
}

// deadLetter copies the message with its reason to the dead-letter subject, then
// terminates it so the consumer moves on. If the copy cannot be stored the
// message is left unacknowledged: redelivery retries the copy, nothing is lost.
func (c *Consumer) deadLetter(msg jetstream.Msg, meta *jetstream.MsgMetadata, reason string) {
	dl := nats.NewMsg(DeadLetterSubject(c.cfg.Durable))
	for k, vs := range msg.Headers() {
		if strings.HasPrefix(k, "Nats-") { // server directives of the original publish
			continue
		}
		for _, v := range vs {
			dl.Header.Add(k, v)
		}
	}
	dl.Data = msg.Data()
	dl.Header.Set(HeaderDeadLetterReason, reason)
	dl.Header.Set(HeaderDeadLetterConsumer, c.cfg.Durable)
	dl.Header.Set(HeaderDeadLetterSubject, msg.Subject())
	dl.Header.Set(HeaderDeadLetterSequence, strconv.FormatUint(meta.Sequence.Stream, 10))
	dl.Header.Set(HeaderDeadLetterAttempts, strconv.FormatUint(meta.NumDelivered, 10))
	// One dead letter per consumer and stream position, however often we retry.
	id := fmt.Sprintf("%s-%d", c.cfg.Durable, meta.Sequence.Stream)
	if _, err := c.js.PublishMsg(c.ctx, dl, jetstream.WithMsgID(id)); err != nil {
		c.log.Error("dead-letter copy failed; leaving the event for redelivery", zap.Error(err), zap.String("reason", reason))
		if err := msg.NakWithDelay(c.cfg.Backoff[0]); err != nil {
			c.log.Warn("nak failed; the event comes back after its ack wait", zap.Error(err))
		}
		return
	}
	metrics.ConsumerHandled.WithLabelValues(c.cfg.Durable, "dead_letter").Inc()
	metrics.DeadLetters.WithLabelValues(c.cfg.Durable).Inc()
	c.log.Warn("event dead-lettered", zap.String("reason", reason), zap.String("subject", msg.Subject()),
		zap.Uint64("stream_seq", meta.Sequence.Stream), zap.String("dead_letter_subject", dl.Subject))
	if err := msg.Term(); err != nil {
		c.log.Warn("term failed", zap.Error(err))
	}
}
