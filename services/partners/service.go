// Package partners is the partners service: a registry of partner
// organisations (AU, ECOWAS, EU, OSCE, OAS, ...) and what each wants to
// receive; delivery of crisis events to each partner on its own NATS subject
// and, where configured, to a signed HTTP webhook; and a NATS micro service
// through which partners acknowledge their role in a crisis, which is signalled
// to the crisis workflow.
//
// # Delivery
//
// A durable consumer ("partners") of the crisis stream learns each crisis's
// region, country, type, confidentiality and shared_with from its CrisisOpened
// event (kept in the JetStream KV bucket DEMARCHE_PARTNER_CRISES) and copies
// the events of the crisis to
//
//	demarche.partner.<PARTNER>.<region>.<country>.<crisis-id>.<event>
//
// in the partner's own stream DEMARCHE_PARTNER_<PARTNER> (PartnerStream), for
// each partner that receives it, with
// Nats-Msg-Id "<PARTNER>-<event id>" so a redelivery is stored once.
//
// Each partner receives its own copy (PartnerCopy): the CloudEvent's
// attributes with the data cut down to what a partner may know
// (pkg/partnerview.Event, an allow-list shared with the gateway's partner
// view): stage, severity and closure notices, the crisis's public face, and
// sharing changes and roles of its own organisation. Decisions (rationale,
// amounts, envoy and roster ids), disbursements, deadlines, follow-up,
// warnings and the reasons and authors of changes are never delivered; an
// event type with nothing a partner may see is not delivered at all. A public
// crisis goes to the partners whose regions, countries and crisis types match;
// a restricted or confidential crisis goes only to the partners named in its
// shared_with, never to anyone else. A SharingChanged event (an operator
// shared or unshared the crisis during it) updates what the service keeps:
// the change reaches the partners that received the crisis before and those
// that receive it now (a partner new to the crisis gets its opening first),
// and the events after it only the latter.
//
// An event that arrives before its crisis's CrisisOpened (early warning
// publishes WarningRaised and then opens the crisis, whose workflow publishes
// CrisisOpened: two publishers, so either may reach the stream first) is
// parked in the KV bucket DEMARCHE_PARTNER_PENDING and acknowledged: it is
// neither retried nor dead-lettered, and the events behind it flow on. When
// the CrisisOpened arrives, the opening is delivered first, then the parked
// events in the order they were published; so partners always see a crisis's
// opening before anything else of it. Parked events of a crisis that never
// opens expire after PendingTTL.
//
// # Trust
//
// Every event is checked with the guard the audit trail applies
// (pkg/origin.Check) before it is forwarded, and the two events that decide
// who receives a crisis, CrisisOpened and SharingChanged, must come from the
// crisis's own workflow run and history event (origin.RequireOwnWorkflow),
// and with a Temporal signaller (TemporalSignaller, an OriginVerifier) be
// found there: the history event they name published them, with this data
// (whoever holds a credential that may publish crisis events could copy a
// genuine event's headers; the history cannot be copied). A crisis opens
// once: a later CrisisOpened of a known crisis that differs from the one kept
// is forged too. A refused event is never
// forwarded: it is dead-lettered on demarche.dlq.partners with its reason,
// logged as an ALARM and counted in demarche_forged_events_total{consumer="partners"}.
//
// Each partner has a stream of its own, so what a partner organisation may
// read of a stream (its info, its subjects with their counts) is its own
// deliveries alone: a shared stream listed the ids, countries and event
// counts of restricted crises shared only with other organisations.
//
// Each partner with a webhook has its own durable consumer of its partner
// stream ("partners-webhook-<PARTNER>"), so a slow or failing webhook holds
// back no one else. Events are POSTed in CloudEvents HTTP binary mode (ce-*
// headers, protobuf body) with an X-Demarche-Signature header (see Sign and
// Verify); a network error or a non-2xx answer is retried with backoff, then
// dead-lettered on demarche.dlq.partners-webhook-<PARTNER>.
package partners

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/origin"
	"github.com/demarche/demarche/pkg/partnerview"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Names on NATS.
const (
	// Durable is the consumer of the crisis stream that fans events out to partners.
	Durable = "partners"
	// WebhookDurablePrefix + partner name is each webhook's consumer of the partner stream.
	WebhookDurablePrefix = "partners-webhook-"
	// StreamPrefix + partner name is the stream of the events delivered to
	// that partner (PartnerStream).
	StreamPrefix = "DEMARCHE_PARTNER_"
	// SubjectRoot prefixes partner subjects: demarche.partner.<PARTNER>.<region>.<country>.<crisis-id>.<event>.
	SubjectRoot = "demarche.partner"
	// CrisisBucket is the KV bucket of what the service knows of each crisis.
	CrisisBucket = "DEMARCHE_PARTNER_CRISES"
	// PendingBucket parks events that arrived before their crisis's opening:
	// <crisis-id>.<publication time, ns, 20 digits>.<hash of the event id>.
	PendingBucket = "DEMARCHE_PARTNER_PENDING"
	// PendingTTL is how long an event waits for its crisis's opening.
	PendingTTL = 7 * 24 * time.Hour
	// FanOutConcurrency is how many crises' events are fanned out at once.
	FanOutConcurrency = 8
)

// Sentinel errors; the first three also match their errs sentinel, across NATS too.
var (
	// ErrUnknownPartner is returned when a request names a partner that is not
	// in the registry (errs.ErrNotFound).
	ErrUnknownPartner = errs.Sentinel("unknown partner", errs.ErrNotFound)
	// ErrUnknownCrisis is returned when a request names a crisis the service has
	// seen no CrisisOpened event for (errs.ErrNotFound).
	ErrUnknownCrisis = errs.Sentinel("unknown crisis", errs.ErrNotFound)
	// ErrNotShared is returned when a partner acts on a crisis whose
	// confidentiality does not share it with that partner (errs.ErrForbidden).
	ErrNotShared = errs.Sentinel("crisis not shared with partner", errs.ErrForbidden)
	// ErrWebhook is returned when a partner's webhook cannot be reached or
	// answers other than 2xx.
	ErrWebhook = errors.New("webhook delivery failed")
)

// PartnerStream is the stream of one partner's deliveries: only its own
// subjects, so its stream info lists nothing of anyone else's.
func PartnerStream(partner string) string { return StreamPrefix + partner }

// PartnerSubjects matches every event delivered to one partner.
func PartnerSubjects(partner string) string { return SubjectRoot + "." + partner + ".>" }

// PartnerSubject is where one event of a crisis goes for one partner.
func PartnerSubject(partner string, r eventbus.Route, eventToken string) string {
	return fmt.Sprintf("%s.%s.%s.%s.%s.%s", SubjectRoot, partner, r.Region.Slug(), r.Country, r.CrisisID, eventToken)
}

// RoleSignaller hands a partner's role acknowledgement to the crisis workflow.
// TemporalSignaller is the production implementation.
type RoleSignaller interface {
	SignalPartnerRole(ctx context.Context, crisisID string, ack *demarchev1.PartnerRoleAck) error
}

// Retry bounds the redeliveries of one consumer.
type Retry struct {
	// MaxDeliver is how many times an event is tried before it is dead-lettered.
	MaxDeliver int
	// Backoff is the delay before each retry (the last one repeats).
	Backoff []time.Duration
}

// Config configures the service. Only NATSURL is required.
type Config struct {
	NATSURL string
	// RegistryPath is a JSON registry file; empty means the embedded default.
	RegistryPath string
	// Registry, when set, is used instead of loading RegistryPath.
	Registry *Registry
	// Streams sizes the streams and the KV bucket (replicas, duplicate window).
	Streams eventbus.StreamOptions
	// Delivery: fan-out failures (NATS unavailable; default 5 tries: 1s, 5s, 30s, 2m).
	Delivery Retry
	// Webhook: failed webhook calls (default 8 tries: 1s, 5s, 30s, 2m, 10m, 30m, 1h).
	Webhook Retry
	// WebhookTimeout bounds one webhook call (default 10s).
	WebhookTimeout time.Duration
	// HTTPClient calls webhooks (default: a client with WebhookTimeout).
	HTTPClient *http.Client
	// Now is the clock for signatures and acknowledgements (default time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.WebhookTimeout == 0 {
		c.WebhookTimeout = 10 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.WebhookTimeout}
	}
	if c.Webhook.MaxDeliver == 0 {
		c.Webhook.MaxDeliver = 8
	}
	if len(c.Webhook.Backoff) == 0 {
		c.Webhook.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service is a running partners service.
type Service struct {
	cfg       Config
	reg       *Registry
	log       *zap.Logger
	nc        *nats.Conn
	js        jetstream.JetStream
	crises    jetstream.KeyValue
	pending   jetstream.KeyValue
	signaller RoleSignaller
	micro     *natsrpc.Server
	consumers []*eventbus.Consumer
}

// Start loads the registry, makes sure the streams and the KV bucket exist,
// and starts the fan-out consumer, one webhook consumer per webhook, and the
// "partners" micro service. signaller receives role acknowledgements.
func Start(ctx context.Context, cfg Config, signaller RoleSignaller, log *zap.Logger) (_ *Service, err error) {
	log = log.Named("partners")
	cfg.defaults()
	if signaller == nil {
		return nil, errors.New("partners: a role signaller is required")
	}
	reg := cfg.Registry
	if reg == nil {
		if reg, err = LoadRegistry(cfg.RegistryPath); err != nil {
			return nil, fmt.Errorf("partners: %w", err)
		}
	}
	nc, js, err := natsx.Connect(cfg.NATSURL, "demarche-partners", log)
	if err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	s := &Service{cfg: cfg, reg: reg, log: log, nc: nc, js: js, signaller: signaller}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if err = s.ensure(ctx); err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	if s.micro, err = s.startMicro(); err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	// Crises are fanned out side by side, each crisis's events one at a time
	// and in order (keyed by ce-subject, the crisis id): a slow crisis holds
	// back only its own events.
	fan, err := eventbus.Consume(ctx, js, eventbus.ConsumerConfig{
		Durable: Durable, MaxDeliver: cfg.Delivery.MaxDeliver, Backoff: cfg.Delivery.Backoff,
		Concurrency: FanOutConcurrency, Key: eventbus.KeyBySubject,
	}, s.fanOut, log)
	if err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	s.consumers = append(s.consumers, fan)
	for _, p := range reg.Partners() {
		if p.Webhook == nil {
			continue
		}
		c, err := eventbus.Consume(ctx, js, eventbus.ConsumerConfig{
			Stream: PartnerStream(p.Name), Durable: WebhookDurablePrefix + p.Name, FilterSubjects: []string{PartnerSubjects(p.Name)},
			MaxDeliver: cfg.Webhook.MaxDeliver, Backoff: cfg.Webhook.Backoff, AckWait: cfg.WebhookTimeout + 20*time.Second,
		}, s.webhookHandler(p), log)
		if err != nil {
			return nil, fmt.Errorf("partners: webhook of %s: %w", p.Name, err)
		}
		s.consumers = append(s.consumers, c)
	}
	log.Info("partners service started", zap.Int("partners", len(reg.Partners())), zap.Int("consumers", len(s.consumers)))
	return s, nil
}

// Stop stops the consumers and the micro service and disconnects.
func (s *Service) Stop() {
	for i := len(s.consumers) - 1; i >= 0; i-- {
		s.consumers[i].Stop()
	}
	s.consumers = nil
	if s.micro != nil {
		s.micro.Stop()
		s.micro = nil
	}
	if s.nc != nil {
		s.nc.Close()
	}
}

// ensure binds to the crisis and dead-letter streams, the partner stream and
// the service's buckets (creating them only where nothing provisioned them).
func (s *Service) ensure(ctx context.Context) error {
	if err := eventbus.EnsureStreams(ctx, s.js, s.cfg.Streams); err != nil {
		return err
	}
	res := Resources(s.cfg.Streams, s.reg.Names()...)
	for _, st := range res.Streams {
		if _, err := natsx.Stream(ctx, s.js, st); err != nil {
			return err
		}
	}
	var err error
	if s.crises, err = natsx.KeyValue(ctx, s.js, res.Buckets[0]); err != nil {
		return err
	}
	if s.pending, err = natsx.KeyValue(ctx, s.js, res.Buckets[1]); err != nil {
		return err
	}
	return nil
}

// Resources are the partners' streams (one per partner organisation named;
// none named: the embedded registry's) and the service's buckets, for the
// provisioning identity (the service itself only binds to them).
func Resources(opts eventbus.StreamOptions, partnerNames ...string) natsx.Resources {
	replicas, dup := opts.Replicas, opts.DuplicateWindow
	if replicas == 0 {
		replicas = 1
	}
	if dup == 0 {
		dup = 24 * time.Hour
	}
	if len(partnerNames) == 0 {
		partnerNames = DefaultPartnerNames()
	}
	var streams []jetstream.StreamConfig
	for _, name := range partnerNames {
		streams = append(streams, jetstream.StreamConfig{
			Name:        PartnerStream(name),
			Description: "Démarche crisis events delivered to the partner organisation " + name + " (CloudEvents 1.0, binary mode, protobuf data)",
			Subjects:    []string{PartnerSubjects(name)},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Replicas:    replicas,
			Duplicates:  dup,
		})
	}
	return natsx.Resources{
		Streams: streams,
		Buckets: []jetstream.KeyValueConfig{{
			Bucket:      CrisisBucket,
			Description: "What the partners service knows of each crisis (from its CrisisOpened): demarche.v1.Crisis",
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		}, {
			Bucket:      PendingBucket,
			Description: "Events that reached the partners service before their crisis's CrisisOpened, waiting for it",
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			TTL:         PendingTTL,
		}},
	}
}

// crisis returns what is known of a crisis, or ErrUnknownCrisis.
func (s *Service) crisis(ctx context.Context, id string) (*demarchev1.Crisis, error) {
	e, err := s.crises.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, fmt.Errorf("%w: %s (no CrisisOpened event seen for it)", ErrUnknownCrisis, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read crisis %s from %s: %w", id, CrisisBucket, err)
	}
	var c demarchev1.Crisis
	if err := proto.Unmarshal(e.Value(), &c); err != nil {
		return nil, fmt.Errorf("decode crisis %s from %s: %w", id, CrisisBucket, err)
	}
	return &c, nil
}

// fanOut learns crises from CrisisOpened and copies each event to every
// partner that receives it. An event of a crisis not opened yet is parked
// until its opening arrives; the opening delivers it.
func (s *Service) fanOut(ctx context.Context, ev eventbus.Event) error {
	if err := s.checkOrigin(ctx, ev); err != nil {
		return err
	}
	op, ok := ev.Data.(*demarchev1.CrisisOpened)
	if !ok {
		c, err := s.crisis(ctx, ev.Subject)
		if errors.Is(err, ErrUnknownCrisis) {
			return s.park(ctx, ev)
		}
		if err != nil {
			return fmt.Errorf("event %s (%s): %w", ev.ID, ev.Type, err)
		}
		if sc, ok := ev.Data.(*demarchev1.SharingChanged); ok {
			return s.changeSharing(ctx, c, sc, ev)
		}
		return s.deliver(ctx, c, ev)
	}
	c := op.GetCrisis()
	if known, err := s.checkOpensOnce(ctx, c, ev); err != nil {
		return err
	} else if known != nil {
		// The same opening again: delivered as the crisis is shared now (a
		// SharingChanged since is kept), nothing learnt anew.
		return s.deliver(ctx, known, ev)
	}
	b, err := proto.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode crisis %s: %w", c.GetId(), err)
	}
	if _, err := s.crises.Put(ctx, c.GetId(), b); err != nil {
		return fmt.Errorf("store crisis %s: %w", c.GetId(), err)
	}
	if err := s.keepOpening(ctx, c.GetId(), ev); err != nil {
		return err
	}
	for _, name := range c.GetSharedWith() {
		if _, ok := s.reg.Lookup(name); !ok {
			s.log.Warn("crisis shared with a partner not in the registry", zap.String("crisis", c.GetId()), zap.String("partner", name))
		}
	}
	if err := s.deliver(ctx, c, ev); err != nil {
		return err
	}
	return s.deliverParked(ctx, c)
}

// checkOrigin applies the shared guard (pkg/origin) to an event, and to the
// events that decide who receives a crisis the stricter rule: from the
// crisis's own workflow, and (with a Temporal signaller) found published in
// that workflow's history. A refused event is an alarm and a dead letter.
func (s *Service) checkOrigin(ctx context.Context, ev eventbus.Event) error {
	check := origin.Check
	if isRecipientEvent(ev) {
		check = origin.RequireOwnWorkflow
	}
	if err := check(ev); err != nil {
		return s.forged(ev, err)
	}
	if v, ok := s.signaller.(OriginVerifier); ok && isRecipientEvent(ev) {
		if err := v.VerifyPublished(ctx, ev); errors.Is(err, origin.ErrForged) {
			return s.forged(ev, err)
		} else if err != nil {
			return err // Temporal unreachable: retried
		}
	}
	return nil
}

// isRecipientEvent says whether an event decides who receives a crisis.
func isRecipientEvent(ev eventbus.Event) bool {
	switch ev.Data.(type) {
	case *demarchev1.CrisisOpened, *demarchev1.SharingChanged:
		return true
	}
	return false
}

// forged raises the alarm for a refused event and returns the permanent
// failure that dead-letters it (its reason in the dead letter's headers).
func (s *Service) forged(ev eventbus.Event, err error) error {
	metrics.ForgedEvents.WithLabelValues(Durable).Inc()
	s.log.Error("ALARM", zap.String("alarm", "forged-event"), zap.String("crisis", ev.Subject), zap.String("event", ev.ID),
		zap.String("type", ev.Type), zap.Error(err))
	return fmt.Errorf("%w: %w", eventbus.ErrPermanent, err)
}

// checkOpensOnce refuses a CrisisOpened of a crisis already opened that
// differs from the opening kept: a crisis opens once, and a copy with
// another confidentiality or sharing would declassify it. The same opening
// again (a redelivery, a reset run's republication) passes, answering the
// crisis as known now (nil for a crisis not known yet).
func (s *Service) checkOpensOnce(ctx context.Context, c *demarchev1.Crisis, ev eventbus.Event) (*demarchev1.Crisis, error) {
	now, err := s.crisis(ctx, c.GetId())
	if errors.Is(err, ErrUnknownCrisis) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	kept, err := s.opening(ctx, c.GetId())
	if err != nil {
		return nil, err
	}
	before := now // known before openings were kept: as known now
	if kept != nil {
		if op, ok := kept.Data.(*demarchev1.CrisisOpened); ok {
			before = op.GetCrisis()
		}
	}
	if proto.Equal(before, c) {
		return now, nil
	}
	return nil, s.forged(ev, fmt.Errorf("%w: event %s: crisis %s is open already (event %s) and opens once: this CrisisOpened differs from it",
		origin.ErrForged, ev.ID, c.GetId(), openingID(kept)))
}

func openingID(ev *eventbus.Event) string {
	if ev == nil {
		return "kept before openings were"
	}
	return ev.ID
}

// changeSharing keeps a crisis's new sharing, so the events after it go to
// the organisations it is shared with now (and acknowledgements are checked
// against it), and delivers the change itself to the organisations that
// received the crisis before or receive it now: an organisation no longer
// shared with learns so, and receives nothing after.
func (s *Service) changeSharing(ctx context.Context, before *demarchev1.Crisis, sc *demarchev1.SharingChanged, ev eventbus.Event) error {
	after := proto.Clone(before).(*demarchev1.Crisis)
	after.SharedWith = append([]string{}, sc.GetSharedWith()...)
	b, err := proto.Marshal(after)
	if err != nil {
		return fmt.Errorf("encode crisis %s: %w", after.GetId(), err)
	}
	if _, err := s.crises.Put(ctx, after.GetId(), b); err != nil {
		return fmt.Errorf("store crisis %s: %w", after.GetId(), err)
	}
	for _, name := range sc.GetAdded() {
		if _, ok := s.reg.Lookup(name); !ok {
			s.log.Warn("crisis shared with a partner not in the registry", zap.String("crisis", after.GetId()), zap.String("partner", name))
		}
	}
	// A partner that receives the crisis from now on gets its opening first,
	// as every partner does (the opening's own id: a redelivery stores it once).
	newcomer := func(p *Partner) bool { return !p.Receives(before) && p.Receives(after) }
	if opening, err := s.opening(ctx, after.GetId()); err != nil {
		return err
	} else if opening != nil {
		if err := s.deliverTo(ctx, before, *opening, newcomer); err != nil {
			return err
		}
	}
	return s.deliverTo(ctx, after, ev, func(p *Partner) bool { return p.Receives(before) || p.Receives(after) })
}

// openingKey is where the crisis bucket keeps a crisis's CrisisOpened event
// (crisis ids have no dots, so it is no crisis's key).
func openingKey(crisisID string) string { return crisisID + ".opening" }

// keepOpening keeps a crisis's CrisisOpened event, headers and data, for
// partners the crisis is shared with later.
func (s *Service) keepOpening(ctx context.Context, crisisID string, ev eventbus.Event) error {
	msg, err := eventbus.Encode("opening", ev)
	if err != nil {
		return fmt.Errorf("keep the opening of %s: %w: %w", crisisID, err, eventbus.ErrPermanent)
	}
	b, err := json.Marshal(parkedEvent{Header: msg.Header, Data: msg.Data})
	if err != nil {
		return fmt.Errorf("keep the opening of %s: %w", crisisID, err)
	}
	if _, err := s.crises.Put(ctx, openingKey(crisisID), b); err != nil {
		return fmt.Errorf("keep the opening of %s: %w", crisisID, err)
	}
	return nil
}

// opening is a crisis's kept CrisisOpened event (nil for a crisis opened
// before openings were kept).
func (s *Service) opening(ctx context.Context, crisisID string) (*eventbus.Event, error) {
	e, err := s.crises.Get(ctx, openingKey(crisisID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the opening of %s: %w", crisisID, err)
	}
	var p parkedEvent
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		s.log.Error("kept opening unreadable", zap.String("crisis", crisisID), zap.Error(err))
		return nil, nil
	}
	ev, err := eventbus.Decode(p.Header, p.Data)
	if err != nil {
		s.log.Error("kept opening undecodable", zap.String("crisis", crisisID), zap.Error(err))
		return nil, nil
	}
	return &ev, nil
}

// parkedEvent is a parked event as stored: its CloudEvent headers and data.
type parkedEvent struct {
	Header nats.Header `json:"header"`
	Data   []byte      `json:"data"`
}

func parkedPrefix(crisisID string) string { return crisisID + "." }

// park keeps an event of a crisis whose opening has not arrived yet. Should
// the opening have arrived meanwhile (another instance of the service), the
// parked events are delivered at once; per-partner message ids make any
// second delivery a no-op.
func (s *Service) park(ctx context.Context, ev eventbus.Event) error {
	msg, err := eventbus.Encode("parked", ev)
	if err != nil {
		return fmt.Errorf("park event %s: %w: %w", ev.ID, err, eventbus.ErrPermanent)
	}
	b, err := json.Marshal(parkedEvent{Header: msg.Header, Data: msg.Data})
	if err != nil {
		return fmt.Errorf("park event %s: %w: %w", ev.ID, err, eventbus.ErrPermanent)
	}
	sum := sha256.Sum256([]byte(ev.ID))
	key := fmt.Sprintf("%s%020d.%x", parkedPrefix(ev.Subject), ev.Time.UnixNano(), sum[:8])
	if _, err := s.pending.Put(ctx, key, b); err != nil {
		if errors.Is(err, jetstream.ErrInvalidKey) {
			return fmt.Errorf("event %s: crisis id %q: %w: %w", ev.ID, ev.Subject, err, eventbus.ErrPermanent)
		}
		return fmt.Errorf("park event %s: %w", ev.ID, err)
	}
	s.log.Info("event before its crisis's opening: parked until CrisisOpened arrives",
		zap.String("crisis", ev.Subject), zap.String("event", ev.ID), zap.String("type", ev.Type))
	if c, err := s.crisis(ctx, ev.Subject); err == nil {
		return s.deliverParked(ctx, c)
	}
	return nil
}

// deliverParked delivers a crisis's parked events, oldest first, and
// forgets each once delivered.
func (s *Service) deliverParked(ctx context.Context, c *demarchev1.Crisis) error {
	lister, err := s.pending.ListKeysFiltered(ctx, parkedPrefix(c.GetId())+">")
	if err != nil {
		return fmt.Errorf("list parked events of %s: %w", c.GetId(), err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e, err := s.pending.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // delivered meanwhile
		}
		if err != nil {
			return fmt.Errorf("read parked event %s: %w", k, err)
		}
		var p parkedEvent
		if err := json.Unmarshal(e.Value(), &p); err != nil {
			s.log.Error("parked event unreadable; dropped", zap.String("key", k), zap.Error(err))
			if perr := s.pending.Purge(ctx, k); perr != nil {
				s.log.Warn("unreadable parked event not purged; met again on the next pass", zap.String("key", k), zap.Error(perr))
			}
			continue
		}
		ev, err := eventbus.Decode(p.Header, p.Data)
		if err != nil {
			s.log.Error("parked event undecodable; dropped", zap.String("key", k), zap.Error(err))
			if perr := s.pending.Purge(ctx, k); perr != nil {
				s.log.Warn("undecodable parked event not purged; met again on the next pass", zap.String("key", k), zap.Error(perr))
			}
			continue
		}
		if err := s.deliver(ctx, c, ev); err != nil {
			return err
		}
		if err := s.pending.Purge(ctx, k, jetstream.LastRevision(e.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			s.log.Warn("forget parked event", zap.String("key", k), zap.Error(err))
		}
	}
	return nil
}

// deliver copies one event of a known crisis to every partner that receives it.
func (s *Service) deliver(ctx context.Context, c *demarchev1.Crisis, ev eventbus.Event) error {
	return s.deliverTo(ctx, c, ev, func(p *Partner) bool { return p.Receives(c) })
}

// PartnerCopy is the event as a partner receives it: the same CloudEvent
// (ce-id, ce-type, ce-time, ce-subject, ce-source) with the partner's copy of
// its data (partnerview.Event: an allow-list, so a field added to an event
// later stays hidden until it is allowed there), and without the workflow
// extension attributes (ce-workflowid, ce-workflowrun, ce-historyevent: where
// in Temporal it was published is internal). ok is false when the partner
// receives nothing of the event (its type carries nothing a partner may
// see, or it concerns other organisations alone). The copy is a function of
// the event and the partner alone, so a redelivered event gives the same
// copy under the same Nats-Msg-Id, and the webhook signs what the partner's
// stream holds.
func PartnerCopy(ev eventbus.Event, partner string) (eventbus.Event, bool) {
	data := partnerview.Event(ev.Data, partner)
	if data == nil {
		return eventbus.Event{}, false
	}
	ev.Data, ev.Origin = data, eventbus.Origin{}
	return ev, true
}

// deliverTo copies one event of a known crisis to every partner to names,
// each its own copy (PartnerCopy).
func (s *Service) deliverTo(ctx context.Context, c *demarchev1.Crisis, ev eventbus.Event, to func(*Partner) bool) error {
	et, err := eventbus.TypeOf(ev.Data)
	if err != nil {
		return fmt.Errorf("event %s: %w: %w", ev.ID, err, eventbus.ErrPermanent)
	}
	route := eventbus.RouteOf(c)
	for _, p := range s.reg.Partners() {
		if !to(p) {
			continue
		}
		copied, ok := PartnerCopy(ev, p.Name)
		if !ok {
			continue // nothing of it is this partner's to know
		}
		msg, err := eventbus.Encode(PartnerSubject(p.Name, route, et.Token), copied)
		if err != nil {
			return fmt.Errorf("event %s for %s: %w: %w", ev.ID, p.Name, err, eventbus.ErrPermanent)
		}
		id := p.Name + "-" + ev.ID
		msg.Header.Set(nats.MsgIdHdr, id)
		if _, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(PartnerStream(p.Name))); err != nil {
			return fmt.Errorf("deliver event %s to %s on %s: %w", ev.ID, p.Name, msg.Subject, err)
		}
	}
	return nil
}
