package natsrpc

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
)

// ServiceConfig is what a request service (a NATS micro service) says about
// itself; Serve starts every one of them the same way.
type ServiceConfig struct {
	// Name, Version and Description are what `nats micro ls|info` shows.
	Name, Version, Description string
	// Group is the endpoints' subject prefix (demarche.roster: its "search"
	// endpoint answers demarche.roster.search).
	Group string
	// Log logs the requests that fail with an internal error and the answers
	// that could not be sent. Required.
	Log *zap.Logger
	// Timeout bounds one request's work (DefaultHandlerTimeout when 0).
	Timeout time.Duration
	// Instances is how many instances of the service answer, in one queue
	// group (the way micro services scale); 1 when 0.
	Instances int
}

// Endpoint is one endpoint of a request service: Typed for a protobuf
// request and answer, Raw for a handler that writes its own answer.
type Endpoint struct {
	Name string
	// Meta is the endpoint's metadata in `nats micro info`.
	Meta  map[string]string
	build func(opts []HandlerOption, g *Guard) micro.Handler
}

// Typed is an endpoint answered by fn through Handler: the request decoded
// (protobuf JSON, or binary protobuf by Content-Type) and validated, fn's
// error answered with its errs code. Its metadata names the request and
// answer messages, and doc says what it does.
func Typed[Req, Resp proto.Message](name, doc string, newReq func() Req, fn func(context.Context, Req) (Resp, error)) Endpoint {
	var resp Resp
	meta := map[string]string{
		"request":  string(newReq().ProtoReflect().Descriptor().FullName()),
		"response": string(resp.ProtoReflect().Descriptor().FullName()),
		"format":   "application/json (protojson); binary protobuf with Content-Type: " + ContentTypeProtobuf,
	}
	if doc != "" {
		meta["description"] = doc
	}
	return Endpoint{Name: name, Meta: meta, build: func(opts []HandlerOption, _ *Guard) micro.Handler {
		return Handler(newReq, fn, opts...)
	}}
}

// Raw is an endpoint answered by h as it is (an answer that is not a
// protobuf message): it is counted on /metrics and refused (503) while the
// service stops, like every endpoint; h bounds its own work.
func Raw(name, doc string, h micro.Handler) Endpoint {
	return Endpoint{Name: name, Meta: map[string]string{"description": doc}, build: func(_ []HandlerOption, g *Guard) micro.Handler {
		return Observed(micro.HandlerFunc(func(r micro.Request) {
			if !g.enter() {
				err := &errs.Error{Sentinel: errs.ErrUnavailable, Msg: stoppingMsg}
				_ = r.Error(errs.Code(err), err.Error(), nil) // no logger here: a lost answer ends in the requester's timeout
				return
			}
			defer g.inflight.Done()
			h.Handle(r)
		}))
	}}
}

// Server is a running request service.
type Server struct {
	log      *zap.Logger
	guard    Guard
	services []micro.Service
}

// Serve starts a request service with the options every service has: one
// guard (a stopping service refuses new requests with 503 and finishes those
// in hand), the request timeout, logging of internal errors, and the
// demarche_rpc_* metrics of each endpoint, served at 0 from the start. It
// returns once the NATS server has the endpoints' subscriptions (Ready).
func Serve(nc *nats.Conn, cfg ServiceConfig, endpoints ...Endpoint) (*Server, error) {
	if cfg.Log == nil {
		return nil, fmt.Errorf("micro service %s: a logger is required", cfg.Name)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHandlerTimeout
	}
	s := &Server{log: cfg.Log}
	opts := []HandlerOption{WithGuard(&s.guard), WithTimeout(cfg.Timeout), WithLog(cfg.Log), func(c *handlerConfig) { c.service = cfg.Name }}
	for range max(cfg.Instances, 1) {
		svc, err := micro.AddService(nc, micro.Config{Name: cfg.Name, Version: cfg.Version, Description: cfg.Description})
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("add micro service %s: %w", cfg.Name, err)
		}
		s.services = append(s.services, svc)
		g := svc.AddGroup(cfg.Group)
		for _, ep := range endpoints {
			if err := g.AddEndpoint(ep.Name, ep.build(opts, &s.guard), micro.WithEndpointMetadata(ep.Meta)); err != nil {
				s.Stop()
				return nil, fmt.Errorf("micro service %s: add endpoint %s: %w", cfg.Name, ep.Name, err)
			}
		}
	}
	if err := Ready(nc, s.services...); err != nil {
		s.Stop()
		return nil, fmt.Errorf("micro service %s: %w", cfg.Name, err)
	}
	return s, nil
}

// Stop refuses new requests (503), waits for those in hand, and removes the
// service's instances from NATS. The connection stays the caller's.
func (s *Server) Stop() {
	s.guard.Stop()
	for _, svc := range s.services {
		if err := svc.Stop(); err != nil {
			s.log.Warn("stop micro service", zap.String("service", svc.Info().Name), zap.Error(err))
		}
	}
	s.services = nil
}

// stoppingMsg is the 503 of a request that arrives while its service stops.
const stoppingMsg = "service is stopping; retry"
