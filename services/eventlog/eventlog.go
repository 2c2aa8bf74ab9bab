// Package eventlog is the event-log service: a durable consumer of every crisis
// event that writes one structured log line per event. It is the smallest
// subscriber of the bus, and the model for others. A line says what happened
// to which crisis, never the event's data: titles, rationales and summaries of
// restricted and confidential crises must not reach logs.
package eventlog

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsx"
)

// Durable is the consumer name; the service resumes where it stopped.
const Durable = "eventlog"

// Service is a running event log.
type Service struct {
	nc       *nats.Conn
	consumer *eventbus.Consumer
}

// Start connects to NATS and starts consuming.
func Start(ctx context.Context, natsURL string, log *zap.Logger) (*Service, error) {
	log = log.Named("eventlog")
	nc, js, err := natsx.Connect(natsURL, "demarche-eventlog", log)
	if err != nil {
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	if err := eventbus.EnsureStreams(ctx, js, eventbus.StreamOptions{}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	c, err := eventbus.Consume(ctx, js, eventbus.ConsumerConfig{Durable: Durable}, func(_ context.Context, ev eventbus.Event) error {
		log.Info("event",
			zap.String("type", ev.Type),
			zap.String("crisis", ev.Subject),
			zap.String("id", ev.ID),
			zap.Time("time", ev.Time))
		return nil
	}, log)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	return &Service{nc: nc, consumer: c}, nil
}

// Stop stops consuming and disconnects.
func (s *Service) Stop() {
	s.consumer.Stop()
	s.nc.Close()
}
