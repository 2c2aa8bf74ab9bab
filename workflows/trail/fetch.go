package trail

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/demarche/demarche/workflows/crisis"
)

// History is one workflow run's history.
type History struct {
	WorkflowID string
	// RunID is set for every run but the latest (one it continued as new
	// from, one a reset replaced, a child run an earlier parent run started);
	// empty for the latest.
	RunID   string
	History *historypb.History
}

// Name is the history's file name in a bundle (without the folder).
func (h History) Name() string {
	if h.RunID != "" {
		return h.WorkflowID + "." + h.RunID + ".json"
	}
	return h.WorkflowID + ".json"
}

// FetchHistories reads the histories of a crisis's workflow and of every child
// workflow it started (and theirs), the crisis first, every run of each: the
// runs a workflow continued as new from, the runs a reset replaced (the
// abandoned run's events stay in the audit chain, so the auditor needs its
// history), and each child run a parent run started (a reset parent starts
// its children again: the earlier child runs are read too).
func FetchHistories(ctx context.Context, tc client.Client, crisisID string) ([]History, error) {
	var out []History
	queue := []run{{workflowID: crisis.WorkflowID(crisisID)}}
	queued := map[string]bool{queue[0].workflowID: true} // workflows whose latest run is queued
	fetched := map[run]bool{}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		id, runID := next.workflowID, next.runID
		if runID != "" && fetched[next] {
			continue
		}
		for latest := runID == ""; ; latest = false {
			h, err := fetchHistory(ctx, tc, id, runID)
			if err != nil {
				return nil, err
			}
			actual := runID
			if actual == "" {
				actual = crisis.RunIDOf(h)
			}
			if fetched[run{id, actual}] {
				break
			}
			fetched[run{id, actual}] = true
			name := ""
			if !latest {
				name = actual
			}
			out = append(out, History{WorkflowID: id, RunID: name, History: h})
			for _, child := range childrenOf(h) {
				if !queued[child.workflowID] {
					queued[child.workflowID] = true
					queue = append(queue, run{workflowID: child.workflowID})
				}
				if child.runID != "" {
					queue = append(queue, child)
				}
			}
			for _, base := range resetBasesOf(h) {
				queue = append(queue, run{workflowID: id, runID: base})
			}
			evs := h.GetEvents()
			if len(evs) == 0 {
				break
			}
			runID = evs[0].GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
			if runID == "" {
				break
			}
		}
	}
	return out, nil
}

// run names one run of a workflow ("": its latest).
type run struct{ workflowID, runID string }

func fetchHistory(ctx context.Context, tc client.Client, workflowID, runID string) (*historypb.History, error) {
	h := &historypb.History{}
	it := tc.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		h.Events = append(h.Events, ev)
	}
	return h, nil
}

// childrenOf lists the child workflows a history started, in order, each
// with the run it started when the history says.
func childrenOf(h *historypb.History) []run {
	var out []run
	for _, ev := range h.GetEvents() {
		if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil {
			out = append(out, run{workflowID: a.GetWorkflowId()})
		}
		if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
			ex := a.GetWorkflowExecution()
			out = append(out, run{ex.GetWorkflowId(), ex.GetRunId()})
		}
	}
	return out
}

// resetBasesOf lists the runs that resets replaced by the run of a history
// (a reset writes a failed workflow task naming its base run).
func resetBasesOf(h *historypb.History) []string {
	var out []string
	for _, ev := range h.GetEvents() {
		if a := ev.GetWorkflowTaskFailedEventAttributes(); a.GetCause() == enumspb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW && a.GetBaseRunId() != "" {
			out = append(out, a.GetBaseRunId())
		}
	}
	return out
}
