package eventbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/metrics"
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
}

// Consumer is a running durable consumer. Stop it with Stop.
type Consumer struct {
	cfg    ConsumerConfig
	js     jetstream.JetStream
	log    *zap.Logger
	handle Handler
	cc     jetstream.ConsumeContext
	ctx    context.Context
	cancel context.CancelFunc
}

// Consume creates (or resumes) a durable, explicit-ack consumer on the crisis
// stream and calls handle for each event, one at a time, in stream order.
func Consume(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, handle Handler, log *zap.Logger) (*Consumer, error) {
	cfg.defaults()
	if cfg.Durable == "" {
		return nil, errors.New("consume: a durable name is required")
	}
	jc, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable:        cfg.Durable,
		Description:    "Démarche consumer " + cfg.Durable,
		FilterSubjects: cfg.FilterSubjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		// The bound is enforced here, not by the server: an event past MaxDeliver
		// is dead-lettered, and if even that copy fails it stays redeliverable.
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1, // one at a time keeps each crisis's events in order
	})
	if err != nil {
		return nil, fmt.Errorf("consume %s: create consumer: %w", cfg.Durable, err)
	}
	c := &Consumer{cfg: cfg, js: js, log: log.With(zap.String("consumer", cfg.Durable)), handle: handle}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	cc, err := jc.Consume(c.onMessage, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		c.log.Warn("consume error", zap.Error(err))
	}))
	if err != nil {
		c.cancel()
		return nil, fmt.Errorf("consume %s: %w", cfg.Durable, err)
	}
	c.cc = cc
	return c, nil
}

// Stop stops delivery and waits for the event in hand to finish.
func (c *Consumer) Stop() {
	c.cc.Drain()
	<-c.cc.Closed()
	c.cancel()
}

func (c *Consumer) onMessage(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		c.log.Error("message without metadata", zap.Error(err))
		_ = msg.Term()
		return
	}
	ev, err := Decode(msg.Headers(), msg.Data())
	if err != nil {
		c.deadLetter(msg, meta, fmt.Sprintf("undecodable: %v", err))
		return
	}
	log := c.log.With(zap.String("event_id", ev.ID), zap.String("type", ev.Type), zap.Uint64("delivery", meta.NumDelivered))
	metrics.ConsumerLag.WithLabelValues(c.cfg.Durable).Set(float64(meta.NumPending))
	if meta.NumDelivered > 1 {
		metrics.ConsumerRedeliveries.WithLabelValues(c.cfg.Durable).Inc()
	}
	start := time.Now()
	err = c.handle(c.ctx, ev)
	metrics.ConsumerHandleSeconds.WithLabelValues(c.cfg.Durable).Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		metrics.ConsumerHandled.WithLabelValues(c.cfg.Durable, "ack").Inc()
		if err := msg.DoubleAck(c.ctx); err != nil {
			log.Warn("ack failed; the event may be redelivered", zap.Error(err))
		}
	case errors.Is(err, ErrPermanent):
		c.deadLetter(msg, meta, fmt.Sprintf("handler failed permanently: %v", err))
	case int(meta.NumDelivered) >= c.cfg.MaxDeliver:
		c.deadLetter(msg, meta, fmt.Sprintf("handler failed %d times, last: %v", meta.NumDelivered, err))
	default:
		metrics.ConsumerHandled.WithLabelValues(c.cfg.Durable, "retry").Inc()
		delay := c.cfg.Backoff[min(int(meta.NumDelivered)-1, len(c.cfg.Backoff)-1)]
		log.Warn("handler failed; will retry", zap.Error(err), zap.Duration("retry_in", delay))
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn("nak failed", zap.Error(err))
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
		_ = msg.NakWithDelay(c.cfg.Backoff[0])
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
