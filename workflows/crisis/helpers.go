package crisis

import (
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/ids"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// activityOptions: publishing and paying must eventually succeed (NATS or a
// service may be restarting); idempotency keys make every retry safe.
func withActivityOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{errs.TypeInvalidInput},
		},
	})
}

// withServiceOptions: calls made while a person waits for an answer (an
// update in flight) give up after a few attempts, so the person gets an error
// instead of a hang; a service's refusal is final at once.
func withServiceOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 5 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{errs.TypeInvalidInput, errs.TypeRuleViolation},
		},
	})
}

// emitter publishes a workflow's events with deterministic ids: name-based
// UUIDs of the prefix, the workflow run and a sequence number, so replays and
// retries of a run produce the same id and the stream stores each event once.
//
// The run is part of the id because an event names one publication by one
// run. A reset (temporal workflow reset) replaces a run by a new one that
// executes again from the reset point: it re-reads the time, re-applies the
// signals and updates, and may decide otherwise than the abandoned run did.
// Its events are new facts. Were they given the abandoned run's ids, the
// stream's de-duplication (Nats-Msg-Id) would absorb them: subscribers and
// the audit chain would keep the abandoned run's content under the new run's
// name, and a decision the new run made differently would reach no one. With
// the run in the id, the chain stays append-only and honest: the abandoned
// run's records stay as they were, the reset is recorded (the outside watch's
// CrisisAlteredOutside), and the new run's events are chained as the new
// run's, each with its own workflow run and history event; audit reconcile
// reads every run's history. The same holds for a stage's child workflow
// started again by the new run (a new run of the same workflow id), and for
// continue-as-new. Money is the exception, on purpose: a disbursement's key
// is per funding request, not per run, so a reset never pays twice; its
// FundsDisbursed is absorbed by that key and reconcile says so.
type emitter struct {
	crisis *demarchev1.Crisis
	prefix string
	seq    int
	// outbox holds the events numbered and not yet handed to a publishing
	// activity; sending is true while a batch is out, running while the
	// sender coroutine exists. They are workflow state: a replay rebuilds
	// them, so an event numbered before a crash is sent after it.
	outbox           []*demarchev1.PublishEventRequest
	sending, running bool
	// held stops the sender after the batch in flight: the crisis is about
	// to continue as new and carries the outbox over (under a steady stream
	// of controls it would otherwise never be empty).
	held bool
}

// publish numbers an event and puts it in the outbox; it does not wait for
// the stream. The sender hands everything the workflow task produced to one
// PublishCrisisEvents activity, scheduled in the same task completion as
// the update, signal or timer that made the events: a decision's answer does
// not wait for its events, and a task's events cost one activity, not one
// each. Order is kept: one batch at a time, in the order the events were
// made. The workflow waits for an empty outbox (flush) before it completes
// and before anything that must follow its events on the stream (a decision
// forwarded to a stage's workflow, a child's signal to its parent); when it
// continues as new it hands the unsent events to the next run instead (held).
func (e *emitter) publish(ctx workflow.Context, data proto.Message) error {
	payload, err := anypb.New(data)
	if err != nil {
		return fmt.Errorf("pack %T: %w", data, err)
	}
	e.seq++
	e.outbox = append(e.outbox, &demarchev1.PublishEventRequest{
		EventId:     ids.Derived(e.prefix, "run", workflow.GetInfo(ctx).WorkflowExecution.RunID, "event", strconv.Itoa(e.seq)),
		CrisisId:    e.crisis.GetId(),
		Region:      e.crisis.GetRegion(),
		CountryCode: e.crisis.GetCountryCode(),
		Time:        timestamppb.New(workflow.Now(ctx)),
		Data:        payload,
	})
	e.start(ctx)
	return nil
}

// publishOrLog is publish for a caller that has already made the change the
// event reports and has no error to return: a control's or a signal's
// handler, a stage finishing, a deadline's timer. Failing the control's
// update now would tell the operator the change did not happen when it did;
// failing the workflow task would stop the crisis until a new build. Nor is
// there anything to retry: publish only numbers and packs the event (the
// activity that sends it retries on its own, without limit), and packing
// fails only for an event the workflow built wrong (a proto marshal error,
// say invalid UTF-8 in a text), the same on every replay. So the event is
// logged, naming its type, and left out, not numbered: the stream keeps no
// gap and the crisis goes on.
func (e *emitter) publishOrLog(ctx workflow.Context, data proto.Message) {
	if err := e.publish(ctx, data); err != nil {
		workflow.GetLogger(ctx).Error("crisis event left out: it cannot be packed (a workflow bug)",
			"crisis_id", e.crisis.GetId(), "event", fmt.Sprintf("%T", data), "error", err)
	}
}

// start runs the sender if it is not running and there is something to send.
func (e *emitter) start(ctx workflow.Context) {
	if e.running || e.held || len(e.outbox) == 0 {
		return
	}
	e.running = true
	// A handler may publish after its own context was cancelled (a skipped
	// stage still reports why): events always go out.
	sendCtx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(sendCtx, e.send)
}

// send publishes the outbox, a batch at a time, until it is empty; the next
// publish starts it again. It does not stay for the workflow's life: a crisis
// waits for days with nothing to publish, and a coroutine (a goroutine in the
// worker's cache) per waiting crisis is memory for nothing.
//
// A regular activity, not a local one: the audit trail chains an event only
// with the history event it comes from (the activity's scheduled event, read
// from its task token), which a local activity does not have. Every event of
// a batch names that same history event; the batch's input lists their ids.
// The retry policy has no attempt limit: an event is never dropped because
// NATS was down for a while, and the event ids make every retry safe.
func (e *emitter) send(ctx workflow.Context) {
	ctx = withActivityOptions(ctx)
	for len(e.outbox) > 0 && !e.held {
		batch := &demarchev1.PublishEventBatch{Events: e.outbox}
		e.outbox, e.sending = nil, true
		err := workflow.ExecuteActivity(ctx, acts.PublishCrisisEvents, batch).Get(ctx, nil)
		e.sending = false
		if err != nil {
			// Only a batch the activity refuses as invalid ends here (a bug:
			// the workflow made it); it is logged with its first event.
			workflow.GetLogger(ctx).Error("crisis events not published", "first_event", batch.GetEvents()[0].GetEventId(), "events", len(batch.GetEvents()), "error", err)
		}
	}
	e.running = false
}

// idle reports whether every event numbered so far has been published.
func (e *emitter) idle() bool { return len(e.outbox) == 0 && !e.sending }

// flush waits until every event numbered so far is on the stream (not cut
// short by the caller's cancellation: events always go out), or until the
// outbox is held for the next run, which publishes it first.
func (e *emitter) flush(ctx workflow.Context) {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	// a disconnected context is never cancelled: Await returns no error
	_ = workflow.Await(ctx, func() bool { return e.idle() || e.held && !e.sending })
}

// scaled applies a drill's time compression to a playbook duration.
func scaled(d time.Duration, drill *demarchev1.DrillPolicy) time.Duration {
	s := drill.GetTimeScale()
	if drill == nil || s <= 0 || s >= 1 {
		return d
	}
	out := time.Duration(float64(d) * s)
	if out < time.Millisecond {
		out = time.Millisecond
	}
	return out
}

// newDeadline starts a deadline record at now.
func newDeadline(ctx workflow.Context, name string, stage demarchev1.Stage, spec *demarchev1.Deadline, drill *demarchev1.DrillPolicy) *demarchev1.DeadlineState {
	now := workflow.Now(ctx)
	return &demarchev1.DeadlineState{
		Name: name, Stage: stage, Status: demarchev1.DeadlineStatus_DEADLINE_STATUS_RUNNING,
		StartedAt: timestamppb.New(now),
		AtRiskAt:  timestamppb.New(now.Add(scaled(spec.GetAtRisk().AsDuration(), drill))),
		DueAt:     timestamppb.New(now.Add(scaled(spec.GetDue().AsDuration(), drill))),
	}
}

// watchDeadline runs a deadline as durable timers: at the at-risk mark and at
// the due time it sets the status and calls changed (which publishes and
// notifies). The work it guards keeps waiting; only the returned stop ends it.
func watchDeadline(ctx workflow.Context, d *demarchev1.DeadlineState, changed func(workflow.Context, *demarchev1.DeadlineState)) (stop func(status demarchev1.DeadlineStatus)) {
	tctx, cancel := workflow.WithCancel(ctx)
	workflow.Go(tctx, func(tctx workflow.Context) {
		// Publishing a change must not be cut short by stop: it runs on a
		// context of this coroutine that stop does not cancel.
		report, _ := workflow.NewDisconnectedContext(tctx)
		for _, mark := range []struct {
			at     time.Time
			status demarchev1.DeadlineStatus
		}{
			{d.GetAtRiskAt().AsTime(), demarchev1.DeadlineStatus_DEADLINE_STATUS_AT_RISK},
			{d.GetDueAt().AsTime(), demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED},
		} {
			// A deadline carried over from an earlier run (continue-as-new)
			// has already announced the marks it passed.
			if passed(d.GetStatus(), mark.status) {
				continue
			}
			if wait := mark.at.Sub(workflow.Now(tctx)); wait > 0 {
				if err := workflow.Sleep(tctx, wait); err != nil {
					return // stopped
				}
			}
			d.Status = mark.status
			changed(report, d)
		}
	})
	return func(status demarchev1.DeadlineStatus) {
		cancel()
		if d.GetStatus() != demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED {
			d.Status = status
		}
	}
}

// passed reports whether a deadline in status has already reached mark (or ended).
func passed(status, mark demarchev1.DeadlineStatus) bool {
	switch status {
	case demarchev1.DeadlineStatus_DEADLINE_STATUS_AT_RISK:
		return mark == demarchev1.DeadlineStatus_DEADLINE_STATUS_AT_RISK
	case demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED, demarchev1.DeadlineStatus_DEADLINE_STATUS_MET, demarchev1.DeadlineStatus_DEADLINE_STATUS_CANCELLED:
		return true
	}
	return false
}

// deadlineEvent is the event of a deadline's new status, if it has one.
func deadlineEvent(crisisID string, d *demarchev1.DeadlineState) proto.Message {
	switch d.GetStatus() {
	case demarchev1.DeadlineStatus_DEADLINE_STATUS_AT_RISK:
		return &demarchev1.DeadlineAtRisk{CrisisId: crisisID, Deadline: proto.Clone(d).(*demarchev1.DeadlineState)}
	case demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED:
		return &demarchev1.DeadlineBreached{CrisisId: crisisID, Deadline: proto.Clone(d).(*demarchev1.DeadlineState)}
	}
	return nil
}
