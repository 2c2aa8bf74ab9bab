package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Consumers outside provisioning. A durable consumer decides what a service
// sees: edit the audit consumer's filter and a crisis's events are never
// chained; delete the partners consumer and partners are never told; pull
// and acknowledge another service's consumer and its events are gone. NATS
// permissions keep each identity to its own consumers; this is the alarm for
// whoever holds a credential that still may (the provisioner, an insider):
// the audit service compares, every ConsumerWatchEvery, each durable
// consumer on the streams that hold declared ones (eventbus.Durables) with
// its declaration and with what it saw before, and raises the
// consumer-changed alarm once per change (not on every poll):
//   - a declared consumer seen before is gone (deleted);
//   - a declared consumer's filter subjects or ack policy are not its
//     declaration's (edited; or created so by someone else);
//   - a consumer's filter, ack or deliver policy changed since the last poll;
//   - a durable nobody declared appeared (created outside provisioning);
//   - its acknowledgement floor moved backwards (reset to replay, or
//     deleted and re-created under the same name in between);
//   - it was made again since the last poll (its creation time changed):
//     deleted, then re-created by its own service, which does so at once.
// A declared consumer not there yet is no alarm: its service may not run here.

// AlarmConsumerChanged: a durable consumer was deleted, edited or created outside provisioning.
const AlarmConsumerChanged = "consumer-changed"

// DefaultConsumerWatchEvery is how often the consumers are compared by default.
const DefaultConsumerWatchEvery = 10 * time.Second

// seenConsumer is what the watchdog last saw of a consumer.
type seenConsumer struct {
	config   string // filter subjects, ack and deliver policy
	ackFloor uint64
	// created is when the server made it: a consumer deleted and made again
	// between two polls (its service re-creates its own durable at once)
	// shows only here.
	created time.Time
	gone    bool
}

// consumerWatch is the watchdog's memory: stream/durable -> last seen.
type consumerWatch struct {
	seen map[string]*seenConsumer
}

func consumerConfigOf(c jetstream.ConsumerConfig) string {
	filters := slices.Clone(c.FilterSubjects)
	if c.FilterSubject != "" {
		filters = append(filters, c.FilterSubject)
	}
	sort.Strings(filters)
	return fmt.Sprintf("filter [%s], ack %s, deliver %s", strings.Join(filters, " "), c.AckPolicy, c.DeliverPolicy)
}

// CheckConsumers compares the server's durable consumers with their
// declarations and with the last check, raises one alarm per change, and
// returns the changes found (for tests and the log).
func (s *Store) CheckConsumers(ctx context.Context) ([]string, error) {
	s.consumers.mu.Lock()
	defer s.consumers.mu.Unlock()
	if s.consumers.seen == nil {
		s.consumers.seen = map[string]*seenConsumer{}
	}
	var changes []string
	present := map[string]bool{}
	checked := map[string]bool{}
	var streams []string
	names := s.js.StreamNames(ctx)
	for name := range names.Name() {
		if eventbus.Watched(name) {
			streams = append(streams, name)
		}
	}
	if err := names.Err(); err != nil {
		return changes, fmt.Errorf("audit: list streams: %w", err)
	}
	for _, stream := range streams {
		st, err := s.js.Stream(ctx, stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // not provisioned here (its service does not run)
		}
		if err != nil {
			return changes, fmt.Errorf("audit: consumers of %s: %w", stream, err)
		}
		checked[stream] = true
		lister := st.ListConsumers(ctx)
		for info := range lister.Info() {
			if info.Config.Durable == "" {
				continue // ordered and ephemeral consumers come and go
			}
			key := stream + "/" + info.Name
			present[key] = true
			cfg := consumerConfigOf(info.Config)
			prev := s.consumers.seen[key]
			var what []string
			if spec := eventbus.SpecOf(stream, info.Name); spec == nil {
				if prev == nil || prev.gone {
					what = append(what, "a durable consumer nobody declared appeared ("+cfg+"): created outside provisioning")
				}
			} else {
				declared := jetstream.ConsumerConfig{FilterSubject: info.Config.FilterSubject, FilterSubjects: info.Config.FilterSubjects, AckPolicy: spec.AckPolicy, DeliverPolicy: info.Config.DeliverPolicy}
				if spec.Filter != nil {
					declared.FilterSubject, declared.FilterSubjects = "", spec.Filter(info.Name)
				}
				want := consumerConfigOf(declared)
				if cfg != want && (prev == nil || prev.config != cfg) {
					what = append(what, fmt.Sprintf("its configuration is %s, declared %s: edited outside provisioning", cfg, want))
				}
			}
			if prev != nil && !prev.gone && prev.config != cfg && len(what) == 0 {
				what = append(what, fmt.Sprintf("its configuration changed from %s to %s", prev.config, cfg))
			}
			if prev != nil && !prev.gone && !prev.created.IsZero() && !info.Created.Equal(prev.created) {
				what = append(what, fmt.Sprintf("it was deleted and re-created between two checks (made at %s, before at %s): its acknowledgement floor went from %d to %d",
					info.Created.UTC().Format(time.RFC3339Nano), prev.created.UTC().Format(time.RFC3339Nano), prev.ackFloor, info.AckFloor.Stream))
			} else if prev != nil && prev.gone && len(what) == 0 && info.AckFloor.Stream < prev.ackFloor {
				what = append(what, fmt.Sprintf("it was deleted and re-created: its acknowledgement floor went back from %d to %d", prev.ackFloor, info.AckFloor.Stream))
			} else if prev != nil && !prev.gone && info.AckFloor.Stream < prev.ackFloor {
				what = append(what, fmt.Sprintf("its acknowledgement floor moved backwards from %d to %d: events will be delivered again", prev.ackFloor, info.AckFloor.Stream))
			}
			s.consumers.seen[key] = &seenConsumer{config: cfg, ackFloor: info.AckFloor.Stream, created: info.Created}
			for _, w := range what {
				changes = append(changes, s.consumerAlarm(ctx, stream, info.Name, w))
			}
		}
		if err := lister.Err(); err != nil {
			return changes, fmt.Errorf("audit: consumers of %s: %w", stream, err)
		}
	}
	for key, prev := range s.consumers.seen {
		stream, name, _ := strings.Cut(key, "/")
		if present[key] || prev.gone || !checked[stream] {
			continue
		}
		if eventbus.SpecOf(stream, name) == nil {
			delete(s.consumers.seen, key) // never provisioned: its appearance was the alarm
			continue
		}
		prev.gone = true
		changes = append(changes, s.consumerAlarm(ctx, stream, name, "it was deleted (last seen with "+prev.config+")"))
	}
	return changes, nil
}

func (s *Store) consumerAlarm(ctx context.Context, stream, durable, what string) string {
	reason := fmt.Sprintf("durable consumer %s on stream %s: %s", durable, stream, what)
	if err := s.raise(ctx, &demarchev1.AuditAlarm{Kind: AlarmConsumerChanged, Reason: reason}); err != nil && s.alarms.log != nil {
		s.alarms.log.Error("audit: could not record an alarm", zap.Error(err))
	}
	return reason
}

// watchConsumers runs CheckConsumers every interval until stopped.
func (s *Store) watchConsumers(ctx context.Context, every time.Duration, log *zap.Logger) (stop func()) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if _, err := s.CheckConsumers(wctx); err != nil && wctx.Err() == nil {
				log.Warn("checking durable consumers failed; will retry", zap.Error(err))
			}
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}
