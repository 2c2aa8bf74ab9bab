package eventbus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/pkg/tracing"
)

// Publisher publishes crisis events to the crisis stream.
type Publisher struct {
	js     jetstream.JetStream
	source string
}

// NewPublisher returns a publisher whose events carry ce-source = source unless
// the event sets its own.
func NewPublisher(js jetstream.JetStream, source string) *Publisher {
	return &Publisher{js: js, source: source}
}

// Publish stores one event on its route's subject and waits for the stream's
// acknowledgement. duplicate is true when the stream already held an event with
// this id (a retry): the event is then stored once, and that is not an error.
func (p *Publisher) Publish(ctx context.Context, route Route, ev Event) (duplicate bool, err error) {
	if ev.Source == "" {
		ev.Source = p.source
	}
	if ev.Subject == "" {
		ev.Subject = route.CrisisID
	}
	et, err := TypeOf(ev.Data)
	if err != nil {
		return false, fmt.Errorf("publish event %q: %w", ev.ID, err)
	}
	msg, err := Encode(route.Subject(et.Token), ev)
	if err != nil {
		return false, fmt.Errorf("publish: %w", err)
	}
	tracing.Inject(ctx, msg.Header)
	ack, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(StreamName))
	if err != nil {
		return false, fmt.Errorf("publish event %q on %s: %w", ev.ID, msg.Subject, err)
	}
	return ack.Duplicate, nil
}
