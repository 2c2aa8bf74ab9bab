// Package natsrpc is how Démarche services answer requests over NATS and how
// callers ask them: NATS micro services (so `nats micro ls|info|stats` finds
// them) with protobuf messages in their JSON form (so `nats req` works by hand)
// or, when the request says Content-Type: application/protobuf, in binary.
// Errors are the pkg/errs vocabulary: a handler wraps an errs sentinel and the
// answer's code is errs.Code; Call turns the code back into the sentinel.
package natsrpc

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/tracing"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Request subjects of the domain services.
const (
	RosterService     = "roster"
	RosterGroup       = "demarche.roster"
	RosterSearch      = RosterGroup + ".search"
	RosterReserve     = RosterGroup + ".reserve"
	RosterRelease     = RosterGroup + ".release"
	RosterAssignments = RosterGroup + ".assignments"
	RosterExperts     = RosterGroup + ".experts"

	FundingService  = "funding"
	FundingGroup    = "demarche.funding"
	FundingRequest  = FundingGroup + ".request"
	FundingDecide   = FundingGroup + ".decide"
	FundingDisburse = FundingGroup + ".disburse"
	FundingBalance  = FundingGroup + ".balance"
	FundingLedger   = FundingGroup + ".ledger"
	// FundingContribute credits a voluntary contribution to a fund
	// (ContributeCall -> ContributeResult; the gateway alone asks, for a
	// funding officer or fund manager).
	FundingContribute = FundingGroup + ".contribute"

	EarlyWarningService = "earlywarning"
	EarlyWarningGroup   = "demarche.earlywarning"
	EarlyWarningIngest  = EarlyWarningGroup + ".ingest"
	EarlyWarningScore   = EarlyWarningGroup + ".score"
	// EarlyWarningSituations lists situations at a glance (the gateway's console inbox).
	EarlyWarningSituations = EarlyWarningGroup + ".situations"
	// EarlyWarningSignals queries the signal store (the gateway's GET /v1/signals).
	EarlyWarningSignals = EarlyWarningGroup + ".signals"
	// EarlyWarningRules puts a rules file into force without a restart (the
	// gateway alone may ask, for the head of department it authenticated).
	EarlyWarningRules = EarlyWarningGroup + ".rules"
	// EarlyWarningActiveRules answers the rules in force (the gateway, for
	// readers of scores).
	EarlyWarningActiveRules = EarlyWarningGroup + ".active-rules"
	// EarlyWarningScorecard answers the scorecard of the rules in force
	// (JSON; the gateway, for the console's scorecard page).
	EarlyWarningScorecard = EarlyWarningGroup + ".scorecard"
	// EarlyWarningDialogue records an early-warning dialogue with a regional
	// organisation about a situation (RecordDialogueRequest ->
	// RecordDialogueResponse; the gateway alone asks, for an analyst or a head
	// of department, stamping who from the credential).
	EarlyWarningDialogue = EarlyWarningGroup + ".dialogue"

	PartnersGroup   = "demarche.partners"
	PartnersList    = PartnersGroup + ".list"     // ListPartnersRequest -> ListPartnersResponse
	PartnersAckRole = PartnersGroup + ".ack-role" // AckRoleRequest -> AckRoleResponse

	SchemaGroup    = "demarche.schema"
	SchemaGet      = SchemaGroup + ".get"      // GetSchemaRequest -> the schema in the format asked (FileDescriptorSet or JSON Schema)
	SchemaAsyncAPI = SchemaGroup + ".asyncapi" // anything -> the AsyncAPI document (JSON)

	// A schema answer's headers, beside its Content-Type (which says its
	// format): the message the request's name resolved to, and its ce-type
	// when it is published as an event. The gateway passes them on.
	SchemaHeaderMessage = "Demarche-Schema-Message"
	SchemaHeaderCEType  = "Demarche-Schema-Ce-Type"

	AuditGroup = "demarche.audit"
	AuditRead  = AuditGroup + ".read"  // AuditReadRequest -> AuditReadResponse
	AuditChain = AuditGroup + ".chain" // AuditChainRequest -> AuditChain (an audited read)
	AuditHeads = AuditGroup + ".heads" // AuditHeadsRequest -> AuditHeads (an audited read)
	// AuditOperation records an operation done to a crisis's workflow outside
	// Démarche (terminate, cancel, reset): AuditOperationRequest -> AuditOperationResponse.
	AuditOperation = AuditGroup + ".operation"
	// AuditFundOpened records a fund's opening (an explicit act of
	// provisioning, demarche admin open-fund) on the global chain:
	// LedgerEntry (the opening line) -> AuditOperationResponse.
	AuditFundOpened = AuditGroup + ".fund-opened"
	// AuditRulesChanged records early-warning rules put into force on the
	// global chain (early warning's credential alone may ask).
	AuditRulesChanged = AuditGroup + ".rules-changed"
	// AuditWarningDialogue records an early-warning dialogue with a regional
	// organisation on the global chain (early warning's credential alone may
	// ask): WarningDialogue -> AuditOperationResponse.
	AuditWarningDialogue = AuditGroup + ".warning-dialogue"
	// AuditFundContribution records a voluntary contribution credited to a
	// fund on the global chain (the funding service alone asks):
	// LedgerEntry (the contribution line) -> AuditOperationResponse.
	AuditFundContribution = AuditGroup + ".fund-contribution"
)

// ContentTypeProtobuf in a request's Content-Type header selects the binary
// protobuf encoding of the request and of its answer; without it both are
// protobuf JSON, so `nats req` works by hand.
const ContentTypeProtobuf = "application/protobuf"

// Guard refuses a service's requests once it is stopping (503, errs.ErrUnavailable)
// and lets Stop wait for the requests in hand. The zero value is ready to use.
type Guard struct {
	mu       sync.Mutex
	stopping bool
	inflight sync.WaitGroup
}

// enter admits one request, or refuses it when stopping.
func (g *Guard) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return false
	}
	g.inflight.Add(1)
	return true
}

// Stop refuses every request from now on and waits for those in hand.
func (g *Guard) Stop() {
	g.mu.Lock()
	g.stopping = true
	g.mu.Unlock()
	g.inflight.Wait()
}

// DefaultHandlerTimeout bounds one request's work unless WithTimeout says otherwise.
const DefaultHandlerTimeout = 30 * time.Second

// HandlerOption tunes a Handler.
type HandlerOption func(*handlerConfig)

type handlerConfig struct {
	timeout time.Duration
	guard   *Guard
	log     *zap.Logger
	// service names the tracer of the handler's spans (tracing.Tracer).
	service string
}

// WithTimeout bounds each request's work (default DefaultHandlerTimeout).
func WithTimeout(d time.Duration) HandlerOption {
	return func(c *handlerConfig) { c.timeout = d }
}

// WithGuard answers 503 once g is stopping and counts requests in hand on g.
func WithGuard(g *Guard) HandlerOption {
	return func(c *handlerConfig) { c.guard = g }
}

// WithLog logs the requests that fail with an internal error.
func WithLog(log *zap.Logger) HandlerOption {
	return func(c *handlerConfig) { c.log = log }
}

// Handler adapts a typed function to a micro endpoint: it decodes and
// validates the request (binary protobuf when its Content-Type is
// ContentTypeProtobuf, protobuf JSON otherwise), and encodes the response in
// the request's encoding, or the error with its code (errs.Code).
func Handler[Req, Resp proto.Message](newReq func() Req, fn func(context.Context, Req) (Resp, error), opts ...HandlerOption) micro.Handler {
	cfg := handlerConfig{timeout: DefaultHandlerTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	fail := func(r micro.Request, err error) {
		code := errs.Code(err)
		if cfg.log != nil && code == errs.Code(errs.ErrInternal) {
			cfg.log.Warn("request failed", zap.String("subject", r.Subject()), zap.Error(err))
		}
		if rerr := r.Error(code, err.Error(), nil); rerr != nil && cfg.log != nil {
			cfg.log.Warn("error answer not sent", zap.String("subject", r.Subject()), zap.Error(rerr))
		}
	}
	return Observed(micro.HandlerFunc(func(r micro.Request) {
		if cfg.guard != nil {
			if !cfg.guard.enter() {
				fail(r, &errs.Error{Sentinel: errs.ErrUnavailable, Msg: stoppingMsg})
				return
			}
			defer cfg.guard.inflight.Done()
		}
		binary := r.Headers().Get("Content-Type") == ContentTypeProtobuf
		req := newReq()
		if len(r.Data()) > 0 {
			var err error
			if binary {
				err = proto.Unmarshal(r.Data(), req)
			} else {
				err = protojson.Unmarshal(r.Data(), req)
			}
			if err != nil {
				fail(r, &errs.Error{Sentinel: errs.ErrInvalid, Msg: fmt.Sprintf("undecodable request: %v", err)})
				return
			}
		}
		if v, ok := any(req).(demarchev1.Validator); ok {
			if err := v.Validate(); err != nil {
				fail(r, err)
				return
			}
		}
		// The answer is a span of the caller's trace (its traceparent header).
		ctx, span := tracing.Tracer(cfg.service).Start(tracing.Extract(context.Background(), nats.Header(r.Headers())), r.Subject(),
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("rpc.service", cfg.service)))
		defer span.End()
		ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
		resp, err := fn(ctx, req)
		if err != nil {
			if code := errs.Code(err); code >= "500" {
				span.SetStatus(codes.Error, code) // a refused request (4xx) is the caller's error, not the service's
			}
			fail(r, err)
			return
		}
		b, err := marshal(binary, resp)
		if err != nil {
			fail(r, fmt.Errorf("%w: encode response: %v", errs.ErrInternal, err))
			return
		}
		var ropts []micro.RespondOpt
		if binary {
			ropts = append(ropts, micro.WithHeaders(micro.Headers{"Content-Type": {ContentTypeProtobuf}}))
		}
		if err := r.Respond(b, ropts...); err != nil && cfg.log != nil {
			cfg.log.Warn("respond", zap.String("subject", r.Subject()), zap.Error(err))
		}
	}))
}

// Observed counts a micro handler's requests, errors and time on the
// process's /metrics (demarche_rpc_*), per endpoint subject: Handler wraps
// every typed endpoint in it; wrap a raw micro.Handler yourself. The subject
// is a bounded label: micro endpoints here have fixed subjects, no wildcards.
func Observed(h micro.Handler) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		start := time.Now()
		or := &observedRequest{Request: r, code: "200"}
		h.Handle(or)
		subject := r.Subject()
		metrics.RPCRequests.WithLabelValues(subject, or.code).Inc()
		if or.code != "200" {
			metrics.RPCErrors.WithLabelValues(subject).Inc()
		}
		metrics.RPCDuration.WithLabelValues(subject).Observe(time.Since(start).Seconds())
	})
}

// observedRequest remembers the code a handler answered with.
type observedRequest struct {
	micro.Request
	code string
}

func (r *observedRequest) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	r.code = code
	return r.Request.Error(code, description, data, opts...)
}

func marshal(binary bool, m proto.Message) ([]byte, error) {
	if binary {
		return proto.Marshal(m)
	}
	return protojson.Marshal(m)
}

func unmarshal(binary bool, b []byte, m proto.Message) error {
	if binary {
		return proto.Unmarshal(b, m)
	}
	return protojson.Unmarshal(b, m)
}

// DefaultCallTimeout bounds a Call whose context has no deadline, unless
// Timeout says otherwise.
const DefaultCallTimeout = 10 * time.Second

// CallOption tunes a Call.
type CallOption func(*callConfig)

type callConfig struct {
	timeout time.Duration
	binary  bool
}

// Timeout bounds the call (instead of DefaultCallTimeout); a shorter deadline
// of the context still wins.
func Timeout(d time.Duration) CallOption {
	return func(c *callConfig) { c.timeout = d }
}

// Protobuf sends the request and takes the answer in binary protobuf.
func Protobuf() CallOption {
	return func(c *callConfig) { c.binary = true }
}

// Call sends a request and decodes the response. Its errors are errs.FromRPC's:
// a service's error reply comes back as *errs.RPCError, matching the errs
// sentinel of its code (and the service's own errs.Sentinel); when no service
// answers in time the error matches errs.ErrUnavailable.
func Call(ctx context.Context, nc *nats.Conn, subject string, req, resp proto.Message, opts ...CallOption) error {
	reply, err := Request(ctx, nc, subject, req, opts...)
	if err != nil {
		return err
	}
	if err := unmarshal(reply.Header.Get("Content-Type") == ContentTypeProtobuf, reply.Data, resp); err != nil {
		return fmt.Errorf("%s: decode response: %w", subject, err)
	}
	return nil
}

// Request is Call for an answer that is not a protobuf message to decode (the
// schema service's, whose Content-Type says its encoding): it returns the
// reply as it came, or the same errors as Call.
func Request(ctx context.Context, nc *nats.Conn, subject string, req proto.Message, opts ...CallOption) (*nats.Msg, error) {
	var cfg callConfig
	for _, o := range opts {
		o(&cfg)
	}
	b, err := marshal(cfg.binary, req)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", subject, err)
	}
	if _, ok := ctx.Deadline(); !ok && cfg.timeout <= 0 {
		cfg.timeout = DefaultCallTimeout
	}
	if cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
	}
	msg := nats.NewMsg(subject)
	msg.Data = b
	if cfg.binary {
		msg.Header.Set("Content-Type", ContentTypeProtobuf)
	}
	tracing.Inject(ctx, msg.Header) // the service's handler can join the caller's trace
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if err := errs.FromRPC(subject, reply, err); err != nil {
		return nil, err
	}
	return reply, nil
}

// Ready waits until the server has the service's subscriptions, so a request
// sent on another connection right after start finds the endpoints instead of
// "no responders". Call it once the endpoints are added, with the services
// they were added to: their endpoints' request and error counters are
// served at 0 from then on (an alert on an error ratio needs the series
// before the first error).
func Ready(nc *nats.Conn, services ...micro.Service) error {
	for _, svc := range services {
		for _, ep := range svc.Info().Endpoints {
			metrics.Endpoint(ep.Subject)
		}
	}
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		return fmt.Errorf("register endpoints with the NATS server: %w", err)
	}
	return nil
}
