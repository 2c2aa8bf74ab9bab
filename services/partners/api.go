package partners

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The micro service: `nats micro ls|info partners|stats partners` finds it.
const (
	ServiceName    = "partners"
	ServiceVersion = "1.0.0"
	Group          = natsrpc.PartnersGroup
	// SubjectList answers the registry (ListPartnersRequest -> ListPartnersResponse).
	SubjectList = natsrpc.PartnersList
	// SubjectAckRole takes a role acknowledgement (AckRoleRequest -> AckRoleResponse).
	SubjectAckRole = natsrpc.PartnersAckRole
)

func (s *Service) startMicro() (*natsrpc.Server, error) {
	return natsrpc.Serve(s.nc, natsrpc.ServiceConfig{
		Name: ServiceName, Version: ServiceVersion, Group: Group, Log: s.log,
		Description: "Démarche partner organisations: registry, and role acknowledgements into the crisis workflow",
	},
		natsrpc.Typed("list", "the partner registry",
			func() *demarchev1.ListPartnersRequest { return &demarchev1.ListPartnersRequest{} }, s.list),
		natsrpc.Typed("ack-role", "a partner acknowledges its role in a crisis shared with it",
			func() *demarchev1.AckRoleRequest { return &demarchev1.AckRoleRequest{} }, s.ackRole),
	)
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
// checked locally first; a refusal by the service comes back as *errs.RPCError,
// matching ErrUnknownPartner, ErrUnknownCrisis or ErrNotShared with errors.Is.
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
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	return natsrpc.Call(ctx, c.nc, subject, req, resp)
}
