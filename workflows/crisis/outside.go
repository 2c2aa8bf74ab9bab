package crisis

// Operations outside Démarche: anyone holding Temporal credentials can
// terminate, cancel or reset a crisis's workflow with the Temporal CLI or
// SDK. They are never Démarche's way of acting on a crisis, so each is found
// in the workflow's history and reported: crisis show (State), audit replay
// and reconcile (from histories), and an audit record (the worker's watcher
// publishes CrisisAlteredOutside).

import (
	"context"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/ids"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// ResetterIdentity is the identity the Temporal server gives the
// termination of a run that a reset replaced.
const ResetterIdentity = "history-resetter"

// OutsideOperationsIn lists the outside operations one run's history records:
// its end by termination or cancellation, and the resets that started it.
func OutsideOperationsIn(workflowID, runID string, h *historypb.History) []*demarchev1.OutsideOperation {
	var out []*demarchev1.OutsideOperation
	var cancelReq *historypb.WorkflowExecutionCancelRequestedEventAttributes
	for _, ev := range h.GetEvents() {
		at := ev.GetEventTime()
		switch {
		case ev.GetWorkflowTaskFailedEventAttributes().GetCause() == enumspb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW:
			a := ev.GetWorkflowTaskFailedEventAttributes()
			out = append(out, &demarchev1.OutsideOperation{
				Kind: demarchev1.OutsideOperationKind_OUTSIDE_OPERATION_KIND_RESET, Reason: a.GetFailure().GetMessage(), At: at,
				WorkflowId: workflowID, RunId: a.GetBaseRunId(), NewRunId: a.GetNewRunId(),
			})
		case ev.GetWorkflowExecutionCancelRequestedEventAttributes() != nil:
			cancelReq = ev.GetWorkflowExecutionCancelRequestedEventAttributes()
		case ev.GetWorkflowExecutionCanceledEventAttributes() != nil:
			op := &demarchev1.OutsideOperation{Kind: demarchev1.OutsideOperationKind_OUTSIDE_OPERATION_KIND_CANCEL, At: at, WorkflowId: workflowID, RunId: runID}
			if cancelReq != nil {
				op.Identity, op.Reason = cancelReq.GetIdentity(), cancelReq.GetCause()
			}
			out = append(out, op)
		case ev.GetWorkflowExecutionTerminatedEventAttributes() != nil:
			out = append(out, terminated(workflowID, runID, ev))
		}
	}
	return out
}

func terminated(workflowID, runID string, ev *historypb.HistoryEvent) *demarchev1.OutsideOperation {
	a := ev.GetWorkflowExecutionTerminatedEventAttributes()
	op := &demarchev1.OutsideOperation{
		Kind: demarchev1.OutsideOperationKind_OUTSIDE_OPERATION_KIND_TERMINATE, Identity: a.GetIdentity(), Reason: a.GetReason(),
		At: ev.GetEventTime(), WorkflowId: workflowID, RunId: runID,
	}
	if a.GetIdentity() == ResetterIdentity {
		op.Kind, op.Identity = demarchev1.OutsideOperationKind_OUTSIDE_OPERATION_KIND_RESET, ""
	}
	return op
}

// ClosedOutside reads how a closed run ended, when it ended by an outside
// operation (nil otherwise): its close event, and for a cancellation who
// asked for it.
func ClosedOutside(ctx context.Context, c client.Client, workflowID, runID string, status enumspb.WorkflowExecutionStatus) (*demarchev1.OutsideOperation, error) {
	filter := enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT
	switch status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		filter = enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT // the request holds who asked
	default:
		return nil, nil
	}
	h := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, filter)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s run %s: %w", workflowID, runID, errs.FromTemporal(err))
		}
		h.Events = append(h.Events, ev)
	}
	ops := OutsideOperationsIn(workflowID, runID, h)
	if len(ops) == 0 {
		return nil, nil
	}
	op := ops[len(ops)-1]
	if op.GetKind() == demarchev1.OutsideOperationKind_OUTSIDE_OPERATION_KIND_RESET {
		if d, err := c.DescribeWorkflowExecution(ctx, workflowID, runID); err == nil {
			op.NewRunId = d.GetWorkflowExtendedInfo().GetResetRunId()
		}
	}
	return op, nil
}

// OutsideOperations lists the outside operations on a crisis's workflow,
// oldest first: every run ended by termination or cancellation (visibility),
// the latest run read directly (visibility may lag a moment behind), and the
// resets that started the latest run.
func OutsideOperations(ctx context.Context, c client.Client, crisisID string) ([]*demarchev1.OutsideOperation, error) {
	wfID := WorkflowID(crisisID)
	desc, err := c.DescribeWorkflowExecution(ctx, wfID, "")
	if err != nil {
		return nil, fmt.Errorf("describe crisis %s: %w", crisisID, errs.FromTemporal(err))
	}
	latest := desc.GetWorkflowExecutionInfo()
	latestRun := latest.GetExecution().GetRunId()
	var out []*demarchev1.OutsideOperation
	if latest.GetFirstRunId() == latestRun { // one run only: nothing to list
		op, err := ClosedOutside(ctx, c, wfID, latestRun, latest.GetStatus())
		if op != nil {
			out = append(out, op)
		}
		return out, err
	}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s' AND ExecutionStatus IN ('Terminated', 'Canceled')", quote(wfID)),
	})
	if err != nil {
		return nil, fmt.Errorf("list runs of crisis %s: %w", crisisID, errs.FromTemporal(err))
	}
	runs := resp.GetExecutions()
	for i := len(runs) - 1; i >= 0; i-- { // newest first from visibility
		r := runs[i]
		if r.GetExecution().GetRunId() == latestRun {
			continue
		}
		op, err := ClosedOutside(ctx, c, wfID, r.GetExecution().GetRunId(), r.GetStatus())
		if err != nil {
			return nil, err
		}
		if op != nil {
			out = append(out, op)
		}
	}
	if desc.GetWorkflowExtendedInfo().GetLastResetTime() != nil {
		h := &historypb.History{}
		it := c.GetWorkflowHistory(ctx, wfID, latestRun, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return nil, fmt.Errorf("history of %s: %w", wfID, errs.FromTemporal(err))
			}
			if ev.GetWorkflowTaskFailedEventAttributes().GetCause() == enumspb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW {
				h.Events = append(h.Events, ev)
			}
		}
		out = appendNew(out, OutsideOperationsIn(wfID, latestRun, h)...)
	}
	op, err := ClosedOutside(ctx, c, wfID, latestRun, latest.GetStatus())
	if err != nil {
		return nil, err
	}
	if op != nil {
		out = append(out, op)
	}
	return out, nil
}

// appendNew adds the resets not already listed (the run a reset replaced
// reports it too).
func appendNew(have []*demarchev1.OutsideOperation, ops ...*demarchev1.OutsideOperation) []*demarchev1.OutsideOperation {
	for _, op := range ops {
		dup := false
		for _, h := range have {
			if h.GetKind() == op.GetKind() && h.GetRunId() == op.GetRunId() {
				h.NewRunId = op.GetNewRunId()
				dup = true
			}
		}
		if !dup {
			have = append(have, op)
		}
	}
	return have
}

// DescribeOutside says an outside operation in a line, e.g. "terminated
// outside Démarche by alice@host at 2026-11-28T10:00:00Z: reason".
func DescribeOutside(op *demarchev1.OutsideOperation) string {
	var b strings.Builder
	switch op.GetKind() {
	case demarchev1.OutsideOperationKind_OUTSIDE_OPERATION_KIND_TERMINATE:
		b.WriteString("terminated")
	case demarchev1.OutsideOperationKind_OUTSIDE_OPERATION_KIND_CANCEL:
		b.WriteString("cancelled")
	case demarchev1.OutsideOperationKind_OUTSIDE_OPERATION_KIND_RESET:
		b.WriteString("reset")
	default:
		b.WriteString("altered")
	}
	b.WriteString(" outside Démarche")
	if op.GetIdentity() != "" {
		b.WriteString(" by " + op.GetIdentity())
	} else {
		b.WriteString(" by an unknown identity")
	}
	b.WriteString(" at " + op.GetAt().AsTime().UTC().Format("2006-01-02T15:04:05Z"))
	if op.GetReason() != "" {
		b.WriteString(": " + op.GetReason())
	}
	if op.GetRunId() != "" {
		b.WriteString(" (run " + op.GetRunId())
		if op.GetNewRunId() != "" {
			b.WriteString(", replaced by run " + op.GetNewRunId())
		}
		b.WriteString(")")
	}
	return b.String()
}

// OutsideWatchSource is the ce-source of the CrisisAlteredOutside events the
// worker's watcher publishes (not the workflow's: the workflow did not act).
const OutsideWatchSource = "/demarche/services/worker/outside-watch"

// CrisisIDOf is the crisis id of a crisis workflow id ("" for another workflow).
func CrisisIDOf(workflowID string) string {
	if !strings.HasPrefix(workflowID, workflowIDPrefix) {
		return ""
	}
	return strings.TrimPrefix(workflowID, workflowIDPrefix)
}

// OutsideEventID is the id of the CrisisAlteredOutside event of the run an
// outside operation ended (for a reset, the run it replaced): one per run.
func OutsideEventID(crisisID, runID string) string {
	return ids.Derived(crisisID, "outside-operation", runID)
}

// RunIDOf is the run id of a history: the run it started with, or the run a
// reset made of it.
func RunIDOf(h *historypb.History) string {
	evs := h.GetEvents()
	if len(evs) == 0 {
		return ""
	}
	id := evs[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()
	for _, ev := range evs {
		if a := ev.GetWorkflowTaskFailedEventAttributes(); a.GetCause() == enumspb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW {
			id = a.GetNewRunId()
		}
	}
	return id
}
