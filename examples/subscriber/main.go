// Command subscriber is a Démarche crisis-event subscriber written the way a
// partner's engineer would write one: it depends on nats.go and the protobuf
// runtime only, not on Démarche's code or generated types.
//
//   - a durable JetStream consumer that follows one region
//     (demarche.crisis.<region>.>) and resumes where it stopped;
//   - bodies decoded with the schema named by the event's ce-dataschema header,
//     fetched once from the schema service (demarche.schema.get) and cached;
//   - redelivery handled idempotently: an event whose ce-id was already handled
//     is acknowledged and skipped (the ids survive restarts with --state);
//   - its lag reported: events still pending for it, and how old the last one was;
//   - each crisis's order kept, a crash included: the consumer has
//     max_ack_pending 1, so the next event comes only once the previous one
//     is acknowledged, and an event un-acknowledged at a crash is redelivered
//     (after --ack-wait) before anything newer. The cost (docs/events.md,
//     "Duplicates and order"): one event in flight, and a stall of the ack
//     wait after a crash.
//
// Duplicates: JetStream stores an event once per Nats-Msg-Id (on
// demarche.crisis.… it equals ce-id; a partner's copy on
// demarche.partner.<ORG>.… carries <ORG>-<ce-id>), but a consumer may deliver
// it again (a crash before the ack, a lost ack): de-duplicate on ce-id.
// Nats-Expected-Stream on the wire is the publisher's guard, nothing to act on.
//
// It prints one JSON line per event handled (the "business logic" of this
// example) and its reports on stderr.
//
//	go run . --nats-url nats://demarche-subscriber:<password>@127.0.0.1:4222 --region africa
//
// On a Démarche server every user has its own inbox prefix, _INBOX_<identity>
// (its replies are its own to read): the example derives it from the URL's
// user (demarche-<identity>), or takes --inbox-prefix. Its durable consumer
// is one its identity owns by name (`demarche dev`'s subscriber identity owns
// example-subscriber).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// From the AsyncAPI document (docs/asyncapi.json).
const (
	stream        = "DEMARCHE_CRISIS"
	schemaSubject = "demarche.schema.get"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "nats-url", nats.DefaultURL, "NATS server")
	flag.StringVar(&cfg.region, "region", "africa", "region to follow: africa, americas, asia-pacific, europe, middle-east")
	flag.StringVar(&cfg.durable, "durable", "example-subscriber", "durable consumer name: the subscriber resumes where this name stopped")
	flag.StringVar(&cfg.inbox, "inbox-prefix", "", "inbox prefix (default: _INBOX_<identity> for a URL with user demarche-<identity>, else _INBOX)")
	flag.StringVar(&cfg.state, "state", "", "file keeping the ids of handled events, so a restart still skips redeliveries (empty: in memory)")
	flag.DurationVar(&cfg.lagEvery, "lag-every", 10*time.Second, "how often to report lag")
	flag.DurationVar(&cfg.ackWait, "ack-wait", 30*time.Second, "how long an event may stay un-acknowledged before it is redelivered: after a crash, the stall before the subscriber resumes (set it a little above the longest handling time)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "subscriber:", err)
		os.Exit(1)
	}
}

type config struct {
	url, region, durable, state, inbox string
	lagEvery, ackWait                  time.Duration
}

// inboxPrefix is --inbox-prefix, or _INBOX_<identity> for a URL whose user
// is demarche-<identity>.
func inboxPrefix(cfg config) string {
	if cfg.inbox != "" {
		return cfg.inbox
	}
	first, _, _ := strings.Cut(cfg.url, ",")
	u, err := url.Parse(strings.TrimSpace(first))
	if err != nil || u.User == nil {
		return ""
	}
	if id, ok := strings.CutPrefix(u.User.Username(), "demarche-"); ok && id != "" {
		return "_INBOX_" + id
	}
	return ""
}

// handled is one line of output.
type handled struct {
	Crisis    string          `json:"crisis"`
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Time      string          `json:"time"`
	StreamSeq uint64          `json:"stream_seq"`
	Delivered uint64          `json:"delivered"`
	Data      json.RawMessage `json:"data"`
}

func run(ctx context.Context, cfg config, out *os.File) error {
	opts := []nats.Option{nats.Name("example-subscriber " + cfg.durable), nats.MaxReconnects(-1)}
	if prefix := inboxPrefix(cfg); prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	nc, err := nats.Connect(cfg.url, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       cfg.durable,
		FilterSubject: "demarche.crisis." + cfg.region + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.ackWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// One at a time: each crisis's events are handled in stream order,
		// and after a crash the un-acknowledged event comes back first.
		MaxAckPending: 1,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", cfg.durable, stream, err)
	}
	seen, err := openSeen(cfg.state)
	if err != nil {
		return err
	}
	defer seen.close()
	schemas := &schemaCache{nc: nc, byName: map[string]protoreflect.MessageDescriptor{}}
	w := bufio.NewWriter(out)
	defer w.Flush()

	var lagMu sync.Mutex
	var pending uint64
	var lastTime time.Time
	go func() { // lag report
		t := time.NewTicker(cfg.lagEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				lagMu.Lock()
				age := time.Duration(0)
				if !lastTime.IsZero() {
					age = time.Since(lastTime).Round(time.Millisecond)
				}
				fmt.Fprintf(os.Stderr, "lag: %d events pending, last event handled was %s old\n", pending, age)
				lagMu.Unlock()
			}
		}
	}()

	for ctx.Err() == nil {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("next: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		h := msg.Headers()
		id := h.Get("ce-id")
		lagMu.Lock()
		pending = meta.NumPending
		lagMu.Unlock()
		if seen.has(id) { // a redelivery of an event already handled: ack again, do nothing
			_ = msg.Ack()
			continue
		}
		md, err := schemas.get(h.Get("ce-dataschema"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "event %s: %v; will retry\n", id, err)
			_ = msg.NakWithDelay(5 * time.Second)
			continue
		}
		data := dynamicpb.NewMessage(md)
		if err := proto.Unmarshal(msg.Data(), data); err != nil {
			fmt.Fprintf(os.Stderr, "event %s: undecodable %s: %v; skipped\n", id, md.FullName(), err)
			_ = msg.Term()
			continue
		}
		js, err := protojson.Marshal(data)
		if err != nil {
			return err
		}
		var compact json.RawMessage
		if err := json.Unmarshal(js, &compact); err != nil {
			return err
		}
		line, _ := json.Marshal(handled{
			Crisis: h.Get("ce-subject"), Type: h.Get("ce-type"), ID: id, Time: h.Get("ce-time"),
			StreamSeq: meta.Sequence.Stream, Delivered: meta.NumDelivered, Data: compact,
		})
		// Handle, remember, then acknowledge: a crash between the two means a
		// redelivery, which the seen set turns into a no-op.
		fmt.Fprintf(w, "%s\n", line)
		if err := w.Flush(); err != nil {
			return err
		}
		if err := seen.add(id); err != nil {
			return err
		}
		if err := msg.DoubleAck(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "event %s: ack: %v (it will be redelivered and skipped)\n", id, err)
		}
		lagMu.Lock()
		if t, err := time.Parse(time.RFC3339Nano, h.Get("ce-time")); err == nil {
			lastTime = t
		}
		lagMu.Unlock()
	}
	return nil
}

// schemaCache resolves ce-dataschema values through the schema service.
type schemaCache struct {
	nc     *nats.Conn
	byName map[string]protoreflect.MessageDescriptor
}

func (c *schemaCache) get(dataschema string) (protoreflect.MessageDescriptor, error) {
	if md, ok := c.byName[dataschema]; ok {
		return md, nil
	}
	// The binary FileDescriptorSet (format "descriptor"); the answer's
	// Demarche-Schema-Message header names the message to look up in it.
	req, _ := json.Marshal(map[string]string{"name": dataschema, "format": "descriptor"})
	reply, err := c.nc.Request(schemaSubject, req, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", dataschema, err)
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
		return nil, fmt.Errorf("schema %s: %s %s", dataschema, code, reply.Header.Get("Nats-Service-Error"))
	}
	message := reply.Header.Get("Demarche-Schema-Message")
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(reply.Data, set); err != nil {
		return nil, fmt.Errorf("schema %s: descriptor set: %w", dataschema, err)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", dataschema, err)
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(message))
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", dataschema, err)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("schema %s: %s is not a message", dataschema, message)
	}
	c.byName[dataschema] = md
	return md, nil
}

// seenSet is the ids of handled events, in memory and optionally in a file.
type seenSet struct {
	ids map[string]bool
	f   *os.File
}

func openSeen(path string) (*seenSet, error) {
	s := &seenSet{ids: map[string]bool{}}
	if path == "" {
		return s, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s.ids[sc.Text()] = true
	}
	s.f = f
	return s, sc.Err()
}

func (s *seenSet) has(id string) bool { return s.ids[id] }

func (s *seenSet) add(id string) error {
	s.ids[id] = true
	if s.f == nil {
		return nil
	}
	if _, err := fmt.Fprintln(s.f, id); err != nil {
		return err
	}
	return s.f.Sync()
}

func (s *seenSet) close() {
	if s.f != nil {
		_ = s.f.Close()
	}
}
