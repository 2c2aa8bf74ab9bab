package crisis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Activities are the crisis workflow's side effects, holding what they need:
// the event publisher and a NATS connection to the roster and funding
// services (reached by request, never by import). Each is idempotent.
// Workflows call them by method value (acts.ReserveExperts) with concrete
// request and result types; the method names are the activity names the
// histories record.
type Activities struct {
	Bus *eventbus.Publisher
	NC  *nats.Conn
}

// acts is how workflows name the activities: a nil receiver whose method
// values carry the names and types, never called in workflow code.
var acts *Activities

// call runs an activity by method value and returns its typed result.
func call[Req any, Res any, PRes interface{ *Res }](ctx workflow.Context, fn func(context.Context, Req) (PRes, error), req Req) (PRes, error) {
	out := PRes(new(Res))
	if err := workflow.ExecuteActivity(ctx, fn, req).Get(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// PublishCrisisEvents publishes a workflow task's events on the crisis
// stream, in order, and returns the ids it published. Each event id set by
// the workflow is the Nats-Msg-Id, so a retry after a lost acknowledgement
// (or after half the batch went out) stores nothing twice. A batch with an
// invalid event is refused whole, before anything is published.
func (a *Activities) PublishCrisisEvents(ctx context.Context, batch *demarchev1.PublishEventBatch) (*demarchev1.PublishEventBatch, error) {
	if len(batch.GetEvents()) == 0 {
		return nil, errs.InvalidInput(errors.New("publish crisis events: the batch is empty"))
	}
	events := make([]eventbus.Event, len(batch.GetEvents()))
	origin := originOf(ctx)
	for i, req := range batch.GetEvents() {
		if err := req.Validate(); err != nil {
			return nil, errs.InvalidInput(fmt.Errorf("event %d of %d: %w", i+1, len(batch.GetEvents()), err))
		}
		data, err := req.GetData().UnmarshalNew()
		if err != nil {
			return nil, errs.InvalidInput(fmt.Errorf("event %s: unpack data %s: %w", req.GetEventId(), req.GetData().GetTypeUrl(), err))
		}
		events[i] = eventbus.Event{ID: req.GetEventId(), Source: EventSource, Subject: req.GetCrisisId(), Time: req.GetTime().AsTime(), Data: data, Origin: origin}
	}
	for i, req := range batch.GetEvents() {
		route := eventbus.Route{Region: req.GetRegion(), Country: req.GetCountryCode(), CrisisID: req.GetCrisisId()}
		dup, err := a.Bus.Publish(ctx, route, events[i])
		if err != nil {
			return nil, fmt.Errorf("publish crisis event %s (%d of %d): %w", req.GetEventId(), i+1, len(events), err)
		}
		if dup {
			activity.GetLogger(ctx).Info("event already on the stream; stored once", "event_id", req.GetEventId())
			continue
		}
		observe(req, events[i].Data)
	}
	return batch, nil
}

// seriesAtZero makes the worker's alarm series present before anything
// happened, on the process that runs the worker (an alert on a rise needs the
// series before its first rise). Metrics only: no workflow code changes.
//
// The deadline-breach counters: one per deadline the workflows keep (a
// decision per stage, the standby team's deployment, the fact-finding report).
//
// The warning-to-action histogram of a threshold crossing (opened by the
// early-warning service, not a drill), per region and crisis type: the
// series its p99 alert reads. Crises opened by a person (opened_by is their
// credential's subject) and drills appear at their first opening.
func seriesAtZero() {
	for v := range demarchev1.Stage_name {
		st := demarchev1.Stage(v)
		if st == demarchev1.Stage_STAGE_UNSPECIFIED {
			continue
		}
		metrics.DeadlineBreaches.WithLabelValues(st.Slug()+" decision", st.Slug())
	}
	metrics.DeadlineBreaches.WithLabelValues("standby team deployment", demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT.Slug())
	metrics.DeadlineBreaches.WithLabelValues("fact-finding report", demarchev1.Stage_STAGE_FACT_FINDING.Slug())
	for r := range demarchev1.Region_name {
		region := demarchev1.Region(r)
		if region == demarchev1.Region_REGION_UNSPECIFIED {
			continue
		}
		for t := range demarchev1.CrisisType_name {
			typ := demarchev1.CrisisType(t)
			if typ == demarchev1.CrisisType_CRISIS_TYPE_UNSPECIFIED {
				continue
			}
			metrics.WarningToAction.WithLabelValues("opened", EarlyWarningOpener, region.Slug(), typ.Slug(), metrics.Bool(false))
		}
	}
}

// EarlyWarningOpener is opened_by on a crisis the early-warning service
// opened from a threshold crossing (services/earlywarning.ServiceName).
const EarlyWarningOpener = "earlywarning"

// observe turns a published event into the platform's metrics: counted once,
// when the stream stored it (a retry's duplicate is not counted again).
func observe(req *demarchev1.PublishEventRequest, data proto.Message) {
	et, err := eventbus.TypeOf(data)
	if err != nil {
		return
	}
	metrics.EventsPublished.WithLabelValues(et.Token).Inc()
	region := req.GetRegion().Slug()
	switch e := data.(type) {
	case *demarchev1.CrisisOpened:
		c := e.GetCrisis()
		if first := c.GetFirstSignalAt(); first != nil {
			metrics.WarningToAction.WithLabelValues("opened", c.GetOpenedBy(), region, c.GetCrisisType().Slug(), metrics.Bool(c.GetDrill())).
				Observe(time.Since(first.AsTime()).Seconds())
		}
	case *demarchev1.StageCompleted:
		metrics.StageDuration.WithLabelValues(e.GetStage().Slug(), region).Observe(e.GetDuration().AsDuration().Seconds())
	case *demarchev1.DecisionRecorded:
		metrics.Decisions.WithLabelValues(e.GetDecision().GetKind()).Inc()
	case *demarchev1.DeadlineBreached:
		metrics.DeadlineBreaches.WithLabelValues(e.GetDeadline().GetName(), e.GetDeadline().GetStage().Slug()).Inc()
	}
}

// DisburseFunds pays an approved request through the funding service (keyed:
// a retried disbursement pays once) and records it as a FundsDisbursed event
// whose id is the same key.
func (a *Activities) DisburseFunds(ctx context.Context, req *demarchev1.DisburseRequest) (*demarchev1.FundsDisbursed, error) {
	var res demarchev1.DisburseResult
	if err := natsrpc.Call(ctx, a.NC, natsrpc.FundingDisburse, &demarchev1.DisburseCall{
		CrisisId: req.GetCrisisId(), RequestId: req.GetRequest().GetRequestId(), Key: req.GetDisbursementKey(), Drill: req.GetDrill(),
		Decision: req.GetDecision(),
	}, &res); err != nil {
		return nil, serviceError(err)
	}
	paid := &demarchev1.FundsDisbursed{
		CrisisId: req.GetCrisisId(), RequestId: req.GetRequest().GetRequestId(), Fund: res.GetEntry().GetFund(),
		AmountUsd: res.GetEntry().GetAmountUsd(), DisbursementKey: req.GetDisbursementKey(),
	}
	if err := paid.Validate(); err != nil {
		return nil, errs.InvalidInput(err)
	}
	route := eventbus.Route{Region: req.GetRegion(), Country: req.GetCountryCode(), CrisisID: req.GetCrisisId()}
	if _, err := a.Bus.Publish(ctx, route, eventbus.Event{
		ID: req.GetDisbursementKey(), Source: EventSource, Subject: req.GetCrisisId(), Time: res.GetEntry().GetAt().AsTime(), Data: paid,
		Origin: originOf(ctx),
	}); err != nil {
		return nil, fmt.Errorf("record disbursement %s: %w", req.GetDisbursementKey(), err)
	}
	return paid, nil
}

// FileFundingRequest files a request with the funding service (idempotent by
// crisis and request id).
func (a *Activities) FileFundingRequest(ctx context.Context, call *demarchev1.FundingRequestCall) (*demarchev1.FundingRecord, error) {
	var rec demarchev1.FundingRecord
	if err := natsrpc.Call(ctx, a.NC, natsrpc.FundingRequest, call, &rec); err != nil {
		return nil, serviceError(err)
	}
	return &rec, nil
}

// DecideFunding records an approval or rejection with the funding service,
// which enforces four-eyes too.
func (a *Activities) DecideFunding(ctx context.Context, call *demarchev1.FundingDecideCall) (*demarchev1.FundingRecord, error) {
	var rec demarchev1.FundingRecord
	if err := natsrpc.Call(ctx, a.NC, natsrpc.FundingDecide, call, &rec); err != nil {
		return nil, serviceError(err)
	}
	return &rec, nil
}

// ReserveExperts books the envoy (role "envoy") and the standby team (roles
// "standby-1", ...) on the roster; idempotent per crisis and role. If one
// expert cannot be booked, the bookings this call made are released. A
// drill books in the roster's shadow space.
func (a *Activities) ReserveExperts(ctx context.Context, req *demarchev1.ReserveExpertsRequest) (*demarchev1.ReserveExpertsResult, error) {
	type booking struct{ role, expert string }
	var bookings []booking
	if req.GetEnvoy() != "" { // none: the standby team alone, in support of another's process
		bookings = append(bookings, booking{"envoy", req.GetEnvoy()})
	}
	for i, e := range req.GetStandbyTeam() {
		bookings = append(bookings, booking{fmt.Sprintf("standby-%d", i+1), e})
	}
	out := &demarchev1.ReserveExpertsResult{}
	var made []string
	for _, b := range bookings {
		var res demarchev1.ReserveResponse
		err := natsrpc.Call(ctx, a.NC, natsrpc.RosterReserve, &demarchev1.ReserveRequest{
			CrisisId: req.GetCrisisId(), Role: b.role, ExpertId: b.expert, ReservedBy: req.GetPrincipal(), Drill: req.GetDrill(),
			Decision: req.GetDecision(),
		}, &res)
		if err == nil && res.GetAssignment().GetExpertId() != b.expert {
			err = fmt.Errorf("%w: role %s of crisis %s is already held by %s", errs.ErrConflict, b.role, req.GetCrisisId(), res.GetAssignment().GetExpertId())
		}
		if err != nil {
			for _, role := range made {
				if rerr := natsrpc.Call(ctx, a.NC, natsrpc.RosterRelease, &demarchev1.ReleaseRequest{CrisisId: req.GetCrisisId(), Role: role, Drill: req.GetDrill(), Decision: req.GetDecision()}, &demarchev1.ReleaseResponse{}); rerr != nil {
					activity.GetLogger(ctx).Warn("role reserved by this failed decision not released; release it by hand", "crisis", req.GetCrisisId(), "role", role, "error", rerr)
				}
			}
			return nil, serviceError(err)
		}
		if !res.GetReplayed() {
			made = append(made, b.role)
		}
		out.Assignments = append(out.Assignments, res.GetAssignment())
	}
	return out, nil
}

// ReleaseExperts frees the roster bookings of a crisis, every one (at
// closure) or the roles named (a standby team's hand-back), in the booking
// space of the crisis (a drill's are shadow bookings).
func (a *Activities) ReleaseExperts(ctx context.Context, req *demarchev1.AssignmentsRequest) error {
	crisisID := req.GetCrisisId()
	var list demarchev1.AssignmentsResponse
	if err := natsrpc.Call(ctx, a.NC, natsrpc.RosterAssignments, &demarchev1.AssignmentsRequest{CrisisId: crisisID, Drill: req.GetDrill()}, &list); err != nil {
		return serviceError(err)
	}
	for _, as := range list.GetAssignments() {
		if len(req.GetRoles()) > 0 && !slices.Contains(req.GetRoles(), as.GetRole()) {
			continue
		}
		if err := natsrpc.Call(ctx, a.NC, natsrpc.RosterRelease, &demarchev1.ReleaseRequest{CrisisId: crisisID, Role: as.GetRole(), Drill: req.GetDrill(), Decision: req.GetDecision()}, &demarchev1.ReleaseResponse{}); err != nil {
			return serviceError(err)
		}
	}
	return nil
}

// PickExperts asks the roster for the best available senior envoy and standby
// expert of a region: what a drill appoints (in the drill's own shadow
// bookings, so neither real bookings nor other drills' matter).
func (a *Activities) PickExperts(ctx context.Context, req *demarchev1.PickExpertsRequest) (*demarchev1.ReserveExpertsRequest, error) {
	out := &demarchev1.ReserveExpertsRequest{}
	for _, kind := range []demarchev1.ExpertKind{demarchev1.ExpertKind_EXPERT_KIND_SENIOR_ENVOY, demarchev1.ExpertKind_EXPERT_KIND_STANDBY_EXPERT} {
		var res demarchev1.RosterSearchResponse
		if err := natsrpc.Call(ctx, a.NC, natsrpc.RosterSearch, &demarchev1.RosterSearchRequest{Kind: kind, Region: req.GetRegion(), Limit: 1, Drill: req.GetDrill(), CrisisId: req.GetCrisisId()}, &res); err != nil {
			return nil, serviceError(err)
		}
		if len(res.GetCandidates()) == 0 {
			return nil, errs.RuleViolation(fmt.Sprintf("no available %s on the roster", kind.Slug()), nil)
		}
		id := res.GetCandidates()[0].GetExpert().GetId()
		if kind == demarchev1.ExpertKind_EXPERT_KIND_SENIOR_ENVOY {
			out.Envoy = id
		} else {
			out.StandbyTeam = []string{id}
		}
	}
	return out, nil
}

// serviceError makes a service's refusal final (no retry can change it) and
// keeps its kind: errs.ToTemporal types it by its sentinel (a booked envoy is
// a conflict, a fund the service lacks is not found), so the person who asked
// gets the status of what the service said. Transport failures and
// unavailable services stay retryable.
func serviceError(err error) error { return errs.ToTemporal(err) }

// Register puts the workflows and the activities on a worker, under the
// exported names the histories record.
func Register(w worker.Registry, a *Activities) {
	RegisterWorkflows(w)
	w.RegisterActivity(a)
	seriesAtZero()
}

// RegisterWorkflows registers the workflows alone, e.g. on a replayer.
func RegisterWorkflows(w worker.WorkflowRegistry) {
	w.RegisterWorkflowWithOptions(CrisisResponse, workflow.RegisterOptions{Name: WorkflowName})
	w.RegisterWorkflowWithOptions(reportsOutcome(FactFindingMission), workflow.RegisterOptions{Name: FactFindingWorkflow})
	w.RegisterWorkflowWithOptions(reportsOutcome(EnvoyDeployment), workflow.RegisterOptions{Name: EnvoyWorkflow})
	w.RegisterWorkflowWithOptions(reportsOutcome(RapidResponseFunding), workflow.RegisterOptions{Name: FundingWorkflow})
	w.RegisterWorkflowWithOptions(reportsOutcome(SustainedFollowUp), workflow.RegisterOptions{Name: FollowUpWorkflow})
}
