package natsx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Resources are the streams and key-value buckets a service needs. Each
// service declares its own; a provisioning identity creates or updates them
// all at start-up (services/platform's Provision), and the services only
// bind to them (Stream, KeyValue): service identities have no right to
// create, edit, purge or delete a stream or a bucket.
type Resources struct {
	Streams []jetstream.StreamConfig
	Buckets []jetstream.KeyValueConfig
}

// Merge returns r with the resources of others appended.
func (r Resources) Merge(others ...Resources) Resources {
	for _, o := range others {
		r.Streams = append(r.Streams, o.Streams...)
		r.Buckets = append(r.Buckets, o.Buckets...)
	}
	return r
}

// Stream binds to a provisioned stream. Only when the stream does not exist
// (a server without provisioning, as in unit tests) does it try to create it,
// which a service identity is refused; an existing stream is never changed.
func Stream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, cfg.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// KeyValue binds to a provisioned bucket; like Stream, it creates the bucket
// only when it does not exist, and never changes an existing one.
func KeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Bind binds to (or, unprovisioned, creates) every resource of r.
func Bind(ctx context.Context, js jetstream.JetStream, r Resources) error {
	for _, cfg := range r.Streams {
		if _, err := Stream(ctx, js, cfg); err != nil {
			return err
		}
	}
	for _, cfg := range r.Buckets {
		if _, err := KeyValue(ctx, js, cfg); err != nil {
			return err
		}
	}
	return nil
}

// OneShotInactive is how long the server keeps a one-shot reader's ordered
// consumer (a chain or ledger read) after its last pull. The library's
// default, 5 minutes, lets a reader polled every second hold hundreds of
// consumers at once, up to the stream's limit ("maximum consumers limit
// reached"); a read is over long before this.
const OneShotInactive = 10 * time.Second

// Next fetches a consumer's next message. On a cluster, a consumer just
// created is known to the server this connection is on a moment later: until
// then a pull finds no responders, which Next waits out (up to five seconds)
// instead of failing. The multi-process cluster test found it.
func Next(cons jetstream.Consumer, maxWait time.Duration) (jetstream.Msg, error) {
	msg, err := cons.Next(jetstream.FetchMaxWait(maxWait))
	for try := 0; errors.Is(err, nats.ErrNoResponders) && try < 50; try++ {
		time.Sleep(100 * time.Millisecond)
		msg, err = cons.Next(jetstream.FetchMaxWait(maxWait))
	}
	return msg, err
}
