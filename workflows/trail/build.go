package trail

import (
	"errors"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/temporalx"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

var dc = converter.GetDefaultDataConverter()

func decode(p *commonpb.Payloads, into proto.Message) bool {
	if p == nil || len(p.GetPayloads()) == 0 {
		return false
	}
	return dc.FromPayload(p.GetPayloads()[0], into) == nil
}

// PublishedRequests are the crisis events a history event published, in
// order: the input of a PublishCrisisEvents activity (ActivityTaskScheduled:
// one workflow task's events), of a PublishCrisisEvent activity (histories
// recorded before events were batched), or the result of that activity run
// as a local activity (its marker: local activities record their result,
// not their input, and PublishCrisisEvent returned what it published).
func PublishedRequests(ev *historypb.HistoryEvent) []*demarchev1.PublishEventRequest {
	var p *commonpb.Payloads
	batch := false
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		a := ev.GetActivityTaskScheduledEventAttributes()
		switch a.GetActivityType().GetName() {
		case crisis.ActivityPublishEvents:
			batch = true
		case crisis.ActivityPublishEvent:
		default:
			return nil
		}
		p = a.GetInput()
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		m := ev.GetMarkerRecordedEventAttributes()
		if m.GetMarkerName() != localActivityMarker || m.GetFailure() != nil {
			return nil
		}
		var meta struct{ ActivityType string }
		if d := m.GetDetails()["data"]; d == nil || len(d.GetPayloads()) == 0 || dc.FromPayload(d.GetPayloads()[0], &meta) != nil ||
			meta.ActivityType != crisis.ActivityPublishEvent {
			return nil
		}
		p = m.GetDetails()["result"]
	default:
		return nil
	}
	if batch {
		var b demarchev1.PublishEventBatch
		if !decode(p, &b) {
			return nil
		}
		return b.GetEvents()
	}
	var req demarchev1.PublishEventRequest
	if !decode(p, &req) {
		return nil
	}
	return []*demarchev1.PublishEventRequest{&req}
}

// localActivityMarker is the marker name the Temporal SDK records a local
// activity's outcome under.
const localActivityMarker = "LocalActivity"

// FromHistory rebuilds the decision trail of one workflow from its history
// alone: no server, no database, no today's state.
func FromHistory(workflowID string, h *historypb.History) ([]Entry, error) {
	var out []Entry
	accepted := map[string]*demarchev1.DecisionRequest{}
	add := func(ev *historypb.HistoryEvent, e Entry) {
		e.Workflow, e.EventID = workflowID, ev.GetEventId()
		if e.Time.IsZero() {
			e.Time = ev.GetEventTime().AsTime()
		}
		out = append(out, e)
	}
	for _, ev := range h.GetEvents() {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			a := ev.GetWorkflowExecutionStartedEventAttributes()
			var in demarchev1.CrisisWorkflowInput
			if a.GetWorkflowType().GetName() == crisis.WorkflowName && decode(a.GetInput(), &in) {
				c := in.GetCrisis()
				what := fmt.Sprintf("crisis %s opened: %q (%s, %s, severity %d, %s)", c.GetId(), c.GetTitle(), c.GetCountryCode(),
					c.GetCrisisType().Slug(), c.GetSeverity(), c.GetConfidentiality().Slug())
				if pb := in.GetPlaybook(); pb != nil {
					what += fmt.Sprintf(", playbook %s version %s", pb.GetName(), pb.GetVersion())
				}
				if in.GetDrillPolicy() != nil {
					what += ", drill"
				}
				add(ev, Entry{Kind: "started", What: what, Principal: c.GetOpenedBy()})
			} else {
				add(ev, Entry{Kind: "started", What: a.GetWorkflowType().GetName() + " started"})
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes()
			in := a.GetAcceptedRequest().GetInput()
			if in.GetName() != crisis.UpdateDecide {
				// Controls are refused before acceptance: an accepted one applied.
				if e, ok := control(in.GetName(), in.GetArgs()); ok {
					add(ev, e)
				}
				continue
			}
			var req demarchev1.DecisionRequest
			if decode(in.GetArgs(), &req) {
				accepted[a.GetProtocolInstanceId()] = &req
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
			a := ev.GetWorkflowExecutionUpdateCompletedEventAttributes()
			req := accepted[a.GetMeta().GetUpdateId()]
			if f := a.GetOutcome().GetFailure(); f != nil {
				e := Entry{Kind: "refused", What: f.GetMessage(), Rationale: req.GetRationale(), Principal: req.GetPrincipal(), Rule: ruleOf(f.GetMessage())}
				add(ev, e)
				continue
			}
			// Recorded decisions are read from their DecisionRecorded event below,
			// which drill decisions (taken inside the workflow) have too.
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			a := ev.GetWorkflowExecutionSignaledEventAttributes()
			if e, ok := control(a.GetSignalName(), a.GetInput()); ok {
				add(ev, e)
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, enumspb.EVENT_TYPE_MARKER_RECORDED:
			for _, req := range PublishedRequests(ev) {
				data, err := req.GetData().UnmarshalNew()
				if err != nil {
					continue
				}
				if e, ok := published(data); ok {
					if e.Time.IsZero() {
						e.Time = req.GetTime().AsTime()
					}
					e.PublishedEventID = req.GetEventId()
					add(ev, e)
				}
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			var paid demarchev1.FundsDisbursed
			if decode(ev.GetActivityTaskCompletedEventAttributes().GetResult(), &paid) && paid.GetDisbursementKey() != "" && paid.GetAmountUsd() > 0 {
				add(ev, Entry{Kind: "money", What: fmt.Sprintf("paid USD %d from %s for request %s (key %s)", paid.GetAmountUsd(), paid.GetFund(), paid.GetRequestId(), paid.GetDisbursementKey())})
			}
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes()
			add(ev, Entry{Kind: "stage", What: fmt.Sprintf("started %s (%s)", a.GetWorkflowType().GetName(), a.GetWorkflowId())})
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			var st demarchev1.CrisisState
			if decode(ev.GetWorkflowExecutionCompletedEventAttributes().GetResult(), &st) && st.GetCrisis() != nil {
				what := "closed, outcome " + st.GetOutcome().Slug()
				if f := st.GetFigures(); f != nil {
					what += fmt.Sprintf(": warning to action %s, %d decisions, USD %d disbursed, %d deadlines breached",
						f.GetWarningToAction().AsDuration(), f.GetDecisions(), f.GetFundingDisbursedUsd(), f.GetDeadlinesBreached())
				}
				add(ev, Entry{Kind: "closed", What: what})
			} else {
				add(ev, Entry{Kind: "closed", What: "completed"})
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			add(ev, Entry{Kind: "closed", What: "continued as new (history kept bounded)"})
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED:
			// Terminate, cancel, reset: operations outside Démarche.
			one := &historypb.History{Events: []*historypb.HistoryEvent{ev}}
			if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED {
				one.Events = cancelRequestAndClose(h, ev)
			}
			for _, op := range crisis.OutsideOperationsIn(workflowID, "", one) {
				add(ev, Entry{Kind: "outside", What: crisis.DescribeOutside(op)})
			}
		}
	}
	return out, nil
}

// cancelRequestAndClose is the cancellation request before a Canceled event
// (who asked, and why) with it.
func cancelRequestAndClose(h *historypb.History, closeEv *historypb.HistoryEvent) []*historypb.HistoryEvent {
	var out []*historypb.HistoryEvent
	for _, ev := range h.GetEvents() {
		if ev.GetWorkflowExecutionCancelRequestedEventAttributes() != nil {
			out = []*historypb.HistoryEvent{ev}
		}
	}
	return append(out, closeEv)
}

// ruleOf extracts "four-eyes" from "rule four-eyes: ...".
func ruleOf(msg string) string {
	if i := strings.Index(msg, "rule "); i >= 0 {
		rest := msg[i+5:]
		if j := strings.Index(rest, ":"); j > 0 {
			return rest[:j]
		}
	}
	return ""
}

// control is the trail entry of an operator control (an update) or of what a
// machine signalled.
func control(name string, input *commonpb.Payloads) (Entry, bool) {
	switch name {
	case crisis.UpdateEscalate, crisis.UpdateDeEscalate:
		var c demarchev1.SeverityControl
		if decode(input, &c) {
			return Entry{Kind: "control", What: strings.TrimPrefix(name, "crisis."), Principal: c.GetPrincipal(), Rationale: c.GetReason()}, true
		}
	case crisis.UpdateSkipStage, crisis.UpdateReopenStage:
		var c demarchev1.StageControl
		if decode(input, &c) {
			return Entry{Kind: "control", What: strings.TrimPrefix(name, "crisis.") + " " + c.GetStage().Slug(), Principal: c.GetPrincipal(), Rationale: c.GetReason()}, true
		}
	case crisis.UpdatePartnerRole, crisis.SignalPartnerAck:
		var p demarchev1.PartnerRoleAck
		if decode(input, &p) {
			return Entry{Kind: "control", What: fmt.Sprintf("%s takes the role %s", p.GetPartner(), p.GetRole().Slug()), Principal: p.GetPrincipal()}, true
		}
	case crisis.UpdateWarn:
		var c demarchev1.WarnControl
		if decode(input, &c) {
			w := c.GetWarning()
			return Entry{Kind: "signal", What: fmt.Sprintf("warning attached from %s (severity %d): %s", w.GetSource(), w.GetSeverity(), w.GetSummary()), Principal: c.GetPrincipal()}, true
		}
	case crisis.UpdateShare:
		var c demarchev1.SharingControl
		if decode(input, &c) {
			var parts []string
			if len(c.GetShare()) > 0 {
				parts = append(parts, "shared with "+strings.Join(c.GetShare(), ", "))
			}
			if len(c.GetUnshare()) > 0 {
				parts = append(parts, "no longer shared with "+strings.Join(c.GetUnshare(), ", "))
			}
			return Entry{Kind: "sharing", What: strings.Join(parts, "; "), Principal: c.GetPrincipal(), Rationale: c.GetReason()}, true
		}
	case crisis.UpdateComment:
		var c demarchev1.CommentControl
		if decode(input, &c) {
			return Entry{Kind: "comment", What: c.GetText(), Principal: c.GetPrincipal()}, true
		}
	case crisis.SignalWarning:
		var w demarchev1.Warning
		if decode(input, &w) {
			return Entry{Kind: "signal", What: fmt.Sprintf("warning attached from %s (severity %d): %s", w.GetSource(), w.GetSeverity(), w.GetSummary())}, true
		}
	case crisis.SignalRelapse:
		var r demarchev1.CrisisRelapsed
		if decode(input, &r) {
			return Entry{Kind: "control", What: "relapse: " + r.GetReason(), Principal: "follow-up"}, true
		}
	}
	return Entry{}, false
}

func published(data proto.Message) (Entry, bool) {
	switch d := data.(type) {
	case *demarchev1.DecisionRecorded:
		rec := d.GetDecision()
		principal := rec.GetPrincipal()
		if rec.GetAutomatic() {
			principal += " (drill policy)"
		}
		return Entry{Time: rec.GetDecidedAt().AsTime(), Kind: "decision", What: crisis.Describe(rec.GetRequest()),
			Principal: principal, Rule: rec.GetKind(), Rationale: rec.GetRationale()}, true
	case *demarchev1.StageEntered:
		return Entry{Kind: "stage", What: "entered " + d.GetStage().Slug()}, true
	case *demarchev1.StageCompleted:
		return Entry{Kind: "stage", What: fmt.Sprintf("completed %s after %s", d.GetStage().Slug(), roundDuration(d.GetDuration().AsDuration()))}, true
	case *demarchev1.StageSkipped:
		return Entry{Kind: "stage", What: "skipped " + d.GetStage().Slug(), Principal: d.GetPrincipal(), Rationale: d.GetReason()}, true
	case *demarchev1.DeadlineAtRisk:
		return Entry{Kind: "deadline", What: fmt.Sprintf("%s at risk (due %s)", d.GetDeadline().GetName(), d.GetDeadline().GetDueAt().AsTime().Format("2006-01-02 15:04:05Z07:00"))}, true
	case *demarchev1.DeadlineBreached:
		return Entry{Kind: "deadline", What: fmt.Sprintf("%s breached (was due %s)", d.GetDeadline().GetName(), d.GetDeadline().GetDueAt().AsTime().Format("2006-01-02 15:04:05Z07:00"))}, true
	case *demarchev1.SeverityChanged:
		return Entry{Kind: "control", What: fmt.Sprintf("severity %d -> %d", d.GetFrom(), d.GetTo()), Principal: d.GetPrincipal(), Rationale: d.GetReason()}, true
	}
	return Entry{}, false
}

// ErrNonDeterministic is matched by a replay that diverged from its history.
var ErrNonDeterministic = errors.New("history does not replay on this code")

// Replay replays one history against today's workflow code.
func Replay(h *historypb.History) error {
	return ReplayWith(h, crisis.RegisterWorkflows)
}

// ReplayWith replays against the workflows register registers (tests use it
// to prove that an incompatible change is caught).
func ReplayWith(h *historypb.History, register func(worker.WorkflowRegistry)) error {
	r := worker.NewWorkflowReplayer()
	register(r)
	if err := r.ReplayWorkflowHistory(temporalx.SDKLogger(zap.NewNop()), h); err != nil {
		wt := ""
		if evs := h.GetEvents(); len(evs) > 0 {
			wt = evs[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
		}
		return fmt.Errorf("%w: workflow %s: %v", ErrNonDeterministic, wt, err)
	}
	return nil
}

// roundDuration keeps a stage's duration readable on a timeline
// ("50ms", "4.2s", "3h12m5s"), not "50.008031ms": the exact value stays in
// the event itself.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}
