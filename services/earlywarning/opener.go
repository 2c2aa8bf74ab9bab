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
	s.IndexOpenCrises(ctx)
	return s, nil
}

// IndexOpenCrises makes crossings find the open crisis of their situation
// in the crisis stream's openings and closings (openindex.go) instead of
// asking the opener (Temporal visibility) each time, once the index has
// caught up. StartWithTemporal does it.
func (s *Service) IndexOpenCrises(ctx context.Context) {
	x := newOpenIndex(s.js, s.log.Named("open-crises"))
	if !s.openIdx.CompareAndSwap(nil, x) {
		return
	}
	x.start(ctx)
}

// findOpen is an open real crisis of the country and type: the index's
// answer once it caught up, else the opener's.
func (s *Service) findOpen(ctx context.Context, country string, t demarchev1.CrisisType) (string, error) {
	if x := s.openIdx.Load(); x.ready() {
		return x.find(country, t), nil
	}
	return s.opener.FindOpen(ctx, country, t)
}

func isClosed(err error) bool { return errors.Is(err, ErrCrisisClosed) }
