package worker

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// outsideWatch finds crisis workflow runs terminated, cancelled or reset
// outside Démarche (Temporal's visibility: closed runs by status) and
// publishes a CrisisAlteredOutside event for each, which the audit service
// chains like any crisis event. Event ids are derived from the run, and the
// crisis stream recognises an id again for its duplicate window (24 h), so
// the watcher looks back that far after a restart without chaining anything
// twice; an operation made while the worker was down longer is still reported
// by crisis show, audit replay and reconcile, which read Temporal.
type outsideWatch struct {
	tc       client.Client
	bus      *eventbus.Publisher
	ns       string
	interval time.Duration
	lookback time.Duration
	log      *zap.Logger
	seen     map[string]bool // run ids already published by this process
}

func (w *outsideWatch) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		if err := w.scan(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("outside-operation watch: scan failed; retrying", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scan publishes the outside operations of runs closed within the lookback.
func (w *outsideWatch) scan(ctx context.Context) error {
	since := time.Now().Add(-w.lookback).UTC().Format(time.RFC3339)
	query := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus IN ('Terminated', 'Canceled') AND CloseTime > '%s'", crisis.WorkflowName, since)
	var token []byte
	for {
		resp, err := w.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: w.ns, Query: query, NextPageToken: token})
		if err != nil {
			return fmt.Errorf("list closed crisis runs: %w", err)
		}
		for _, ex := range resp.GetExecutions() {
			runID := ex.GetExecution().GetRunId()
			if w.seen[runID] {
				continue
			}
			wfID := ex.GetExecution().GetWorkflowId()
			crisisID := crisis.CrisisIDOf(wfID)
			if crisisID == "" {
				continue
			}
			op, err := crisis.ClosedOutside(ctx, w.tc, wfID, runID, ex.GetStatus())
			if err != nil {
				return err
			}
			if op == nil {
				w.seen[runID] = true
				continue
			}
			var country string
			if p := ex.GetSearchAttributes().GetIndexedFields()[temporalx.SACountry.GetName()]; p != nil {
				_ = converter.GetDefaultDataConverter().FromPayload(p, &country) // undecodable: the event goes out without a country (region unknown)
			}
			region, _ := demarchev1.RegionOf(country)
			ev := &demarchev1.CrisisAlteredOutside{CrisisId: crisisID, Operation: op}
			if _, err := w.bus.Publish(ctx, eventbus.Route{Region: region, Country: country, CrisisID: crisisID}, eventbus.Event{
				ID: crisis.OutsideEventID(crisisID, runID), Source: crisis.OutsideWatchSource, Subject: crisisID,
				Time: op.GetAt().AsTime(), Data: ev,
			}); err != nil {
				return fmt.Errorf("publish CrisisAlteredOutside for crisis %s: %w", crisisID, err)
			}
			w.seen[runID] = true
			w.log.Warn("crisis workflow altered outside Démarche; recorded", zap.String("crisis_id", crisisID),
				zap.String("operation", op.GetKind().String()), zap.String("identity", op.GetIdentity()), zap.String("run_id", runID))
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return nil
		}
	}
}
