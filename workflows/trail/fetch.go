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
	// RunID is set for runs before the latest (continued as new); empty for the latest.
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
// workflow it started (and theirs), the crisis first; runs a workflow
// continued as new from are read too.
func FetchHistories(ctx context.Context, tc client.Client, crisisID string) ([]History, error) {
	var out []History
	queue := []string{crisis.WorkflowID(crisisID)}
	seen := map[string]bool{queue[0]: true}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		runID := ""
		for latest := true; ; latest = false {
			h, err := fetchHistory(ctx, tc, id, runID)
			if err != nil {
				return nil, err
			}
			name := ""
			if !latest {
				name = runID
			}
			out = append(out, History{WorkflowID: id, RunID: name, History: h})
			for _, child := range childrenOf(h) {
				if !seen[child] {
					seen[child] = true
					queue = append(queue, child)
				}
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

// childrenOf lists the child workflows a history started, in order.
func childrenOf(h *historypb.History) []string {
	var out []string
	for _, ev := range h.GetEvents() {
		if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil {
			out = append(out, a.GetWorkflowId())
		}
	}
	return out
}
