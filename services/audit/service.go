package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Config configures the audit service.
type Config struct {
	NATSURL string
	// SigningKey, when set, signs chain heads (see LoadSigningKey).
	SigningKey ed25519.PrivateKey
	// AnchorEvery is how often grown chains are anchored (default DefaultAnchorEvery; negative: never, tests call Anchor).
	AnchorEvery time.Duration
	// AnchorFile, when set, receives every anchor too (one JSON ChainHead a line).
	AnchorFile string
	// ConsumerWatchEvery is how often durable consumers are compared with
	// their declarations (default DefaultConsumerWatchEvery; negative: never).
	ConsumerWatchEvery time.Duration
}

// DefaultAnchorEvery is how often chain heads are anchored by default.
const DefaultAnchorEvery = 30 * time.Second

// DefaultAnchorGrace is how late `audit verify` lets an anchor be beyond the
// interval (a slow round, a restart) before records not covered fail.
const DefaultAnchorGrace = 30 * time.Second

// Service is the running audit service: the consumer and the micro service.
type Service struct {
	nc       *nats.Conn
	svc      *natsrpc.Server
	consumer *eventbus.Consumer
	Store    *Store
	stops    []func()
}

// Start connects, opens the audit stream, serves demarche.audit.{chain,heads}
// and consumes every crisis event (durable "audit": after a stop it resumes
// where it stopped).
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*Service, error) {
	log = log.Named("audit")
	nc, js, err := natsx.Connect(cfg.NATSURL, "demarche-audit", log)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	s := &Service{nc: nc}
	fail := func(err error) (*Service, error) {
		s.Stop()
		return nil, err
	}
	if err := eventbus.EnsureStreams(ctx, js, eventbus.StreamOptions{}); err != nil {
		return fail(fmt.Errorf("audit: %w", err))
	}
	if s.Store, err = OpenStore(ctx, js, cfg.SigningKey); err != nil {
		return fail(err)
	}
	s.Store.alarms.nc, s.Store.alarms.log = nc, log
	s.Store.anchors.file = cfg.AnchorFile
	stopWatch, err := s.Store.watch(ctx)
	if err != nil {
		return fail(err)
	}
	s.stops = append(s.stops, stopWatch)
	// Alarms other services report (a broken ledger) are recorded here too.
	rctx, cancelReported := context.WithCancel(context.WithoutCancel(ctx))
	sub, err := nc.Subscribe(SubjectAlarm, func(m *nats.Msg) { s.Store.reported(rctx, m.Data) })
	if err != nil {
		cancelReported()
		return fail(fmt.Errorf("audit: reported alarms: %w", err))
	}
	s.stops = append(s.stops, func() { _ = sub.Unsubscribe(); cancelReported() }) // stopping: the subscription ends with the connection anyway
	if s.svc, err = natsrpc.Serve(nc, natsrpc.ServiceConfig{
		Name: ServiceName, Version: "1.0.0", Group: Group, Log: log,
		Description: "Audit trail: hash-chained records of every crisis event, per crisis and global; reads are audited",
	},
		natsrpc.Typed("chain", "AuditChainRequest → AuditChain: a crisis's or the global chain (an audited read)",
			func() *demarchev1.AuditChainRequest { return &demarchev1.AuditChainRequest{} }, s.Store.ReadChain),
		natsrpc.Typed("heads", "AuditHeadsRequest → AuditHeads: the chains' heads (an audited read)",
			func() *demarchev1.AuditHeadsRequest { return &demarchev1.AuditHeadsRequest{} }, s.Store.ReadHeads),
		natsrpc.Typed("read", "AuditReadRequest → AuditReadResponse: records a read of crisis data",
			func() *demarchev1.AuditReadRequest { return &demarchev1.AuditReadRequest{} }, s.Store.RecordRead),
		natsrpc.Typed("operation", "AuditOperationRequest → AuditOperationResponse: records an operation done to a crisis's workflow outside Démarche",
			func() *demarchev1.AuditOperationRequest { return &demarchev1.AuditOperationRequest{} }, s.Store.AppendOperation),
		natsrpc.Typed("fund-opened", "LedgerEntry → AuditOperationResponse: records a fund's opening on the global chain",
			func() *demarchev1.LedgerEntry { return &demarchev1.LedgerEntry{} }, s.Store.RecordFundOpening),
		natsrpc.Typed("rules-changed", "RulesChanged → AuditOperationResponse: records early-warning rules put into force on the global chain",
			func() *demarchev1.RulesChanged { return &demarchev1.RulesChanged{} }, s.Store.RecordRulesChange),
		natsrpc.Typed("fund-contribution", "LedgerEntry → AuditOperationResponse: records a voluntary contribution credited to a fund on the global chain",
			func() *demarchev1.LedgerEntry { return &demarchev1.LedgerEntry{} }, s.Store.RecordFundContribution),
		natsrpc.Typed("warning-dialogue", "WarningDialogue → AuditOperationResponse: records an early-warning dialogue with a regional organisation on the global chain",
			func() *demarchev1.WarningDialogue { return &demarchev1.WarningDialogue{} }, s.Store.RecordWarningDialogue),
	); err != nil {
		return fail(fmt.Errorf("audit: %w", err))
	}
	// An event the store cannot take now is retried, not dead-lettered soon:
	// a hole in the chain is worse than a late record.
	s.consumer, err = eventbus.Consume(ctx, js, eventbus.ConsumerConfig{
		Durable: Durable, MaxDeliver: 1000,
		Backoff: []time.Duration{200 * time.Millisecond, time.Second, 5 * time.Second, 30 * time.Second},
	}, func(ctx context.Context, ev eventbus.Event) error {
		return s.Store.AppendEvent(ctx, ev)
	}, log)
	if err != nil {
		return fail(fmt.Errorf("audit: %w", err))
	}
	if cfg.ConsumerWatchEvery == 0 {
		cfg.ConsumerWatchEvery = DefaultConsumerWatchEvery
	}
	if cfg.ConsumerWatchEvery > 0 {
		s.stops = append(s.stops, s.Store.watchConsumers(ctx, cfg.ConsumerWatchEvery, log))
	}
	if cfg.AnchorEvery == 0 {
		cfg.AnchorEvery = DefaultAnchorEvery
	}
	if cfg.AnchorEvery > 0 {
		actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(cfg.AnchorEvery)
			defer t.Stop()
			// A round at once: records chained before a restart (or a long
			// outage) are anchored now, not an interval later.
			for {
				if _, err := s.Store.Anchor(actx); err != nil && actx.Err() == nil {
					log.Warn("anchoring chain heads failed; will retry", zap.Error(err))
				}
				select {
				case <-actx.Done():
					return
				case <-t.C:
				}
			}
		}()
		s.stops = append(s.stops, func() { cancel(); <-done })
	}
	signed := "unsigned heads"
	if cfg.SigningKey == nil {
		log.Warn("no audit signing key (--signing-key, " + EnvSigningKey + "): heads, records and anchors are unsigned, a well-linked forgery verifies, and `audit verify` fails once records are older than the anchoring interval")
	}
	if cfg.SigningKey != nil {
		signed = "heads signed by key " + KeyID(cfg.SigningKey.Public().(ed25519.PublicKey))
	}
	log.Info("audit service ready", zap.String("stream", StreamName), zap.String("subjects", Group+".{chain,heads,read,operation,fund-opened,rules-changed}"), zap.String("signing", signed),
		zap.String("anchors", AnchorStream), zap.Duration("anchor_every", cfg.AnchorEvery))
	return s, nil
}

// Stop stops consuming and serving, and disconnects.
func (s *Service) Stop() {
	if s.consumer != nil {
		s.consumer.Stop()
	}
	for _, stop := range s.stops {
		stop()
	}
	if s.svc != nil {
		s.svc.Stop()
	}
	natsx.DrainClose(s.nc, 10*time.Second) // answer what was taken
}

// Caller sends one request to a service and decodes its answer: over NATS
// (natsrpc.Call on a connection) or through the gateway (the CLI).
type Caller func(ctx context.Context, subject string, req, resp proto.Message) error

// Over is the Caller of a NATS connection.
func Over(nc *nats.Conn) Caller {
	return func(ctx context.Context, subject string, req, resp proto.Message) error {
		return natsrpc.Call(ctx, nc, subject, req, resp)
	}
}

// FetchChain reads a whole chain (a crisis's, or the global one for "")
// through the audit service, page by page, as reader. Each page is an
// audited read.
func FetchChain(ctx context.Context, nc *nats.Conn, crisisID, reader string) (*demarchev1.AuditChain, error) {
	return FetchChainVia(ctx, Over(nc), crisisID, reader)
}

// FetchChainVia is FetchChain through any Caller.
func FetchChainVia(ctx context.Context, call Caller, crisisID, reader string) (*demarchev1.AuditChain, error) {
	out := &demarchev1.AuditChain{Chain: ChainOf(crisisID)}
	for {
		var page demarchev1.AuditChain
		req := &demarchev1.AuditChainRequest{CrisisId: crisisID, Reader: reader, AfterSequence: uint64(len(out.Records))}
		if err := call(ctx, SubjectChain, req, &page); err != nil {
			return nil, err
		}
		out.Records = append(out.Records, page.GetRecords()...)
		out.Head = page.GetHead()
		if a := page.GetAnchor(); a != nil && a.GetSequence() >= out.GetAnchor().GetSequence() {
			out.Anchor = a // the chain is checked against it: dropping it would say "never anchored"
		}
		if len(page.GetRecords()) == 0 || uint64(len(out.Records)) >= page.GetHead().GetSequence() {
			return out, nil
		}
	}
}

// FetchHeads reads chain heads through the audit service, as reader.
func FetchHeads(ctx context.Context, nc *nats.Conn, crisisID, reader string) ([]*demarchev1.ChainHead, error) {
	var resp demarchev1.AuditHeads
	if err := natsrpc.Call(ctx, nc, SubjectHeads, &demarchev1.AuditHeadsRequest{CrisisId: crisisID, Reader: reader}, &resp); err != nil {
		return nil, err
	}
	return resp.GetHeads(), nil
}

// RecordOperation asks the audit service to record an operation done to a
// crisis's workflow outside Démarche (terminate, cancel, reset), as found in
// its history: a record of kind OPERATION (event type OperationEventType) on
// the crisis's chain and the global chain, carrying the workflow run and the
// history event. Idempotent per req.EventId. Over NATS only the worker's
// identity may send it (pkg/natsauth).
func RecordOperation(ctx context.Context, call Caller, req *demarchev1.AuditOperationRequest) (*demarchev1.AuditRecord, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	var resp demarchev1.AuditOperationResponse
	if err := call(ctx, SubjectOperation, req, &resp); err != nil {
		return nil, err
	}
	return resp.GetRecord(), nil
}
