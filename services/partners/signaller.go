package partners

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// TemporalSignaller signals role acknowledgements to crisis workflows
// (crisis.SignalPartnerAck) through a Temporal client.
type TemporalSignaller struct {
	Client client.Client
	owned  bool
}

// DialSignaller dials Temporal for a signaller; Close closes the client.
func DialSignaller(ctx context.Context, hostPort, namespace string, log *zap.Logger) (*TemporalSignaller, error) {
	c, err := temporalx.Dial(ctx, hostPort, namespace, log, temporalx.As(temporalx.IdentityPartners))
	if err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	return &TemporalSignaller{Client: c, owned: true}, nil
}

// SignalPartnerRole signals the crisis's workflow.
func (t *TemporalSignaller) SignalPartnerRole(ctx context.Context, crisisID string, ack *demarchev1.PartnerRoleAck) error {
	return crisis.Signal(ctx, t.Client, crisisID, crisis.SignalPartnerAck, ack)
}

// Close closes the Temporal client if DialSignaller opened it.
func (t *TemporalSignaller) Close() {
	if t.owned {
		t.Client.Close()
	}
}
