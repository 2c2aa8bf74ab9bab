package eventbus

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/pkg/natsx"
)

// StreamOptions size the event streams. The zero value suits one embedded server.
type StreamOptions struct {
	// Replicas: 1 for the embedded server, 3 for a production cluster.
	Replicas int
	// DuplicateWindow bounds how long a republished event id is recognised.
	// Activity retries can come hours later, so the default is a day.
	DuplicateWindow time.Duration
}

// EnsureStreams binds to the crisis event stream and the dead-letter stream,
// creating them only where nothing provisioned them (natsx.Stream). It is
// idempotent: every service may call it at start-up.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, opts StreamOptions) error {
	return natsx.Bind(ctx, js, Resources(opts))
}

// Resources are the crisis event stream and the dead-letter stream, for the
// provisioning identity.
func Resources(opts StreamOptions) natsx.Resources {
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.DuplicateWindow == 0 {
		opts.DuplicateWindow = 24 * time.Hour
	}
	streams := []jetstream.StreamConfig{{
		Name:        StreamName,
		Description: "Démarche crisis events (CloudEvents 1.0, binary mode, protobuf data)",
		Subjects:    []string{AllEvents()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    opts.Replicas,
		Duplicates:  opts.DuplicateWindow,
	}, {
		Name:        DeadLetterStreamName,
		Description: "Démarche events that a consumer gave up on, with the reason in Demarche-Dead-Letter-Reason",
		Subjects:    []string{DeadLetterRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    opts.Replicas,
		Duplicates:  opts.DuplicateWindow,
	}}
	return natsx.Resources{Streams: streams}
}
