package crisis

import (
	"context"

	"go.temporal.io/sdk/activity"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/demarche/demarche/pkg/eventbus"
)

// originOf is where the running activity's events come from: its workflow
// run and the history event that scheduled it. The audit trail records it,
// so `audit reconcile` can find every event in the histories.
func originOf(ctx context.Context) eventbus.Origin {
	if !activity.IsActivity(ctx) {
		return eventbus.Origin{}
	}
	info := activity.GetInfo(ctx)
	return eventbus.Origin{WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, HistoryEventID: scheduledEventID(info.TaskToken)}
}

// scheduledEventID reads the ActivityTaskScheduled event id from an activity
// task token: the Temporal server's token is the protobuf message
// temporal.server.api.token.v1.Task, whose field 4 (int64) is
// scheduled_event_id. 0 when the token is not one (a test environment's).
func scheduledEventID(token []byte) int64 {
	for len(token) > 0 {
		num, typ, n := protowire.ConsumeTag(token)
		if n < 0 {
			return 0
		}
		token = token[n:]
		if num == 4 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(token)
			if n < 0 {
				return 0
			}
			return int64(v)
		}
		n = protowire.ConsumeFieldValue(num, typ, token)
		if n < 0 {
			return 0
		}
		token = token[n:]
	}
	return 0
}
