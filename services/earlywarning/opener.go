package earlywarning

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

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

// StartWithTemporal dials Temporal and starts the service with a
// TemporalOpener; Stop closes the Temporal client too.
func StartWithTemporal(ctx context.Context, cfg Config, temporalAddress, namespace string, log *zap.Logger) (*Service, error) {
	tc, err := temporalx.Dial(ctx, temporalAddress, namespace, log)
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
