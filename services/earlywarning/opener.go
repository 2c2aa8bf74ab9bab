package earlywarning

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// ErrCrisisClosed is returned by a CrisisOpener when the crisis it was asked
// to signal ran once and is closed: a warning never reopens it.
var ErrCrisisClosed = crisis.ErrClosed

// TemporalOpener opens or signals crises with Temporal's signal-with-start
// (crisis.OpenOrSignal): concurrent calls for one crisis id open one crisis.
type TemporalOpener struct {
	Client client.Client
}

// OpenOrSignal implements CrisisOpener.
func (o TemporalOpener) OpenOrSignal(ctx context.Context, in *demarchev1.CrisisWorkflowInput, w *demarchev1.Warning) error {
	_, err := crisis.OpenOrSignal(ctx, o.Client, in, w)
	return err
}

// IsOpen implements CrisisOpener.
func (o TemporalOpener) IsOpen(ctx context.Context, crisisID string) (bool, error) {
	return crisis.IsOpen(ctx, o.Client, crisisID)
}

// FindOpen implements CrisisOpener: an open real crisis of the country and
// type, from Temporal visibility (the oldest when several are open).
func (o TemporalOpener) FindOpen(ctx context.Context, country string, t demarchev1.CrisisType) (string, error) {
	rows, err := crisis.List(ctx, o.Client, crisis.Filter{Country: country, CrisisType: t, OpenOnly: true, ExcludeDrills: true}, 0)
	if err != nil {
		return "", err
	}
	if len(rows) == 0 {
		return "", nil
	}
	return rows[len(rows)-1].CrisisID, nil
}

// StartWithTemporal dials Temporal and starts the service with a
// TemporalOpener; Stop closes the Temporal client too.
func StartWithTemporal(ctx context.Context, cfg Config, temporalAddress, namespace string, log *zap.Logger) (*Service, error) {
	tc, err := temporalx.Dial(ctx, temporalAddress, namespace, log, temporalx.As(temporalx.IdentityEarlyWarning))
	if err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	s, err := Start(ctx, cfg, TemporalOpener{Client: tc}, log)
	if err != nil {
		tc.Close()
		return nil, err
	}
	s.closers = append(s.closers, tc.Close)
	return s, nil
}

func isClosed(err error) bool { return errors.Is(err, ErrCrisisClosed) }
