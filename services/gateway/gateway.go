// Package gateway is Démarche's one door for people and partner systems: the
// HTTP API that authenticates every request (a bearer token verified by
// pkg/authn), authorises it from the one policy table (pkg/authz), hides what
// the caller is not cleared for, and then opens and reads crises and records
// decisions and controls through Temporal, and takes early-warning signals to
// the earlywarning service over NATS. Its only state of its own is who
// claimed a pending decision (advisory, lapsing: the DEMARCHE_CLAIMS bucket,
// crisisclaims.go); it also sends the role webhooks (rolewebhooks.go).
//
//	POST /v1/signals                    demarche.v1.IngestRequest  -> IngestResponse
//	GET  /v1/situations/{country}/{type} score and its explanation (ScoreResponse)
//	POST /v1/crises                     demarche.v1.OpenCrisisRequest -> CrisisState (the id is minted here;
//	                                    a drill may be named: crisis.id NAME gives DRILL-<opener's tag>-NAME)
//	GET  /v1/crises?stage=&country=&type=&open=true   list
//	GET  /v1/crises/{id}                demarche.v1.CrisisState
//	POST /v1/crises/{id}/decisions      demarche.v1.DecisionRequest -> DecisionRecord
//	POST /v1/crises/{id}/controls/{control}  operator controls -> CrisisState after it:
//	                                    escalate, de-escalate (SeverityControl), skip-stage, reopen-stage
//	                                    (StageControl), partner-role (PartnerRoleAck), warn (Warning)
//	                                    (Idempotency-Key header; default a new UUID v7; answered in X-Request-Id;
//	                                    a funding_request without request_id gets a UUID v7)
//	GET|POST|DELETE /v1/crises/{id}/claims[/{kind}]  who is on a pending decision (advisory; crisisclaims.go)
//	POST /v1/codec/{namespace}/decode|encode  Temporal's remote codec protocol, for the Temporal UI (auditors)
//	GET  /healthz
//
// Bodies are protobuf messages in their JSON form. Errors are JSON
// {"error": "...", "fields": [{"field": "...", "reason": "..."}]} with 400 for
// bad input (each failing field named), 404, 409, 422 for a rule the crisis or
// a service refused, 503 when a backend is not answering.
//
// The gateway answers only to its configured host names (hosts.go: 421
// otherwise, before any route), and answers that name crises are cut to the
// reader's clearance with their reads recorded (sideroutes.go); a partner
// liaison reads only the partner's view of a crisis shared with it
// (app.PartnerView: no internal rationale, amounts or roster ids).
//
// Every /v1 route needs "Authorization: Bearer TOKEN"; the acting principal
// and its roles come from the token alone (a principal named in a body must be
// empty or the token's own). Routes and the action each needs are in routes.go.
package gateway

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/pkg/ports"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
	"github.com/demarche/demarche/services/gateway/claims"
)

// Config says where the gateway listens and what it talks to.
type Config struct {
	Host string
	// Port to listen on; 0 picks a free one. PortFlag names its flag for errors.
	Port     int
	PortFlag string
	NATSURL  string
	// TemporalAddress and Namespace locate the crises.
	TemporalAddress string
	Namespace       string
	// Verifier checks bearer tokens (required).
	Verifier *authn.Verifier
	// DevAuthDir is the dev issuer's token folder (`demarche dev`): the
	// console's sign-in page then lists the demo identities. Empty otherwise.
	DevAuthDir string
	// ConsoleOIDC, when set, lets people sign in to the console with the
	// organisation's issuer (authorization code + PKCE, console_oidc.go).
	ConsoleOIDC *ConsoleOIDC
	// Codec is the payload codec keyring the codec endpoint serves (nil:
	// the one Temporal clients of this process use for TemporalAddress).
	Codec *payloadcodec.Keyring
	// CodecOrigins are the browser origins allowed to call the codec
	// endpoint with the console's session (the Temporal UI's, e.g.
	// http://127.0.0.1:8233).
	CodecOrigins []string
	// PublicURL is the address people use (scheme and host, e.g.
	// https://ops.example.org): the gateway answers to its host and to the
	// loopback names on its own port only, and takes browser forms from
	// those origins only (hosts.go). Empty: loopback only.
	PublicURL string
	// TemporalUIURL is the Temporal UI people open (e.g.
	// http://127.0.0.1:8233): the auditor's page links each crisis there.
	// Empty: no link.
	TemporalUIURL string
	// AuditPublicKey is the audit service's public key: the auditor's page
	// and runs verify chains against it (nil: against the key a chain
	// brings along, which proves only that the chain is whole).
	AuditPublicKey ed25519.PublicKey
	// AuditAnchorCover is how long a chain's record may wait for its anchor
	// (the audit service's --anchor-every plus a grace; 0: its defaults;
	// negative: not required).
	AuditAnchorCover time.Duration
	// ClaimTTL is how long a claim on a pending decision holds unless
	// released or renewed (0: claims.DefaultTTL).
	ClaimTTL time.Duration
	// RoleWebhooks notify each role's channel (rolewebhooks.go;
	// LoadRoleWebhooks reads them from a file). None: no role webhook.
	RoleWebhooks []RoleWebhook
}

// Service is a running gateway.
type Service struct {
	nc    *nats.Conn
	tc    client.Client
	srv   *http.Server
	addr  string
	log   *zap.Logger
	authn *authn.Verifier
	// states stands in for the crises' workflows in tests (nil: Temporal).
	states func(context.Context, string) (*demarchev1.CrisisState, error)
	// decisions stands in for the crises' decide update in tests (nil: Temporal).
	decisions func(ctx context.Context, id, key string, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error)
	// controls stands in for the crises' control updates in tests (nil: Temporal).
	controls func(ctx context.Context, id, key, update string, arg proto.Message) (*demarchev1.CrisisState, error)
	// app is the application layer the API's handlers and the console
	// both call (made by Handler, with the stand-ins above).
	app *app.App
	// devAuthDir: see Config.DevAuthDir.
	devAuthDir string
	// oidc signs people in to the console with the issuer (nil: not offered).
	oidc *oidcLogin
	// codec, namespace and codecOrigins serve the codec endpoint (codec.go).
	codec        *payloadcodec.Keyring
	namespace    string
	codecOrigins []string
	// hosts are the host names and origins the gateway answers to (nil: no
	// check, for a handler embedded in a server that checks them).
	hosts *hostPolicy
	// temporalUI: see Config.TemporalUIURL; auditKey: Config.AuditPublicKey.
	temporalUI  string
	auditKey    ed25519.PublicKey
	anchorCover time.Duration
	// claims are the pending decisions' claims (crisisclaims.go), bound on
	// first use; claimTTL: Config.ClaimTTL.
	claimsMu sync.Mutex
	claims   *claims.Store
	claimTTL time.Duration
	// notifier sends the role webhooks (nil: none configured).
	notifier *roleNotifier
}

// Start connects to NATS and Temporal and serves the API.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*Service, error) {
	log = log.Named("gateway")
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Verifier == nil {
		return nil, errors.New("gateway: a token verifier is required (OIDC issuer, or the dev issuer)")
	}
	port, err := ports.CheckOrPick(cfg.Host, cfg.Port, cfg.PortFlag)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	nc, _, err := natsx.Connect(cfg.NATSURL, "demarche-gateway", log)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	tc, err := temporalx.Dial(ctx, cfg.TemporalAddress, cfg.Namespace, log, temporalx.As(temporalx.IdentityGateway))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s := &Service{nc: nc, tc: tc, log: log, authn: cfg.Verifier, devAuthDir: cfg.DevAuthDir,
		codec: cfg.Codec, namespace: cfg.Namespace, codecOrigins: cfg.CodecOrigins,
		temporalUI: strings.TrimRight(cfg.TemporalUIURL, "/"), auditKey: cfg.AuditPublicKey, anchorCover: cfg.AuditAnchorCover, claimTTL: cfg.ClaimTTL}
	if s.codec == nil {
		s.codec = temporalx.CodecFor(cfg.TemporalAddress)
	}
	if cfg.ConsoleOIDC != nil {
		if s.oidc, err = newOIDCLogin(ctx, *cfg.ConsoleOIDC); err != nil {
			tc.Close()
			nc.Close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
	if err != nil {
		tc.Close()
		nc.Close()
		return nil, fmt.Errorf("gateway: listen: %w", err)
	}
	s.addr = "http://" + l.Addr().String()
	if s.hosts, err = newHostPolicy(cfg.PublicURL, cfg.Host, l.Addr().(*net.TCPAddr).Port); err != nil {
		_ = l.Close() // already failing: the host policy error is reported, the listener served nothing
		tc.Close()
		nc.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if err := s.startRoleWebhooks(cfg.RoleWebhooks); err != nil {
		_ = l.Close() // already failing: the webhooks' error is reported, the listener served nothing
		tc.Close()
		nc.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("gateway stopped serving", zap.Error(err))
		}
	}()
	log.Info("gateway ready", zap.String("url", s.addr))
	return s, nil
}

// URL is where the API answers.
func (s *Service) URL() string { return s.addr }

// Stop stops serving (finishing requests in hand) and disconnects.
func (s *Service) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.log.Warn("stopped with requests still in hand", zap.Error(err))
	}
	if s.notifier != nil {
		s.notifier.close()
	}
	s.tc.Close()
	s.nc.Close()
}
