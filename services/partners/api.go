package partners

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The micro service: `nats micro ls|info partners|stats partners` finds it.
const (
	ServiceName    = "partners"
	ServiceVersion = "1.0.0"
	Group          = "demarche.partners"
	// SubjectList answers the registry (ListPartnersRequest -> ListPartnersResponse).
	SubjectList = Group + ".list"
	// SubjectAckRole takes a role acknowledgement (AckRoleRequest -> AckRoleResponse).
	SubjectAckRole = Group + ".ack-role"
)

// Error codes of the micro endpoints (Nats-Service-Error-Code).
const (
	CodeInvalid   = "400"
	CodeForbidden = "403"
	CodeNotFound  = "404"
	CodeInternal  = "500"
)

func codeOf(err error) string {
	switch {
	case errors.Is(err, demarchev1.ErrInvalid):
		return CodeInvalid
	case errors.Is(err, ErrNotShared):
		return CodeForbidden
	case errors.Is(err, ErrUnknownPartner), errors.Is(err, ErrUnknownCrisis):
		return CodeNotFound
	}
	return CodeInternal
}

func (s *Service) startMicro() (micro.Service, error) {
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        ServiceName,
		Version:     ServiceVersion,
		Description: "Démarche partner organisations: registry, and role acknowledgements into the crisis workflow",
	})
	if err != nil {
		return nil, fmt.Errorf("micro service %s: %w", ServiceName, err)
	}
	g := svc.AddGroup(Group)
	for _, ep := range []struct {
		name string
		h    micro.Handler
		meta map[string]string
	}{
		{"list", handler(s.log, func() *demarchev1.ListPartnersRequest { return &demarchev1.ListPartnersRequest{} }, s.list),
			map[string]string{"request": "demarche.v1.ListPartnersRequest", "response": "demarche.v1.ListPartnersResponse", "format": "application/json (protojson)"}},
		{"ack-role", handler(s.log, func() *demarchev1.AckRoleRequest { return &demarchev1.AckRoleRequest{} }, s.ackRole),
			map[string]string{"request": "demarche.v1.AckRoleRequest", "response": "demarche.v1.AckRoleResponse", "format": "application/json (protojson)"}},
	} {
		if err := g.AddEndpoint(ep.name, ep.h, micro.WithEndpointMetadata(ep.meta)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("micro endpoint %s: %w", ep.name, err)
		}
	}
	return svc, nil
}

func (s *Service) list(context.Context, *demarchev1.ListPartnersRequest) (*demarchev1.ListPartnersResponse, error) {
	resp := &demarchev1.ListPartnersResponse{}
	for _, p := range s.reg.Partners() {
		resp.Partners = append(resp.Partners, p.Info())
	}
	return resp, nil
}

// ackRole checks that the partner is known, the crisis is known and the
// partner may see it, then signals the crisis workflow.
func (s *Service) ackRole(ctx context.Context, req *demarchev1.AckRoleRequest) (*demarchev1.AckRoleResponse, error) {
	ack := proto.Clone(req.GetAck()).(*demarchev1.PartnerRoleAck)
	p, ok := s.reg.Lookup(ack.GetPartner())
	if !ok {
		return nil, fmt.Errorf("%w: %q is not in the partners registry (see \"demarche partner list\")", ErrUnknownPartner, ack.GetPartner())
	}
	ack.Partner = p.Name
	c, err := s.crisis(ctx, req.GetCrisisId())
	if err != nil {
		return nil, err
	}
	if !p.MaySee(c) {
		return nil, fmt.Errorf("%w: crisis %s is %s and not shared with %s", ErrNotShared, c.GetId(), c.GetConfidentiality().Slug(), p.Name)
	}
	if ack.AcknowledgedAt == nil {
		ack.AcknowledgedAt = timestamppb.New(s.cfg.Now())
	}
	if err := s.signaller.SignalPartnerRole(ctx, c.GetId(), ack); err != nil {
		return nil, fmt.Errorf("signal %s's role to crisis %s: %w", p.Name, c.GetId(), err)
	}
	s.log.Info("partner role acknowledged", zap.String("crisis", c.GetId()), zap.String("partner", p.Name),
		zap.String("role", ack.GetRole().Slug()), zap.String("principal", ack.GetPrincipal()))
	return &demarchev1.AckRoleResponse{CrisisId: c.GetId(), Ack: ack}, nil
}

// handler adapts a typed function to a micro endpoint: protojson request,
// input rules, protojson response, or an error with its code.
func handler[Req, Resp proto.Message](log *zap.Logger, newReq func() Req, fn func(context.Context, Req) (Resp, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		req := newReq()
		if len(r.Data()) > 0 {
			if err := protojson.Unmarshal(r.Data(), req); err != nil {
				_ = r.Error(CodeInvalid, fmt.Sprintf("undecodable request: %v", err), nil)
				return
			}
		}
		if v, ok := any(req).(demarchev1.Validator); ok {
			if err := v.Validate(); err != nil {
				_ = r.Error(CodeInvalid, err.Error(), nil)
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := fn(ctx, req)
		if err != nil {
			code := codeOf(err)
			if code == CodeInternal {
				log.Warn("request failed", zap.String("subject", r.Subject()), zap.Error(err))
			}
			_ = r.Error(code, err.Error(), nil)
			return
		}
		b, err := protojson.Marshal(resp)
		if err != nil {
			_ = r.Error(CodeInternal, fmt.Sprintf("encode response: %v", err), nil)
			return
		}
		_ = r.Respond(b)
	})
}

// ServiceError is an error answered by the partners service.
type ServiceError struct {
	Subject     string
	Code        string
	Description string
}

func (e *ServiceError) Error() string { return e.Description }

// Unwrap maps the code to a sentinel: 400 demarchev1.ErrInvalid, 403
// ErrNotShared, 404 ErrUnknownPartner or ErrUnknownCrisis (by description).
func (e *ServiceError) Unwrap() error {
	switch e.Code {
	case CodeInvalid:
		return demarchev1.ErrInvalid
	case CodeForbidden:
		return ErrNotShared
	case CodeNotFound:
		if strings.HasPrefix(e.Description, ErrUnknownPartner.Error()) {
			return ErrUnknownPartner
		}
		return ErrUnknownCrisis
	}
	return nil
}

// Client calls the partners service over NATS.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
}

// NewClient returns a client on an open connection.
func NewClient(nc *nats.Conn) *Client { return &Client{nc: nc, timeout: 30 * time.Second} }

// List returns the registry.
func (c *Client) List(ctx context.Context) ([]*demarchev1.PartnerInfo, error) {
	var resp demarchev1.ListPartnersResponse
	if err := c.call(ctx, SubjectList, &demarchev1.ListPartnersRequest{}, &resp); err != nil {
		return nil, err
	}
	return resp.GetPartners(), nil
}

// AckRole sends a partner's role acknowledgement for a crisis. The request is
// checked locally first; a refusal by the service comes back as *ServiceError.
func (c *Client) AckRole(ctx context.Context, req *demarchev1.AckRoleRequest) (*demarchev1.AckRoleResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	var resp demarchev1.AckRoleResponse
	if err := c.call(ctx, SubjectAckRole, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (c *Client) call(ctx context.Context, subject string, req, resp proto.Message) error {
	b, err := protojson.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", subject, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	msg, err := c.nc.RequestWithContext(ctx, subject, b)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("%s: the partners service is not answering (is it running?): %w", subject, err)
		}
		return fmt.Errorf("%s: %w", subject, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return &ServiceError{Subject: subject, Code: code, Description: msg.Header.Get(micro.ErrorHeader)}
	}
	if err := protojson.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("%s: decode response: %w", subject, err)
	}
	return nil
}
