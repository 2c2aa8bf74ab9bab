package crisis

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// ErrRuleViolation is the application error type of a rejected decision; its
// message names the rule that failed.
const ErrRuleViolation = "RuleViolation"

func rule(name, format string, args ...any) error {
	msg := fmt.Sprintf("rule %s: %s", name, fmt.Sprintf(format, args...))
	return temporal.NewApplicationError(msg, ErrRuleViolation)
}

// stageRun is one run of one stage.
type stageRun struct {
	rec      *demarchev1.StageRecord
	spec     *demarchev1.StageSpec
	deadline *demarchev1.DeadlineState
	stopDl   func(demarchev1.DeadlineStatus)
	cancel   workflow.CancelFunc
	child    workflow.ChildWorkflowFuture
	childID  string

	mandate     *demarchev1.FactFindingMandate
	reported    bool
	envoy       *demarchev1.EnvoyAppointment
	deployed    bool
	requests    []*fundingRequest
	checkInsDue int32
	checkIns    int32

	// A decision whose service call is in flight; validators refuse a second.
	inFlight string
}

type fundingRequest struct {
	req       *demarchev1.FundingRequest
	requester string
	decided   bool
}

// lifecycle is the crisis workflow's state; rebuilt identically on replay.
type lifecycle struct {
	wfID     string
	crisis   *demarchev1.Crisis
	pb       *demarchev1.Playbook
	drill    *demarchev1.DrillPolicy
	em       *emitter
	timeline []*demarchev1.StageRecord
	active   []*stageRun
	runs     map[demarchev1.Stage]int32
	reached  map[demarchev1.Stage]bool
	skipped  map[demarchev1.Stage]string // skipped before they were reached

	decisions   []*demarchev1.DecisionRecord
	deadlines   []*demarchev1.DeadlineState
	partners    []*demarchev1.PartnerRoleAck
	warnings    []*demarchev1.Warning
	firstAction *time.Time
	disbursed   int64
	closing     bool
	closure     *demarchev1.DecisionRecord
	closedAt    *timestamppb.Timestamp
	figures     *demarchev1.ClosureFigures
	// services: appointments book the roster, funding goes through the
	// funding service (runs recorded before this existed did neither).
	services bool
	// activeSA: DemarcheActiveStages is kept current (runs recorded before
	// it existed do not upsert it).
	activeSA bool
}

// versionActiveStages marks runs that keep DemarcheActiveStages current.
const versionActiveStages = "active-stages-attribute"

// versionServices marks runs whose decisions call the roster and funding services.
const versionServices = "domain-services"

// runLifecycle drives a crisis by its playbook: phases in order, the stages of
// a phase side by side, each waiting for the decisions people take (or, in a
// drill, the drill policy), then closure with its figures.
func runLifecycle(ctx workflow.Context, in *demarchev1.CrisisWorkflowInput) (*demarchev1.CrisisState, error) {
	if in.GetPlaybook() == nil {
		return nil, invalidInput(errors.New("playbook is required: open crises with crisis.Open, which copies the crisis type's playbook"))
	}
	l := &lifecycle{
		wfID:    workflow.GetInfo(ctx).WorkflowExecution.ID,
		crisis:  proto.Clone(in.GetCrisis()).(*demarchev1.Crisis),
		pb:      in.GetPlaybook(),
		drill:   in.GetDrillPolicy(),
		runs:    map[demarchev1.Stage]int32{},
		reached: map[demarchev1.Stage]bool{},
		skipped: map[demarchev1.Stage]string{},
	}
	if l.drill != nil {
		l.crisis.Drill = true // drills are always marked, and kept out of real figures
	}
	l.em = &emitter{crisis: l.crisis, prefix: l.crisis.GetId()}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (*demarchev1.CrisisState, error) { return l.snapshot(ctx), nil }); err != nil {
		return nil, fmt.Errorf("register query %s: %w", QueryState, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecide,
		func(ctx workflow.Context, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error) {
			return l.decide(ctx, req, false)
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req *demarchev1.DecisionRequest) error {
			return l.validateDecision(ctx, req)
		}},
	); err != nil {
		return nil, fmt.Errorf("register update %s: %w", UpdateDecide, err)
	}
	l.services = workflow.GetVersion(ctx, versionServices, workflow.DefaultVersion, 1) == 1
	l.activeSA = workflow.GetVersion(ctx, versionActiveStages, workflow.DefaultVersion, 1) == 1
	workflow.Go(ctx, l.serveSignals)
	if l.drill != nil {
		workflow.Go(ctx, l.runDrillPolicy)
	}

	if err := upsertCrisisAttributes(ctx, l.crisis); err != nil {
		return nil, err
	}
	if err := l.em.publish(ctx, &demarchev1.CrisisOpened{Crisis: l.crisis}); err != nil {
		return nil, err
	}
	for _, phase := range l.pb.GetPhases() {
		for _, spec := range phase.GetStages() {
			if reason, ok := l.skipped[spec.GetStage()]; ok {
				l.recordSkippedAhead(ctx, spec.GetStage(), reason)
				continue
			}
			if err := l.start(ctx, spec, ""); err != nil {
				return nil, err
			}
		}
		if err := workflow.Await(ctx, func() bool { return len(l.active) == 0 }); err != nil {
			return nil, err
		}
	}
	l.closing = true
	if err := workflow.Await(ctx, func() bool { return l.closure != nil && len(l.active) == 0 }); err != nil {
		return nil, err
	}
	if err := l.close(ctx); err != nil {
		return nil, err
	}
	// Let update handlers that are still publishing finish before completing.
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return nil, err
	}
	return l.snapshot(ctx), nil
}

// ---- stages ------------------------------------------------------------------

func (l *lifecycle) spec(stage demarchev1.Stage) *demarchev1.StageSpec {
	for _, ph := range l.pb.GetPhases() {
		for _, s := range ph.GetStages() {
			if s.GetStage() == stage {
				return s
			}
		}
	}
	return nil
}

// activeRun is the running run of a stage; a run that is finishing (its
// completion event on the way) no longer counts.
func (l *lifecycle) activeRun(stage demarchev1.Stage) *stageRun {
	for _, r := range l.active {
		if r.rec.GetStage() == stage && r.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			return r
		}
	}
	return nil
}

// start enters a stage: timeline, search attribute, event, decision deadline,
// and the child workflow of the stages that have one.
func (l *lifecycle) start(ctx workflow.Context, spec *demarchev1.StageSpec, reopenReason string) error {
	stage := spec.GetStage()
	now := workflow.Now(ctx)
	l.runs[stage]++
	l.reached[stage] = true
	run := &stageRun{spec: spec, rec: &demarchev1.StageRecord{
		Stage: stage, EnteredAt: timestamppb.New(now), Status: demarchev1.StageStatus_STAGE_STATUS_RUNNING,
		Run: l.runs[stage], Reason: reopenReason,
	}}
	l.timeline = append(l.timeline, run.rec)
	l.active = append(l.active, run)
	if err := workflow.UpsertTypedSearchAttributes(ctx, l.stageAttributes(stage)...); err != nil {
		return fmt.Errorf("enter %s: search attributes: %w", stage.Slug(), err)
	}
	if err := l.em.publish(ctx, &demarchev1.StageEntered{CrisisId: l.crisis.GetId(), Stage: stage, EnteredAt: run.rec.GetEnteredAt()}); err != nil {
		return err
	}
	if spec.GetDeadline() != nil {
		run.deadline = newDeadline(ctx, stage.Slug()+" decision", stage, spec.GetDeadline(), l.drill)
		l.deadlines = append(l.deadlines, run.deadline)
		run.stopDl = watchDeadline(ctx, run.deadline, l.deadlineChanged)
	}
	childType := map[demarchev1.Stage]string{
		demarchev1.Stage_STAGE_FACT_FINDING:           FactFindingWorkflow,
		demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT:       EnvoyWorkflow,
		demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING: FundingWorkflow,
		demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP:    FollowUpWorkflow,
	}[stage]
	if childType == "" {
		return nil
	}
	cctx, cancel := workflow.WithCancel(ctx)
	run.cancel = cancel
	run.childID = ChildWorkflowID(l.crisis.GetId(), stage, run.rec.GetRun())
	cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{WorkflowID: run.childID, TaskQueue: TaskQueue})
	run.child = workflow.ExecuteChildWorkflow(cctx, childType, &demarchev1.StageWorkflowInput{
		Crisis: l.crisis, ParentWorkflowId: l.wfID, Playbook: l.pb, DrillPolicy: l.drill, Run: run.rec.GetRun(),
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		var out demarchev1.StageOutcome
		err := run.child.Get(ctx, &out)
		if run.rec.GetStatus() != demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			return // skipped meanwhile
		}
		if err != nil {
			workflow.GetLogger(ctx).Error("stage child failed; the stage stays open for an operator to skip or reopen", "stage", stage.Slug(), "error", err)
			return
		}
		l.disbursed += out.GetDisbursedUsd()
		l.finish(ctx, run, demarchev1.StageStatus_STAGE_STATUS_COMPLETED, "")
	})
	return nil
}

// finish ends a stage run, completed or skipped.
func (l *lifecycle) finish(ctx workflow.Context, run *stageRun, status demarchev1.StageStatus, reason string) {
	now := workflow.Now(ctx)
	run.rec.Status = status
	run.rec.CompletedAt = timestamppb.New(now)
	run.rec.Duration = durationpb.New(now.Sub(run.rec.GetEnteredAt().AsTime()))
	if reason != "" {
		run.rec.Reason = reason
	}
	if run.stopDl != nil {
		final := demarchev1.DeadlineStatus_DEADLINE_STATUS_MET
		if status == demarchev1.StageStatus_STAGE_STATUS_SKIPPED {
			final = demarchev1.DeadlineStatus_DEADLINE_STATUS_CANCELLED
		}
		run.stopDl(final)
	}
	if status == demarchev1.StageStatus_STAGE_STATUS_SKIPPED && run.cancel != nil {
		run.cancel()
	}
	if status == demarchev1.StageStatus_STAGE_STATUS_COMPLETED {
		// Published before the run leaves the active set, so the next phase's
		// StageEntered always follows this StageCompleted on the stream.
		_ = l.em.publish(ctx, &demarchev1.StageCompleted{
			CrisisId: l.crisis.GetId(), Stage: run.rec.GetStage(), CompletedAt: run.rec.GetCompletedAt(), Duration: run.rec.GetDuration(),
		})
	}
	for i, r := range l.active {
		if r == run {
			l.active = append(l.active[:i], l.active[i+1:]...)
			break
		}
	}
	if cur := l.currentStage(); cur != demarchev1.Stage_STAGE_UNSPECIFIED {
		_ = workflow.UpsertTypedSearchAttributes(ctx, l.stageAttributes(cur)...)
	}
}

func (l *lifecycle) recordSkippedAhead(ctx workflow.Context, stage demarchev1.Stage, reason string) {
	now := timestamppb.New(workflow.Now(ctx))
	l.runs[stage]++
	l.reached[stage] = true
	l.timeline = append(l.timeline, &demarchev1.StageRecord{
		Stage: stage, EnteredAt: now, CompletedAt: now, Duration: durationpb.New(0),
		Status: demarchev1.StageStatus_STAGE_STATUS_SKIPPED, Reason: reason, Run: l.runs[stage],
	})
}

// stageAttributes are the search attributes of the stage(s) the crisis is in.
func (l *lifecycle) stageAttributes(current demarchev1.Stage) []temporal.SearchAttributeUpdate {
	out := []temporal.SearchAttributeUpdate{temporalx.SAStage.ValueSet(current.Slug())}
	if l.activeSA {
		running := []string{}
		for _, r := range l.active {
			if r.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
				running = append(running, r.rec.GetStage().Slug())
			}
		}
		out = append(out, temporalx.SAActiveStages.ValueSet(running))
	}
	return out
}

// currentStage is the most recently entered stage still running.
func (l *lifecycle) currentStage() demarchev1.Stage {
	if l.closedAt != nil {
		return demarchev1.Stage_STAGE_CLOSED
	}
	if n := len(l.active); n > 0 {
		return l.active[n-1].rec.GetStage()
	}
	return demarchev1.Stage_STAGE_UNSPECIFIED
}

func (l *lifecycle) deadlineChanged(ctx workflow.Context, d *demarchev1.DeadlineState) {
	if ev := deadlineEvent(l.crisis.GetId(), d); ev != nil {
		_ = l.em.publish(ctx, ev)
	}
}

// ---- decisions ---------------------------------------------------------------

var decisionStage = map[string]demarchev1.Stage{
	"triage":                demarchev1.Stage_STAGE_WARNING,
	"good-offices":          demarchev1.Stage_STAGE_GOOD_OFFICES,
	"fact-finding-mandate":  demarchev1.Stage_STAGE_FACT_FINDING,
	"fact-finding-report":   demarchev1.Stage_STAGE_FACT_FINDING,
	"envoy-appointment":     demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT,
	"standby-team-deployed": demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT,
	"funding-request":       demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING,
	"funding-decision":      demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING,
	"follow-up-check-in":    demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP,
	"closure":               demarchev1.Stage_STAGE_CLOSED,
}

// validateDecision is the update validator: it reads state, never changes it,
// and a rejection leaves no trace in the history.
func (l *lifecycle) validateDecision(ctx workflow.Context, req *demarchev1.DecisionRequest) error {
	if err := req.Validate(); err != nil {
		return temporal.NewApplicationError(err.Error(), ErrInvalidInput)
	}
	kind := req.DecisionKind()
	if l.closure != nil {
		return rule("open-crisis", "the crisis is closed; no decision can be added")
	}
	if kind == "closure" {
		if !l.closing || len(l.active) > 0 {
			return rule("closure-last", "the crisis can close only after every stage has ended (running: %s)", l.activeList())
		}
		return nil
	}
	stage := decisionStage[kind]
	run := l.activeRun(stage)
	if run == nil {
		return rule("stage-running", "a %s decision needs the %s stage running (running: %s)", kind, stage.Slug(), l.activeList())
	}
	if run.inFlight != "" {
		return rule("one-at-a-time", "a %s decision is being recorded for %s; try again in a moment", run.inFlight, stage.Slug())
	}
	switch d := req.GetDecision().(type) {
	case *demarchev1.DecisionRequest_FactFindingMandate:
		if run.mandate != nil {
			return rule("one-mandate", "the fact-finding mandate was already recorded")
		}
		if !d.FactFindingMandate.GetReportDue().AsTime().After(workflow.Now(ctx)) {
			return rule("report-due-future", "report_due %s is not in the future", d.FactFindingMandate.GetReportDue().AsTime().Format(time.RFC3339))
		}
	case *demarchev1.DecisionRequest_FactFindingReport:
		if run.mandate == nil {
			return rule("mandate-first", "record the fact-finding mandate before its report")
		}
	case *demarchev1.DecisionRequest_EnvoyAppointment:
		if run.envoy != nil {
			return rule("one-envoy", "an envoy (%s) was already appointed", run.envoy.GetEnvoy())
		}
	case *demarchev1.DecisionRequest_StandbyTeamDeployed:
		if run.envoy == nil {
			return rule("appointment-first", "appoint the envoy and the standby team before confirming deployment")
		}
	case *demarchev1.DecisionRequest_FundingRequest:
		for _, fr := range run.requests {
			if fr.req.GetRequestId() == d.FundingRequest.GetRequestId() {
				return rule("unique-request", "request %s already exists", fr.req.GetRequestId())
			}
			if !fr.decided {
				return rule("one-open-request", "request %s is still awaiting a decision", fr.req.GetRequestId())
			}
		}
	case *demarchev1.DecisionRequest_FundingDecision:
		fr := run.request(d.FundingDecision.GetRequestId())
		switch {
		case fr == nil:
			return rule("known-request", "no funding request %s (open: %s)", d.FundingDecision.GetRequestId(), run.openRequests())
		case fr.decided:
			return rule("decide-once", "request %s was already decided", fr.req.GetRequestId())
		case fr.requester == req.GetPrincipal():
			return rule("four-eyes", "%s requested %s and cannot approve or reject it; another principal must", req.GetPrincipal(), fr.req.GetRequestId())
		}
	}
	return nil
}

func (r *stageRun) request(id string) *fundingRequest {
	for _, fr := range r.requests {
		if fr.req.GetRequestId() == id {
			return fr
		}
	}
	return nil
}

func (r *stageRun) openRequests() string {
	var ids []string
	for _, fr := range r.requests {
		if !fr.decided {
			ids = append(ids, fr.req.GetRequestId())
		}
	}
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

func (l *lifecycle) activeList() string {
	if len(l.active) == 0 {
		return "none"
	}
	names := make([]string, len(l.active))
	for i, r := range l.active {
		names[i] = r.rec.GetStage().Slug()
	}
	return strings.Join(names, ", ")
}

// decide records a validated decision: state first (so the next validator sees
// it), then the event, then the stage's child.
func (l *lifecycle) decide(ctx workflow.Context, req *demarchev1.DecisionRequest, automatic bool) (*demarchev1.DecisionRecord, error) {
	kind := req.DecisionKind()
	if err := l.callServices(ctx, req); err != nil {
		return nil, err
	}
	now := workflow.Now(ctx)
	rec := &demarchev1.DecisionRecord{
		Number: int32(len(l.decisions) + 1), Kind: kind, Stage: decisionStage[kind], Principal: req.GetPrincipal(),
		Rationale: req.GetRationale(), DecidedAt: timestamppb.New(now), Request: req, Automatic: automatic,
	}
	l.decisions = append(l.decisions, rec)
	if l.firstAction == nil {
		l.firstAction = &now
	}
	run := l.activeRun(rec.GetStage())
	forward := false
	complete := false
	switch d := req.GetDecision().(type) {
	case *demarchev1.DecisionRequest_Triage, *demarchev1.DecisionRequest_GoodOffices:
		complete = true
	case *demarchev1.DecisionRequest_FactFindingMandate:
		run.mandate, forward = d.FactFindingMandate, true
	case *demarchev1.DecisionRequest_FactFindingReport:
		run.reported, forward = true, true
	case *demarchev1.DecisionRequest_EnvoyAppointment:
		run.envoy, forward = d.EnvoyAppointment, true
	case *demarchev1.DecisionRequest_StandbyTeamDeployed:
		run.deployed, forward = true, true
	case *demarchev1.DecisionRequest_FundingRequest:
		run.requests = append(run.requests, &fundingRequest{req: d.FundingRequest, requester: req.GetPrincipal()})
		forward = true
	case *demarchev1.DecisionRequest_FundingDecision:
		run.request(d.FundingDecision.GetRequestId()).decided = true
		forward = true
	case *demarchev1.DecisionRequest_FollowUpCheckIn:
		run.checkIns++
		forward = true
	case *demarchev1.DecisionRequest_Closure:
		l.closure = rec
	}
	if err := l.em.publish(ctx, &demarchev1.DecisionRecorded{CrisisId: l.crisis.GetId(), Decision: rec}); err != nil {
		return nil, err
	}
	if complete && run.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
		l.finish(ctx, run, demarchev1.StageStatus_STAGE_STATUS_COMPLETED, "")
	}
	if forward && run.child != nil {
		if err := run.child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			return nil, fmt.Errorf("%s: stage workflow not running: %w", kind, err)
		}
		if err := run.child.SignalChildWorkflow(ctx, SignalStageDecision, rec).Get(ctx, nil); err != nil {
			return nil, fmt.Errorf("%s: forward to %s: %w", kind, run.childID, err)
		}
	}
	return rec, nil
}

// callServices books the roster for an appointment and files funding requests
// and decisions with the funding service, before the decision is recorded: a
// refusal (expert booked, fund short, four-eyes) fails the update and records
// nothing. While the call is in flight the stage accepts no other decision.
func (l *lifecycle) callServices(ctx workflow.Context, req *demarchev1.DecisionRequest) error {
	if !l.services {
		return nil
	}
	kind := req.DecisionKind()
	var activity string
	var arg, result any
	switch d := req.GetDecision().(type) {
	case *demarchev1.DecisionRequest_EnvoyAppointment:
		activity, result = ActivityReserveExperts, &demarchev1.ReserveExpertsResult{}
		arg = &demarchev1.ReserveExpertsRequest{CrisisId: l.crisis.GetId(), Envoy: d.EnvoyAppointment.GetEnvoy(),
			StandbyTeam: d.EnvoyAppointment.GetStandbyTeam(), Principal: req.GetPrincipal()}
	case *demarchev1.DecisionRequest_FundingRequest:
		activity, result = ActivityFileFundingRequest, &demarchev1.FundingRecord{}
		arg = &demarchev1.FundingRequestCall{CrisisId: l.crisis.GetId(), Request: d.FundingRequest, RequestedBy: req.GetPrincipal()}
	case *demarchev1.DecisionRequest_FundingDecision:
		activity, result = ActivityDecideFunding, &demarchev1.FundingRecord{}
		arg = &demarchev1.FundingDecideCall{CrisisId: l.crisis.GetId(), RequestId: d.FundingDecision.GetRequestId(),
			Approve: d.FundingDecision.GetApprove(), DecidedBy: req.GetPrincipal()}
	default:
		return nil
	}
	run := l.activeRun(decisionStage[kind])
	run.inFlight = kind
	defer func() { run.inFlight = "" }()
	if err := workflow.ExecuteActivity(withServiceOptions(ctx), activity, arg).Get(ctx, result); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return rule("service", "%s refused by its service: %s", kind, appErr.Message())
		}
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

// pendingDecisions lists what the crisis waits for, in stage order.
func (l *lifecycle) pendingDecisions() []*demarchev1.PendingDecision {
	var out []*demarchev1.PendingDecision
	add := func(kind string, stage demarchev1.Stage, who string, due *timestamppb.Timestamp) {
		out = append(out, &demarchev1.PendingDecision{Kind: kind, Stage: stage, Who: who, DueAt: due})
	}
	for _, r := range l.active {
		if r.rec.GetStatus() != demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			continue
		}
		due := r.deadline.GetDueAt()
		switch r.rec.GetStage() {
		case demarchev1.Stage_STAGE_WARNING:
			add("triage", r.rec.GetStage(), "duty officer", due)
		case demarchev1.Stage_STAGE_GOOD_OFFICES:
			add("good-offices", r.rec.GetStage(), "head of department, for the Secretary-General", due)
		case demarchev1.Stage_STAGE_FACT_FINDING:
			if r.mandate == nil {
				add("fact-finding-mandate", r.rec.GetStage(), "desk officer, with the mandating body", due)
			} else if !r.reported {
				add("fact-finding-report", r.rec.GetStage(), "head of the fact-finding mission", r.mandate.GetReportDue())
			}
		case demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT:
			if r.envoy == nil {
				add("envoy-appointment", r.rec.GetStage(), "head of department", due)
			} else if !r.deployed {
				add("standby-team-deployed", r.rec.GetStage(), "mediation support unit", nil)
			}
		case demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING:
			open := false
			for _, fr := range r.requests {
				if !fr.decided {
					open = true
					add("funding-decision", r.rec.GetStage(), fmt.Sprintf("funding officer other than %s (four-eyes)", fr.requester), due)
				}
			}
			if !open {
				add("funding-request", r.rec.GetStage(), "desk officer", due)
			}
		case demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP:
			if r.checkInsDue > r.checkIns {
				add("follow-up-check-in", r.rec.GetStage(), "desk officer", nil)
			}
		}
	}
	if l.closing && len(l.active) == 0 && l.closure == nil {
		add("closure", demarchev1.Stage_STAGE_CLOSED, "head of department", nil)
	}
	return out
}

// ---- signals -----------------------------------------------------------------

// serveSignals applies operator controls and children's reports, one at a time.
func (l *lifecycle) serveSignals(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	severity := func(delta int32, name string) {
		sel.AddReceive(workflow.GetSignalChannel(ctx, name), func(ch workflow.ReceiveChannel, _ bool) {
			var c demarchev1.SeverityControl
			ch.Receive(ctx, &c)
			if err := c.Validate(); err != nil {
				workflow.GetLogger(ctx).Warn("control ignored", "signal", name, "error", err)
				return
			}
			l.changeSeverity(ctx, delta, c.GetPrincipal(), c.GetReason())
		})
	}
	severity(+1, SignalEscalate)
	severity(-1, SignalDeEscalate)
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalSkipStage), func(ch workflow.ReceiveChannel, _ bool) {
		var c demarchev1.StageControl
		ch.Receive(ctx, &c)
		l.skip(ctx, &c)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalReopenStage), func(ch workflow.ReceiveChannel, _ bool) {
		var c demarchev1.StageControl
		ch.Receive(ctx, &c)
		l.reopen(ctx, &c)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalPartnerRole), func(ch workflow.ReceiveChannel, _ bool) {
		var a demarchev1.PartnerRoleAck
		ch.Receive(ctx, &a)
		if err := a.Validate(); err != nil {
			workflow.GetLogger(ctx).Warn("partner role ignored", "error", err)
			return
		}
		if a.AcknowledgedAt == nil {
			a.AcknowledgedAt = timestamppb.New(workflow.Now(ctx))
		}
		replaced := false
		for i, p := range l.partners {
			if p.GetPartner() == a.GetPartner() {
				l.partners[i], replaced = &a, true
			}
		}
		if !replaced {
			l.partners = append(l.partners, &a)
		}
		_ = l.em.publish(ctx, &demarchev1.PartnerRoleAcknowledged{CrisisId: l.crisis.GetId(), Ack: &a})
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalWarning), func(ch workflow.ReceiveChannel, _ bool) {
		var w demarchev1.Warning
		ch.Receive(ctx, &w)
		if err := w.Validate(); err != nil {
			workflow.GetLogger(ctx).Warn("warning ignored", "error", err)
			return
		}
		l.warnings = append(l.warnings, &w)
		_ = l.em.publish(ctx, &demarchev1.WarningAttached{CrisisId: l.crisis.GetId(), Warning: &w})
		if r := l.activeRun(demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP); r != nil && r.child != nil {
			_ = r.child.SignalChildWorkflow(ctx, SignalStageWarning, &w).Get(ctx, nil)
		}
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalRelapse), func(ch workflow.ReceiveChannel, _ bool) {
		var r demarchev1.CrisisRelapsed
		ch.Receive(ctx, &r)
		l.relapse(ctx, r.GetReason())
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalDeadline), func(ch workflow.ReceiveChannel, _ bool) {
		var r demarchev1.DeadlineReport
		ch.Receive(ctx, &r)
		l.recordDeadline(r.GetDeadline())
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalCheckInDue), func(ch workflow.ReceiveChannel, _ bool) {
		var d demarchev1.CheckInDue
		ch.Receive(ctx, &d)
		if r := l.activeRun(demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP); r != nil && d.GetNumber() > r.checkInsDue {
			r.checkInsDue = d.GetNumber()
		}
	})
	for {
		sel.Select(ctx)
	}
}

func (l *lifecycle) changeSeverity(ctx workflow.Context, delta int32, principal, reason string) {
	from := l.crisis.GetSeverity()
	to := min(max(from+delta, 1), 5)
	if to == from {
		workflow.GetLogger(ctx).Info("severity already at its bound", "severity", from)
		return
	}
	l.crisis.Severity = to
	_ = workflow.UpsertTypedSearchAttributes(ctx, temporalx.SASeverity.ValueSet(int64(to)))
	_ = l.em.publish(ctx, &demarchev1.SeverityChanged{CrisisId: l.crisis.GetId(), From: from, To: to, Principal: principal, Reason: reason})
}

func (l *lifecycle) skip(ctx workflow.Context, c *demarchev1.StageControl) {
	if err := c.Validate(); err != nil {
		workflow.GetLogger(ctx).Warn("skip ignored", "error", err)
		return
	}
	stage := c.GetStage()
	switch run := l.activeRun(stage); {
	case run != nil:
		l.finish(ctx, run, demarchev1.StageStatus_STAGE_STATUS_SKIPPED, c.GetReason())
	case l.spec(stage) != nil && !l.reached[stage]:
		l.skipped[stage] = c.GetReason()
	default:
		workflow.GetLogger(ctx).Warn("skip ignored: stage neither running nor ahead", "stage", stage.Slug())
		return
	}
	_ = l.em.publish(ctx, &demarchev1.StageSkipped{CrisisId: l.crisis.GetId(), Stage: stage, Principal: c.GetPrincipal(), Reason: c.GetReason()})
}

func (l *lifecycle) reopen(ctx workflow.Context, c *demarchev1.StageControl) {
	if err := c.Validate(); err != nil {
		workflow.GetLogger(ctx).Warn("reopen ignored", "error", err)
		return
	}
	l.reopenStage(ctx, c.GetStage(), c.GetPrincipal(), c.GetReason())
}

func (l *lifecycle) reopenStage(ctx workflow.Context, stage demarchev1.Stage, principal, reason string) {
	spec := l.spec(stage)
	if spec == nil || !l.reached[stage] || l.activeRun(stage) != nil || l.closure != nil {
		workflow.GetLogger(ctx).Warn("reopen ignored: stage not in the playbook, not reached yet, running, or crisis closed", "stage", stage.Slug())
		return
	}
	_ = l.em.publish(ctx, &demarchev1.StageReopened{CrisisId: l.crisis.GetId(), Stage: stage, Principal: principal, Reason: reason})
	if err := l.start(ctx, spec, reason); err != nil {
		workflow.GetLogger(ctx).Error("reopen failed", "stage", stage.Slug(), "error", err)
	}
}

// relapse re-escalates: one severity level up and good offices again.
func (l *lifecycle) relapse(ctx workflow.Context, reason string) {
	_ = l.em.publish(ctx, &demarchev1.CrisisRelapsed{CrisisId: l.crisis.GetId(), Reason: reason})
	l.changeSeverity(ctx, +1, "follow-up", reason)
	l.reopenStage(ctx, demarchev1.Stage_STAGE_GOOD_OFFICES, "follow-up", reason)
}

// recordDeadline keeps the latest state of a child's deadline.
func (l *lifecycle) recordDeadline(d *demarchev1.DeadlineState) {
	for i, x := range l.deadlines {
		if x.GetName() == d.GetName() && x.GetStage() == d.GetStage() && x.GetStartedAt().AsTime().Equal(d.GetStartedAt().AsTime()) {
			l.deadlines[i] = d
			return
		}
	}
	l.deadlines = append(l.deadlines, d)
}

// ---- drill policy ----------------------------------------------------------------

// runDrillPolicy takes each pending decision after the drill's delay, as a
// principal named drill-policy (drill-approver for approvals: four-eyes holds
// in drills too).
func (l *lifecycle) runDrillPolicy(ctx workflow.Context) {
	delay := l.drill.GetStageDuration().AsDuration()
	for {
		if err := workflow.Await(ctx, func() bool { return l.closure != nil || len(l.pendingDecisions()) > 0 }); err != nil || l.closure != nil {
			return
		}
		if err := workflow.Sleep(ctx, delay); err != nil {
			return
		}
		pending := l.pendingDecisions()
		if len(pending) == 0 {
			continue
		}
		req := l.drillDecision(ctx, pending[0])
		if req == nil {
			continue
		}
		if err := l.validateDecision(ctx, req); err != nil {
			workflow.GetLogger(ctx).Warn("drill decision rejected", "kind", pending[0].GetKind(), "error", err)
			continue
		}
		if _, err := l.decide(ctx, req, true); err != nil {
			workflow.GetLogger(ctx).Warn("drill decision failed", "kind", pending[0].GetKind(), "error", err)
		}
	}
}

func (l *lifecycle) drillDecision(ctx workflow.Context, p *demarchev1.PendingDecision) *demarchev1.DecisionRequest {
	req := &demarchev1.DecisionRequest{Principal: "drill-policy", Rationale: "drill: taken automatically by the drill policy"}
	switch p.GetKind() {
	case "triage":
		req.Decision = &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "drill: warning confirmed"}}
	case "good-offices":
		req.Decision = &demarchev1.DecisionRequest_GoodOffices{GoodOffices: &demarchev1.GoodOfficesDecision{Option: demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_QUIET_DIPLOMACY}}
	case "fact-finding-mandate":
		due := workflow.Now(ctx).Add(scaled(l.spec(demarchev1.Stage_STAGE_FACT_FINDING).GetDeadline().GetDue().AsDuration(), l.drill))
		req.Decision = &demarchev1.DecisionRequest_FactFindingMandate{FactFindingMandate: &demarchev1.FactFindingMandate{
			TermsOfReference: "drill mission", MandatingBody: demarchev1.MandatingBody_MANDATING_BODY_SECRETARY_GENERAL,
			Team: []string{"drill-investigator"}, ReportDue: timestamppb.New(due)}}
	case "fact-finding-report":
		req.Decision = &demarchev1.DecisionRequest_FactFindingReport{FactFindingReport: &demarchev1.FactFindingReport{Summary: "drill findings"}}
	case "envoy-appointment":
		appoint := &demarchev1.EnvoyAppointment{Envoy: "drill-envoy", StandbyTeam: []string{"drill-mediator"}}
		if l.services { // a drill books real roster members, as a crisis would
			var picked demarchev1.ReserveExpertsRequest
			if err := workflow.ExecuteActivity(withServiceOptions(ctx), ActivityPickExperts, &demarchev1.PickExpertsRequest{Region: l.crisis.GetRegion()}).Get(ctx, &picked); err != nil {
				workflow.GetLogger(ctx).Warn("drill: no experts to appoint", "error", err)
				return nil
			}
			appoint = &demarchev1.EnvoyAppointment{Envoy: picked.GetEnvoy(), StandbyTeam: picked.GetStandbyTeam()}
		}
		req.Decision = &demarchev1.DecisionRequest_EnvoyAppointment{EnvoyAppointment: appoint}
	case "standby-team-deployed":
		req.Decision = &demarchev1.DecisionRequest_StandbyTeamDeployed{StandbyTeamDeployed: &demarchev1.StandbyTeamDeployed{Location: "drill"}}
	case "funding-request":
		req.Decision = &demarchev1.DecisionRequest_FundingRequest{FundingRequest: &demarchev1.FundingRequest{
			RequestId: fmt.Sprintf("drill-%d", len(l.decisions)+1), Fund: "flexible-financing", AmountUsd: 50_000, Purpose: "drill"}}
	case "funding-decision":
		run := l.activeRun(demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING)
		req.Principal = "drill-approver"
		req.Decision = &demarchev1.DecisionRequest_FundingDecision{FundingDecision: &demarchev1.FundingDecision{
			RequestId: strings.Split(run.openRequests(), ", ")[0], Approve: true}}
	case "follow-up-check-in":
		req.Decision = &demarchev1.DecisionRequest_FollowUpCheckIn{FollowUpCheckIn: &demarchev1.FollowUpCheckIn{
			CommitmentsImplemented: true, Recommendation: demarchev1.FollowUpRecommendation_FOLLOW_UP_RECOMMENDATION_CONTINUE}}
	case "closure":
		req.Decision = &demarchev1.DecisionRequest_Closure{Closure: &demarchev1.ClosureDecision{
			Outcome: demarchev1.Outcome_OUTCOME_CONTAINED, Lessons: []string{"drill: the playbook ran end to end"}}}
	}
	return req
}

// ---- closure -------------------------------------------------------------------

func (l *lifecycle) close(ctx workflow.Context) error {
	if l.services {
		if err := workflow.ExecuteActivity(withActivityOptions(ctx), ActivityReleaseExperts, l.crisis.GetId()).Get(ctx, nil); err != nil {
			return fmt.Errorf("close: release the roster: %w", err)
		}
	}
	now := workflow.Now(ctx)
	l.closedAt = timestamppb.New(now)
	l.figures = l.computeFigures(now)
	if err := workflow.UpsertTypedSearchAttributes(ctx, l.stageAttributes(demarchev1.Stage_STAGE_CLOSED)...); err != nil {
		return fmt.Errorf("close: search attributes: %w", err)
	}
	cl := l.closure.GetRequest().GetClosure()
	return l.em.publish(ctx, &demarchev1.CrisisClosed{
		CrisisId: l.crisis.GetId(), ClosedAt: l.closedAt, Outcome: cl.GetOutcome(), Figures: l.figures, Lessons: cl.GetLessons(),
	})
}

func (l *lifecycle) computeFigures(now time.Time) *demarchev1.ClosureFigures {
	f := &demarchev1.ClosureFigures{
		Decisions: int32(len(l.decisions)), FundingDisbursedUsd: l.disbursed, Drill: l.crisis.GetDrill(),
		Total: durationpb.New(now.Sub(l.crisis.GetOpenedAt().AsTime())),
	}
	start := l.crisis.GetFirstSignalAt()
	if start == nil {
		start = l.crisis.GetOpenedAt()
	}
	if l.firstAction != nil {
		f.WarningToAction = durationpb.New(l.firstAction.Sub(start.AsTime()))
	}
	for _, st := range demarchev1.LifecycleStages {
		var total time.Duration
		ran := false
		for _, r := range l.timeline {
			if r.GetStage() == st {
				ran = true
				total += r.GetDuration().AsDuration()
			}
		}
		if ran {
			f.StageTimes = append(f.StageTimes, &demarchev1.StageTime{Stage: st, Time: durationpb.New(total)})
		}
	}
	for _, d := range l.deadlines {
		if d.GetStatus() == demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED {
			f.DeadlinesBreached++
		}
	}
	return f
}

// snapshot is the query answer: a copy, so callers never share workflow state.
func (l *lifecycle) snapshot(ctx workflow.Context) *demarchev1.CrisisState {
	st := &demarchev1.CrisisState{
		Crisis: l.crisis, CurrentStage: l.currentStage(), Timeline: l.timeline, ClosedAt: l.closedAt,
		Playbook: l.pb.GetName(), PlaybookVersion: l.pb.GetVersion(), PendingDecisions: l.pendingDecisions(),
		Deadlines: l.deadlines, Partners: l.partners, Decisions: l.decisions, Warnings: l.warnings, Figures: l.figures,
	}
	if l.closure != nil {
		st.Outcome = l.closure.GetRequest().GetClosure().GetOutcome()
		st.Lessons = l.closure.GetRequest().GetClosure().GetLessons()
	}
	for _, r := range l.active {
		if r.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			st.ActiveStages = append(st.ActiveStages, r.rec.GetStage())
		}
	}
	return proto.Clone(st).(*demarchev1.CrisisState)
}
