package partners

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/origin"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/trail"
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

// OriginVerifier proves, against Temporal, that an event is one its crisis
// workflow published: the history event it names (ce-workflowrun,
// ce-historyevent) scheduled the publication of an event with this id and
// this data. Structural checks (pkg/origin) cannot tell a forgery that
// copies a genuine event's headers; this can. A RoleSignaller that is also an
// OriginVerifier (TemporalSignaller) verifies CrisisOpened and SharingChanged,
// the events that decide who receives a crisis.
type OriginVerifier interface {
	// VerifyPublished answers nil when the workflow published the event, an
	// error matching origin.ErrForged when it did not, another error when
	// Temporal could not be asked (the event is retried).
	VerifyPublished(ctx context.Context, ev eventbus.Event) error
}

// VerifyPublished reads the run's history (the partners identity needs read
// access to crisis workflows' histories) and looks for the event there.
func (t *TemporalSignaller) VerifyPublished(ctx context.Context, ev eventbus.Event) error {
	o := ev.Origin
	it := t.Client.GetWorkflowHistory(ctx, o.WorkflowID, o.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		h, err := it.Next()
		if err = errs.FromTemporal(err); errors.Is(err, errs.ErrNotFound) {
			return fmt.Errorf("%w: event %s: workflow %s run %s does not exist", origin.ErrForged, ev.ID, o.WorkflowID, o.RunID)
		}
		if err != nil {
			return fmt.Errorf("verify event %s in the history of %s: %w", ev.ID, o.WorkflowID, err)
		}
		if h.GetEventId() < o.HistoryEventID {
			continue
		}
		if h.GetEventId() > o.HistoryEventID {
			break
		}
		for _, req := range trail.PublishedRequests(h) {
			if req.GetEventId() != ev.ID {
				continue
			}
			data, err := req.GetData().UnmarshalNew()
			if err != nil || !proto.Equal(data, ev.Data) {
				return fmt.Errorf("%w: event %s: history event %d of %s published it with other data", origin.ErrForged, ev.ID, o.HistoryEventID, o.WorkflowID)
			}
			return nil
		}
		break
	}
	return fmt.Errorf("%w: event %s: history event %d of %s (run %s) did not publish it", origin.ErrForged, ev.ID, o.HistoryEventID, o.WorkflowID, o.RunID)
}
