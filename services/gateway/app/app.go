// Package app is the gateway's application layer: one function per use case
// (open a crisis, read one, list and search them, lessons across closed
// crises, decide, apply a control, change who a
// crisis is shared with), between the gateway's two transports and the
// engines. The HTTP API (package gateway, routes.go) and the console
// (console*.go) both call it directly; neither calls the other.
//
// Every use case takes the authenticated principal (from the credential,
// never from a body) and a typed request, and enforces what the use case
// needs whatever the transport: the policy table (pkg/authz), the principal
// stamped into the request, the input rules, the crisis's confidentiality
// (a crisis the principal may not see is not found, and the read of a
// restricted or confidential one is recorded in its audit chain first) and
// the idempotency key Temporal names the update with. It answers a typed
// result or an error matching a pkg/errs sentinel, which each transport
// answers its own way (apierror for the API, a page naming the rule for the
// console).
package app

import (
	"context"
	"crypto/ed25519"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/presences"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// App holds the engines the use cases reach: Temporal for crises, NATS for
// the request services (partners, audit).
type App struct {
	nc  *nats.Conn
	tc  client.Client
	log *zap.Logger
	// states stands in for the crises' workflows in tests (nil: Temporal).
	states func(context.Context, string) (*demarchev1.CrisisState, error)
	// decisions stands in for the crises' decide update in tests (nil: Temporal).
	decisions func(ctx context.Context, id, key string, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error)
	// listing stands in for Temporal visibility in tests (nil: Temporal).
	listing func(ctx context.Context, f crisis.Filter, limit int) ([]crisis.Summary, error)
	// controls stands in for the crises' control updates in tests (nil: Temporal).
	controls func(ctx context.Context, id, key, update string, arg proto.Message) (*demarchev1.CrisisState, error)
	// auditKey is the audit service's public key chains are verified
	// against (nil: none configured; audit.go).
	auditKey ed25519.PublicKey
	// anchorCover: see WithAnchorCover.
	anchorCover time.Duration
	// presences is the field presences registry a crisis's lead presence is
	// checked against (the embedded one of pkg/presences).
	presences *presences.Registry
}

// Option tunes an App made by New.
type Option func(*App)

// WithCrisisStates answers crisis states from f instead of Temporal (nil:
// Temporal); tests of the transports use it.
func WithCrisisStates(f func(context.Context, string) (*demarchev1.CrisisState, error)) Option {
	return func(a *App) { a.states = f }
}

// WithDecisions stands in for the crises' decide update (nil: Temporal): f
// gets each decision as it would be sent to the crisis's workflow.
func WithDecisions(f func(ctx context.Context, id, key string, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error)) Option {
	return func(a *App) { a.decisions = f }
}

// WithControls stands in for the crises' control updates (nil: Temporal):
// f gets each control (update named as crisis.UpdatePartnerRole) as it would
// be sent to the crisis's workflow, and answers the state after it.
func WithControls(f func(ctx context.Context, id, key, update string, arg proto.Message) (*demarchev1.CrisisState, error)) Option {
	return func(a *App) { a.controls = f }
}

// WithListing answers crisis listings from f instead of Temporal
// visibility (nil: Temporal): f gets the filter as List narrowed it to the
// principal.
func WithListing(f func(ctx context.Context, f crisis.Filter, limit int) ([]crisis.Summary, error)) Option {
	return func(a *App) { a.listing = f }
}

// New is the application layer over existing connections; tc may be nil
// when a test answers crisis states itself (WithCrisisStates).
func New(nc *nats.Conn, tc client.Client, log *zap.Logger, opts ...Option) *App {
	if log == nil {
		log = zap.NewNop()
	}
	a := &App{nc: nc, tc: tc, log: log}
	for _, o := range opts {
		o(a)
	}
	r, err := presences.Load("")
	if err != nil {
		panic(err) // the embedded registry is checked by its package's tests
	}
	a.presences = r
	return a
}

// allow checks an action of the policy table, logging a refusal as the
// HTTP API's guard does.
func (a *App) allow(action authz.Action, p *authn.Principal, useCase string) error {
	if err := authz.Check(action, p); err != nil {
		a.log.Info("refused", zap.String("principal", p.Subject), zap.String("action", string(action)), zap.String("use", useCase))
		return err
	}
	return nil
}

// crisisState asks the crisis's workflow for its state (or the stand-in).
func (a *App) crisisState(ctx context.Context, id string) (*demarchev1.CrisisState, error) {
	if a.states != nil {
		return a.states(ctx, id)
	}
	return crisis.State(ctx, a.tc, id)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
