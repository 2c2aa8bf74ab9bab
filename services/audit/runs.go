package audit

import (
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/demarche/demarche/workflows/crisis"
)

// A reset (temporal workflow reset) replaces a run by a new one whose
// history begins with a copy of the base run's events up to the reset point,
// then a failed workflow task (cause: reset) and what the new run does. The
// copied events are the base run's: a publication among them was made, and
// chained, by the base run (its record names the base run), so reconcile
// counts it once, in the base run's history, when that history is at hand.

// runOf is one run's history with where its events were first written.
type runOf struct {
	History
	// run is the run id (History.RunID is empty for the latest).
	run string
	// resets are the reset points in the history, in order.
	resets []resetPoint
}

type resetPoint struct {
	// at is the failed workflow task a reset wrote: the events before it are copies.
	at   int64
	base string
}

type runKey struct{ workflow, run string }

// runsOf indexes histories by workflow and run.
func runsOf(histories []History) (runs []runOf, have map[runKey]bool) {
	have = map[runKey]bool{}
	for _, h := range histories {
		r := runOf{History: h, run: h.RunID}
		if r.run == "" {
			r.run = crisis.RunIDOf(h.History)
		}
		for _, ev := range h.History.GetEvents() {
			if a := ev.GetWorkflowTaskFailedEventAttributes(); a.GetCause() == enumspb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW {
				r.resets = append(r.resets, resetPoint{at: ev.GetEventId(), base: a.GetBaseRunId()})
			}
		}
		runs = append(runs, r)
		have[runKey{h.WorkflowID, r.run}] = true
	}
	return runs, have
}

// writtenBy is the run that wrote a history event: the base run of the first
// reset after it (copied), or this run.
func (r runOf) writtenBy(eventID int64) string {
	for _, p := range r.resets {
		if eventID < p.at {
			return p.base
		}
	}
	return r.run
}

// copied reports whether a history event is a copy of one in another run's
// history that is at hand (and is counted there).
func (r runOf) copied(eventID int64, have map[runKey]bool) bool {
	by := r.writtenBy(eventID)
	return by != r.run && have[runKey{r.WorkflowID, by}]
}
