// Package natsrpc is how Démarche services answer requests over NATS and how
// callers ask them: NATS micro services (so `nats micro ls|info|stats` finds
// them) with protobuf messages in their JSON form (so `nats req` works by hand).
package natsrpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

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
)

// Sentinel errors a handler returns (wrapped) to pick the error code; callers
// match them with errors.Is on what Call returns.
var (
	ErrInvalid   = errors.New("invalid request") // 400
	ErrForbidden = errors.New("forbidden")       // 403
	ErrNotFound  = errors.New("not found")       // 404
	ErrConflict  = errors.New("conflict")        // 409
	ErrRule      = errors.New("rule violation")  // 422
	ErrInternal  = errors.New("service error")   // 500
)

var codes = map[string]error{"400": ErrInvalid, "403": ErrForbidden, "404": ErrNotFound, "409": ErrConflict, "422": ErrRule, "500": ErrInternal}

func codeOf(err error) string {
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, demarchev1.ErrInvalid):
		return "400"
	case errors.Is(err, ErrForbidden):
		return "403"
	case errors.Is(err, ErrNotFound):
		return "404"
	case errors.Is(err, ErrConflict):
		return "409"
	case errors.Is(err, ErrRule):
		return "422"
	}
	return "500"
}

// Error is a service's answer that something went wrong.
type Error struct {
	Subject     string
	Code        string
	Description string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Subject, e.Description) }

// Unwrap maps the code back to its sentinel error, and to any service-specific
// sentinel (see Sentinel) whose text starts the description.
func (e *Error) Unwrap() []error {
	out := []error{ErrInternal}
	if s, ok := codes[e.Code]; ok {
		out[0] = s
	}
	sentinelsMu.RLock()
	defer sentinelsMu.RUnlock()
	for _, s := range sentinels {
		if strings.HasPrefix(e.Description, s.Error()) {
			out = append(out, s)
		}
	}
	return out
}

var (
	sentinelsMu sync.RWMutex
	sentinels   []error
)

// Sentinel makes a service's own sentinel error: its text is msg, it matches
// code (one of this package's sentinels, which picks the answer's code), and a
// caller on the other side of NATS matches it with errors.Is when the service
// returned it first in the message: fmt.Errorf("%w: ...", ErrUnknownPartner).
func Sentinel(msg string, code error) error {
	e := &sentinel{msg: msg, code: code}
	sentinelsMu.Lock()
	defer sentinelsMu.Unlock()
	sentinels = append(sentinels, e)
	return e
}

type sentinel struct {
	msg  string
	code error
}

func (s *sentinel) Error() string { return s.msg }
func (s *sentinel) Unwrap() error { return s.code }

// Handler adapts a typed function to a micro endpoint: it decodes and
// validates the request, and encodes the response or the error with its code.
func Handler[Req, Resp proto.Message](newReq func() Req, fn func(context.Context, Req) (Resp, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		req := newReq()
		if len(r.Data()) > 0 {
			if err := protojson.Unmarshal(r.Data(), req); err != nil {
				_ = r.Error("400", fmt.Sprintf("undecodable request: %v", err), nil)
				return
			}
		}
		if v, ok := any(req).(demarchev1.Validator); ok {
			if err := v.Validate(); err != nil {
				_ = r.Error("400", err.Error(), nil)
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := fn(ctx, req)
		if err != nil {
			_ = r.Error(codeOf(err), err.Error(), nil)
			return
		}
		b, err := protojson.Marshal(resp)
		if err != nil {
			_ = r.Error("500", fmt.Sprintf("encode response: %v", err), nil)
			return
		}
		_ = r.Respond(b)
	})
}

// Call sends a request and decodes the response; a service error comes back
// as *Error, matching the sentinel of its code.
func Call(ctx context.Context, nc *nats.Conn, subject string, req, resp proto.Message) error {
	b, err := protojson.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", subject, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	msg, err := nc.RequestWithContext(ctx, subject, b)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("%s: no service is answering (is it running?): %w", subject, err)
		}
		return fmt.Errorf("%s: %w", subject, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return &Error{Subject: subject, Code: code, Description: msg.Header.Get(micro.ErrorHeader)}
	}
	if err := protojson.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("%s: decode response: %w", subject, err)
	}
	return nil
}

// Ready waits until the server has the service's subscriptions, so a request
// sent on another connection right after start finds the endpoints instead of
// "no responders". Call it once the endpoints are added.
func Ready(nc *nats.Conn) error {
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		return fmt.Errorf("register endpoints with the NATS server: %w", err)
	}
	return nil
}
