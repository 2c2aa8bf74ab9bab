package earlywarning

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// requestTimeout bounds one request's work (a batch that crosses thresholds
// waits for Temporal).
const requestTimeout = 2 * time.Minute

// startMicro registers the micro service, Config.Workers instances of it (in
// one queue group, the way micro services scale): `nats micro ls` lists them,
// `nats micro info|stats earlywarning` describe it, and
//
//	nats req demarche.earlywarning.score '{"country_code":"GN","crisis_type":"CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE"}'
//
// asks it by hand (protobuf JSON; send Content-Type: application/protobuf for binary).
func (s *Service) startMicro() error {
	for range s.cfg.Workers {
		svc, err := micro.AddService(s.nc, micro.Config{
			Name:        ServiceName,
			Version:     ServiceVersion,
			Description: "Démarche early warning: ingest signals, score situations (country + crisis type), raise warnings",
		})
		if err != nil {
			return fmt.Errorf("add micro service %s: %w", ServiceName, err)
		}
		s.micros = append(s.micros, svc)
		g := svc.AddGroup(Group)
		endpoints := []struct {
			name, doc string
			handle    func(context.Context, micro.Request) (proto.Message, error)
		}{
			{"ingest", "IngestRequest → IngestResponse: each signal accepted, duplicate or rejected with its reason", s.serveIngest},
			{"score", "ScoreRequest → ScoreResponse: a situation's score, threshold and contributing signals", s.serveScore},
		}
		for _, e := range endpoints {
			if err := g.AddEndpoint(e.name, s.handler(e.name, e.handle), micro.WithEndpointMetadata(map[string]string{"description": e.doc})); err != nil {
				return fmt.Errorf("add endpoint %s: %w", e.name, err)
			}
		}
	}
	return natsrpc.Ready(s.nc)
}

// handler serves one request and answers it, with an error code when it fails
// (400 bad request, 404 no such situation, 503 retry later, 500 otherwise), so
// `nats micro stats` counts requests, errors and processing time exactly.
func (s *Service) handler(name string, handle func(context.Context, micro.Request) (proto.Message, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			_ = r.Error("503", "earlywarning is stopping; retry", nil)
			return
		}
		s.inflight.Add(1)
		s.mu.Unlock()
		defer s.inflight.Done()
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		resp, err := handle(ctx, r)
		if err != nil {
			code := "500"
			var verr *demarchev1.ValidationError
			switch {
			case errors.As(err, &verr), errors.Is(err, demarchev1.ErrInvalid), errors.Is(err, errBadRequest):
				code = "400"
			case errors.Is(err, ErrNoSituation):
				code = "404"
			case errors.Is(err, ErrUnavailable):
				code = "503"
			default:
				s.log.Warn("request failed", zap.String("endpoint", name), zap.Error(err))
			}
			_ = r.Error(code, err.Error(), nil)
			return
		}
		binary := r.Headers().Get("Content-Type") == ContentTypeProtobuf
		var b []byte
		if binary {
			b, err = proto.Marshal(resp)
		} else {
			b, err = protojson.Marshal(resp)
		}
		if err != nil {
			_ = r.Error("500", fmt.Sprintf("encode response: %v", err), nil)
			return
		}
		var opts []micro.RespondOpt
		if binary {
			opts = append(opts, micro.WithHeaders(micro.Headers{"Content-Type": {ContentTypeProtobuf}}))
		}
		if err := r.Respond(b, opts...); err != nil {
			s.log.Warn("respond", zap.String("endpoint", name), zap.Error(err))
		}
	})
}

var errBadRequest = errors.New("undecodable request")

func decode(r micro.Request, m proto.Message) error {
	var err error
	if r.Headers().Get("Content-Type") == ContentTypeProtobuf {
		err = proto.Unmarshal(r.Data(), m)
	} else {
		err = protojson.Unmarshal(r.Data(), m)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return nil
}

func (s *Service) serveIngest(ctx context.Context, r micro.Request) (proto.Message, error) {
	var req demarchev1.IngestRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return s.Ingest(ctx, req.GetSignals())
}

func (s *Service) serveScore(ctx context.Context, r micro.Request) (proto.Message, error) {
	var req demarchev1.ScoreRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return s.Score(ctx, req.GetCountryCode(), req.GetCrisisType())
}

// Client calls the service's endpoints (used by the CLI).
type Client struct {
	NC      *nats.Conn
	Timeout time.Duration // per request; default 2 minutes
}

// ErrService is a service's error answer; the message carries its code.
var ErrService = errors.New("earlywarning service error")

// Ingest sends a batch of signals.
func (c Client) Ingest(ctx context.Context, signals []*demarchev1.Signal) (*demarchev1.IngestResponse, error) {
	var resp demarchev1.IngestResponse
	if err := c.call(ctx, IngestSubject, &demarchev1.IngestRequest{Signals: signals}, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Score asks for a situation's score.
func (c Client) Score(ctx context.Context, country string, t demarchev1.CrisisType) (*demarchev1.ScoreResponse, error) {
	var resp demarchev1.ScoreResponse
	if err := c.call(ctx, ScoreSubject, &demarchev1.ScoreRequest{CountryCode: country, CrisisType: t}, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (c Client) call(ctx context.Context, subject string, req, resp proto.Message) error {
	data, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", subject, err)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = requestTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set("Content-Type", ContentTypeProtobuf)
	reply, err := c.NC.RequestMsgWithContext(ctx, msg)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("%s: no earlywarning service is answering (is it running? \"demarche serve earlywarning\" or \"demarche dev\"): %w", subject, err)
		}
		return fmt.Errorf("%s: %w", subject, err)
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		return fmt.Errorf("%w %s: %s", ErrService, code, reply.Header.Get(micro.ErrorHeader))
	}
	if err := proto.Unmarshal(reply.Data, resp); err != nil {
		return fmt.Errorf("%s: decode response: %w", subject, err)
	}
	return nil
}
