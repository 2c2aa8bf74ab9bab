package crisis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/playbook"
)

var t0 = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

// dutyRoles are an operations-centre officer's roles (controls, most decisions).
var dutyRoles = []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER, demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT}

// allRoles take any decision.
var allRoles = []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER, demarchev1.Role_ROLE_DESK_OFFICER, demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT,
	demarchev1.Role_ROLE_FUNDING_OFFICER, demarchev1.Role_ROLE_MEDIATION_SUPPORT}

func crisisFor(pb *demarchev1.Playbook) *demarchev1.Crisis {
	return &demarchev1.Crisis{
		Id: "GN-20261127-TEST1", Title: "Coup attempt", CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA,
		CrisisType: pb.GetCrisisType(), Severity: 3,
		Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedAt: timestamppb.New(t0),
		FirstSignalAt: timestamppb.New(t0.Add(-6 * time.Hour)),
	}
}

func mustPlaybook(t *testing.T, name string) *demarchev1.Playbook {
	t.Helper()
	pb, err := playbook.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return pb
}

// bus records what the workflows asked the publish activity to emit.
type bus struct {
	mu     sync.Mutex
	events []string // e.g. "StageEntered:good-offices"
	ids    map[string]bool
	// refs are the decisions the service calls named, by call
	// ("request", "decide", "disburse", "reserve", "release").
	refs map[string]*demarchev1.DecisionRef
	// decidedBy are the principals the funding service's decide heard, in order.
	decidedBy []string
}

func (b *bus) named(call string, r *demarchev1.DecisionRef) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refs == nil {
		b.refs = map[string]*demarchev1.DecisionRef{}
	}
	b.refs[call] = r
}

func (b *bus) kinds(prefix string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, e := range b.events {
		if strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

func (b *bus) has(kind string) bool { return len(b.kinds(kind)) > 0 }

type harness struct {
	updates int
	t       *testing.T
	env     *testsuite.TestWorkflowEnvironment
	bus     *bus
}

func newHarness(t *testing.T) *harness {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(temporalx.SDKLogger(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))))
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	h := &harness{t: t, env: env, bus: &bus{ids: map[string]bool{}}}
	Register(env, &Activities{})
	publishOne := func(req *demarchev1.PublishEventRequest) error {
		if err := req.Validate(); err != nil {
			return err
		}
		data, err := req.GetData().UnmarshalNew()
		if err != nil {
			return err
		}
		if v, ok := data.(demarchev1.Validator); ok {
			if err := v.Validate(); err != nil {
				t.Errorf("workflow published an invalid %T: %v", data, err)
			}
		}
		kind := string(data.ProtoReflect().Descriptor().Name())
		switch d := data.(type) {
		case *demarchev1.StageEntered:
			kind += ":" + d.GetStage().Slug()
		case *demarchev1.StageCompleted:
			kind += ":" + d.GetStage().Slug()
		case *demarchev1.StageSkipped:
			kind += ":" + d.GetStage().Slug()
		case *demarchev1.StageReopened:
			kind += ":" + d.GetStage().Slug()
		case *demarchev1.DecisionRecorded:
			kind += ":" + d.GetDecision().GetKind()
		case *demarchev1.DeadlineAtRisk:
			kind += ":" + d.GetDeadline().GetName()
		case *demarchev1.DeadlineBreached:
			kind += ":" + d.GetDeadline().GetName()
		}
		h.bus.mu.Lock()
		defer h.bus.mu.Unlock()
		if h.bus.ids[req.GetEventId()] {
			t.Errorf("event id %s published twice", req.GetEventId())
		}
		h.bus.ids[req.GetEventId()] = true
		h.bus.events = append(h.bus.events, kind)
		return nil
	}
	env.OnActivity(ActivityPublishEvents, mock.Anything, mock.Anything).Return(
		func(_ context.Context, batch *demarchev1.PublishEventBatch) (*demarchev1.PublishEventBatch, error) {
			for _, req := range batch.GetEvents() {
				if err := publishOne(req); err != nil {
					return nil, err
				}
			}
			return batch, nil
		})
	// The roster and funding services, as their contracts promise.
	env.OnActivity(ActivityReserveExperts, mock.Anything, mock.Anything).Return(
		func(_ context.Context, req *demarchev1.ReserveExpertsRequest) (*demarchev1.ReserveExpertsResult, error) {
			h.bus.named("reserve", req.GetDecision())
			h.bus.mu.Lock()
			defer h.bus.mu.Unlock()
			h.bus.events = append(h.bus.events, "roster:reserve:"+req.GetEnvoy())
			if req.GetEnvoy() == "booked-elsewhere" {
				// What the activity makes of the roster's 409 (errs.ToTemporal).
				return nil, errs.ToTemporal(fmt.Errorf("roster.reserve: %w: booked-elsewhere is already assigned to crisis X as envoy", errs.ErrConflict))
			}
			return &demarchev1.ReserveExpertsResult{Assignments: []*demarchev1.Assignment{{ExpertId: req.GetEnvoy(), CrisisId: req.GetCrisisId(), Role: "envoy"}}}, nil
		})
	env.OnActivity(ActivityPickExperts, mock.Anything, mock.Anything).Return(
		&demarchev1.ReserveExpertsRequest{Envoy: "env-amara-diallo", StandbyTeam: []string{"sb-fatou-sow"}}, nil)
	env.OnActivity(ActivityReleaseExperts, mock.Anything, mock.Anything).Return(
		func(_ context.Context, req *demarchev1.AssignmentsRequest) error {
			h.bus.named("release", req.GetDecision())
			h.bus.mu.Lock()
			defer h.bus.mu.Unlock()
			h.bus.events = append(h.bus.events, "roster:release")
			return nil
		})
	env.OnActivity(ActivityFileFundingRequest, mock.Anything, mock.Anything).Return(
		func(_ context.Context, c *demarchev1.FundingRequestCall) (*demarchev1.FundingRecord, error) {
			h.bus.named("request", c.GetDecision())
			if c.GetRequest().GetAmountUsd() > 1_000_000 {
				// What the activity makes of the funding service's 422 (errs.ToTemporal).
				return nil, errs.ToTemporal(fmt.Errorf("funding.request: %w: ceiling: above the per-crisis ceiling", errs.ErrRule))
			}
			rec := &demarchev1.FundingRecord{CrisisId: c.GetCrisisId(), Request: c.GetRequest(), RequestedBy: c.GetRequestedBy()}
			if c.GetRequest().GetAmountUsd() > 500_000 {
				rec.ApprovalsRequired = 2 // the demo funds' quorum rule
			}
			return rec, nil
		})
	env.OnActivity(ActivityDecideFunding, mock.Anything, mock.Anything).Return(
		func(_ context.Context, c *demarchev1.FundingDecideCall) (*demarchev1.FundingRecord, error) {
			h.bus.named("decide", c.GetDecision())
			h.bus.mu.Lock()
			h.bus.decidedBy = append(h.bus.decidedBy, c.GetDecidedBy())
			h.bus.mu.Unlock()
			return &demarchev1.FundingRecord{}, nil
		})
	env.OnActivity(ActivityDisburse, mock.Anything, mock.Anything).Return(
		func(_ context.Context, req *demarchev1.DisburseRequest) (*demarchev1.FundsDisbursed, error) {
			h.bus.named("disburse", req.GetDecision())
			return &demarchev1.FundsDisbursed{CrisisId: req.GetCrisisId(), RequestId: req.GetRequest().GetRequestId(),
				AmountUsd: req.GetRequest().GetAmountUsd(), DisbursementKey: req.GetDisbursementKey()}, nil
		})
	return h
}

func (h *harness) state() *demarchev1.CrisisState {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(QueryState)
	if err != nil {
		h.t.Fatalf("query: %v", err)
	}
	var st demarchev1.CrisisState
	if err := v.Get(&st); err != nil {
		h.t.Fatalf("decode state: %v", err)
	}
	return &st
}

// decide sends one decision through the real update path; done gets the
// rejection or failure (nil when recorded).
func (h *harness) decide(req *demarchev1.DecisionRequest, done func(error)) {
	h.updates++
	h.env.UpdateWorkflow(UpdateDecide, fmt.Sprintf("u-%d", h.updates), &testsuite.TestUpdateCallback{
		OnReject:   func(err error) { done(err) },
		OnAccept:   func() {},
		OnComplete: func(_ any, err error) { done(err) },
	}, req)
}

// control sends an operator control through the real update path; done gets
// the refusal (nil when applied).
func (h *harness) control(name string, arg any, done func(error)) {
	h.updates++
	h.env.UpdateWorkflow(name, fmt.Sprintf("c-%d", h.updates), &testsuite.TestUpdateCallback{
		OnReject:   func(err error) { done(err) },
		OnAccept:   func() {},
		OnComplete: func(_ any, err error) { done(err) },
	}, arg)
}

// mustControl sends a control that must be applied.
func (h *harness) mustControl(name string, arg any) {
	h.control(name, arg, func(err error) {
		if err != nil {
			h.t.Errorf("%s refused: %v", name, err)
		}
	})
}

// at runs f at a simulated time after the start.
func (h *harness) at(d time.Duration, f func()) { h.env.RegisterDelayedCallback(f, d) }

// answerPending takes every pending decision as people would, through the
// update API: alice requests money, bob approves it.
func (h *harness) answerPending(skip func(kind string) bool) {
	st := h.state()
	for _, p := range st.GetPendingDecisions() {
		if skip != nil && skip(p.GetKind()) {
			continue
		}
		kind := p.GetKind()
		req := personDecision(p, st, h.env.Now())
		req.Roles = []demarchev1.Role{p.GetRole()}
		h.decide(req, func(err error) {
			if err != nil {
				h.t.Errorf("%s rejected: %v", kind, err)
			}
		})
		return
	}
}

// drive answers pending decisions every step until the crisis closes.
func (h *harness) drive(step time.Duration, skip func(kind string) bool) {
	var tick func()
	tick = func() {
		if h.env.IsWorkflowCompleted() {
			return
		}
		h.answerPending(skip)
		h.env.RegisterDelayedCallback(tick, step)
	}
	h.env.RegisterDelayedCallback(tick, step)
}

func personDecision(p *demarchev1.PendingDecision, st *demarchev1.CrisisState, now time.Time) *demarchev1.DecisionRequest {
	req := &demarchev1.DecisionRequest{Principal: "alice", Rationale: "as the situation requires"}
	switch p.GetKind() {
	case "triage":
		req.Decision = &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "credible threat"}}
	case "good-offices":
		req.Decision = &demarchev1.DecisionRequest_GoodOffices{GoodOffices: &demarchev1.GoodOfficesDecision{Option: demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_DEMARCHE}}
	case "fact-finding-mandate":
		req.Decision = &demarchev1.DecisionRequest_FactFindingMandate{FactFindingMandate: &demarchev1.FactFindingMandate{
			TermsOfReference: "establish the facts", MandatingBody: demarchev1.MandatingBody_MANDATING_BODY_HUMAN_RIGHTS_COUNCIL,
			Team: []string{"carol"}, ReportDue: timestamppb.New(now.Add(240 * time.Hour))}}
	case "fact-finding-report":
		req.Decision = &demarchev1.DecisionRequest_FactFindingReport{FactFindingReport: &demarchev1.FactFindingReport{Summary: "facts established"}}
	case "envoy-appointment":
		req.Decision = &demarchev1.DecisionRequest_EnvoyAppointment{EnvoyAppointment: &demarchev1.EnvoyAppointment{Envoy: "dora", StandbyTeam: []string{"erin", "femi"}}}
	case "standby-team-deployed":
		req.Decision = &demarchev1.DecisionRequest_StandbyTeamDeployed{StandbyTeamDeployed: &demarchev1.StandbyTeamDeployed{Location: "Conakry"}}
	case "funding-request":
		req.Decision = &demarchev1.DecisionRequest_FundingRequest{FundingRequest: &demarchev1.FundingRequest{RequestId: "FR-1", Fund: "peacebuilding-irf", AmountUsd: 250_000, Purpose: "mediation support"}}
	case "funding-decision":
		req.Principal = "bob"
		req.Decision = &demarchev1.DecisionRequest_FundingDecision{FundingDecision: &demarchev1.FundingDecision{RequestId: "FR-1", Approve: true}}
	case "follow-up-check-in":
		req.Decision = &demarchev1.DecisionRequest_FollowUpCheckIn{FollowUpCheckIn: &demarchev1.FollowUpCheckIn{CommitmentsImplemented: true, Recommendation: demarchev1.FollowUpRecommendation_FOLLOW_UP_RECOMMENDATION_CONTINUE}}
	case "closure":
		req.Decision = &demarchev1.DecisionRequest_Closure{Closure: &demarchev1.ClosureDecision{Outcome: demarchev1.Outcome_OUTCOME_AVERTED, Lessons: []string{"early démarche worked"}}}
	}
	return req
}

func (h *harness) run(pb *demarchev1.Playbook, drill *demarchev1.DrillPolicy) *demarchev1.CrisisState {
	h.t.Helper()
	h.env.ExecuteWorkflow(WorkflowName, &demarchev1.CrisisWorkflowInput{Crisis: crisisFor(pb), Playbook: pb, DrillPolicy: drill})
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("workflow failed: %v", err)
	}
	var final demarchev1.CrisisState
	if err := h.env.GetWorkflowResult(&final); err != nil {
		h.t.Fatal(err)
	}
	return &final
}

func stageOrder(events []string) []string {
	var out []string
	for _, e := range events {
		if strings.HasPrefix(e, "Stage") {
			out = append(out, e)
		}
	}
	return out
}

func TestHappyPathThroughUpdates(t *testing.T) {
	h := newHarness(t)
	h.drive(6*time.Hour, nil)
	final := h.run(mustPlaybook(t, "general"), nil)

	var want []string
	for _, s := range demarchev1.LifecycleStages {
		want = append(want, "StageEntered:"+s.Slug(), "StageCompleted:"+s.Slug())
	}
	if got := stageOrder(h.bus.kinds("Stage")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stage events\n got %v\nwant %v", got, want)
	}
	if final.GetCurrentStage() != demarchev1.Stage_STAGE_CLOSED || final.GetOutcome() != demarchev1.Outcome_OUTCOME_AVERTED {
		t.Fatalf("final: %v, %v", final.GetCurrentStage(), final.GetOutcome())
	}
	// 1 triage + 1 good offices + 2 fact-finding + 2 envoy + 2 funding + 6 check-ins + closure.
	f := final.GetFigures()
	if f.GetDecisions() != 15 || int(f.GetDecisions()) != len(final.GetDecisions()) {
		t.Fatalf("decisions: figures %d, records %d", f.GetDecisions(), len(final.GetDecisions()))
	}
	if f.GetFundingDisbursedUsd() != 250_000 || f.GetDrill() {
		t.Fatalf("figures: %v", f)
	}
	// First signal 6h before opening, triage 6h after it, the good-offices
	// option (the first response action) 6h later.
	if got := f.GetWarningToTriage().AsDuration(); got != 12*time.Hour {
		t.Fatalf("warning to triage %v, want 12h", got)
	}
	if got := f.GetWarningToAction().AsDuration(); got != 18*time.Hour || f.GetFirstAction() != "good-offices" {
		t.Fatalf("warning to action %v ending at %q, want 18h at good-offices", got, f.GetFirstAction())
	}
	if f.GetDeploymentsWithEnvoy() != 1 || f.GetDeploymentsWithoutEnvoy() != 0 || f.GetCouncilActions() != 0 {
		t.Fatalf("figures: %v", f)
	}
	if len(f.GetStageTimes()) != 6 {
		t.Fatalf("stage times: %v", f.GetStageTimes())
	}
	for _, d := range final.GetDecisions() {
		if d.GetPrincipal() == "" || d.GetRationale() == "" || d.GetDecidedAt() == nil || d.GetAutomatic() {
			t.Fatalf("decision without who/when/why: %v", d)
		}
	}
	if n := len(h.bus.kinds("FollowUpCheckInRecorded")); n != 6 {
		t.Fatalf("%d check-ins recorded, want 6 (across continue-as-new)", n)
	}
	if !h.bus.has("CrisisClosed") || !h.bus.has("FundsDisbursed") == false && false {
		t.Fatal("no CrisisClosed event")
	}
}

func TestDrillTakesDecisionsAutomaticallyAndIsMarked(t *testing.T) {
	for _, pb := range mustBuiltins(t) {
		t.Run(pb.GetName(), func(t *testing.T) {
			h := newHarness(t)
			final := h.run(pb, &demarchev1.DrillPolicy{StageDuration: durationpb.New(time.Minute), TimeScale: 0.001})
			ran := 0
			for _, ph := range pb.GetPhases() {
				ran += len(ph.GetStages())
			}
			if n := len(h.bus.kinds("StageCompleted")); n != ran {
				t.Fatalf("%d stages completed, playbook runs %d", n, ran)
			}
			if final.GetOutcome() != demarchev1.Outcome_OUTCOME_CONTAINED || !final.GetFigures().GetDrill() {
				t.Fatalf("drill closure: outcome %v, figures %v", final.GetOutcome(), final.GetFigures())
			}
			for _, d := range final.GetDecisions() {
				if !d.GetAutomatic() {
					t.Fatalf("drill decision not marked automatic: %v", d)
				}
			}
			if final.GetPlaybook() != pb.GetName() || final.GetPlaybookVersion() != pb.GetVersion() {
				t.Fatalf("playbook recorded as %s %s", final.GetPlaybook(), final.GetPlaybookVersion())
			}
		})
	}
}

func mustBuiltins(t *testing.T) []*demarchev1.Playbook {
	all, err := playbook.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func TestParallelStagesRunSideBySide(t *testing.T) {
	h := newHarness(t)
	var during *demarchev1.CrisisState
	h.at(30*time.Hour, func() { during = h.state() })
	h.drive(6*time.Hour, func(kind string) bool {
		// hold both parallel stages open until after the look at 30h
		return h.env.Now().Before(t0.Add(31*time.Hour)) && (kind == "good-offices" || kind == "fact-finding-report")
	})
	h.run(mustPlaybook(t, "election-violence"), nil)
	if fmt.Sprint(during.GetActiveStages()) != fmt.Sprint([]demarchev1.Stage{demarchev1.Stage_STAGE_GOOD_OFFICES, demarchev1.Stage_STAGE_FACT_FINDING}) {
		t.Fatalf("active at 30h: %v, want good offices and fact-finding side by side", during.GetActiveStages())
	}
	order := stageOrder(h.bus.events)
	if order[2] != "StageEntered:good-offices" || order[3] != "StageEntered:fact-finding" {
		t.Fatalf("both parallel stages should be entered before either completes: %v", order)
	}
}

func TestSkippedStages(t *testing.T) {
	h := newHarness(t)
	h.at(time.Minute, func() {
		h.mustControl(UpdateSkipStage, &demarchev1.StageControl{Principal: "alice", Roles: dutyRoles, Reason: "facts are public", Stage: demarchev1.Stage_STAGE_FACT_FINDING})
	})
	h.at(2*time.Minute, func() {
		h.mustControl(UpdateSkipStage, &demarchev1.StageControl{Principal: "alice", Roles: dutyRoles, Reason: "already triaged by partners", Stage: demarchev1.Stage_STAGE_WARNING})
	})
	h.drive(6*time.Hour, nil)
	final := h.run(mustPlaybook(t, "general"), nil)
	if h.bus.has("StageEntered:fact-finding") || len(h.bus.kinds("StageSkipped")) != 2 {
		t.Fatalf("events: %v", h.bus.events)
	}
	statuses := map[demarchev1.Stage]demarchev1.StageStatus{}
	for _, r := range final.GetTimeline() {
		statuses[r.GetStage()] = r.GetStatus()
	}
	if statuses[demarchev1.Stage_STAGE_FACT_FINDING] != demarchev1.StageStatus_STAGE_STATUS_SKIPPED ||
		statuses[demarchev1.Stage_STAGE_WARNING] != demarchev1.StageStatus_STAGE_STATUS_SKIPPED ||
		statuses[demarchev1.Stage_STAGE_GOOD_OFFICES] != demarchev1.StageStatus_STAGE_STATUS_COMPLETED {
		t.Fatalf("timeline statuses: %v", statuses)
	}
	for _, d := range final.GetDecisions() {
		if d.GetKind() == "triage" || strings.HasPrefix(d.GetKind(), "fact-finding") {
			t.Fatalf("a skipped stage took a decision: %v", d)
		}
	}
}

func TestStandbyDeadlineAtRiskThenBreachedWhileWaiting(t *testing.T) {
	h := newHarness(t)
	var late *demarchev1.CrisisState
	var envoyStart time.Time
	h.drive(time.Hour, func(kind string) bool {
		if kind == "envoy-appointment" && envoyStart.IsZero() {
			envoyStart = h.env.Now()
		}
		// the team deploys only 100 hours after the stage starts
		return kind == "standby-team-deployed" && (envoyStart.IsZero() || h.env.Now().Before(envoyStart.Add(100*time.Hour)))
	})
	h.drive(time.Hour, func(string) bool {
		if late == nil && !envoyStart.IsZero() && h.env.Now().After(envoyStart.Add(90*time.Hour)) {
			late = h.state()
		}
		return true
	})
	final := h.run(mustPlaybook(t, "general"), nil)
	if !h.bus.has("DeadlineAtRisk:standby team deployment") || !h.bus.has("DeadlineBreached:standby team deployment") {
		t.Fatalf("no at-risk and breach events: %v", h.bus.kinds("Deadline"))
	}
	if late == nil || fmt.Sprint(late.GetActiveStages()) != fmt.Sprint([]demarchev1.Stage{demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT}) {
		t.Fatalf("after the breach the crisis should still wait in envoy deployment: %v", late.GetActiveStages())
	}
	var standby *demarchev1.DeadlineState
	for _, d := range late.GetDeadlines() {
		if d.GetName() == "standby team deployment" {
			standby = d
		}
	}
	if standby.GetStatus() != demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED ||
		standby.GetDueAt().AsTime().Sub(standby.GetStartedAt().AsTime()) != 72*time.Hour ||
		standby.GetAtRiskAt().AsTime().Sub(standby.GetStartedAt().AsTime()) != 48*time.Hour {
		t.Fatalf("standby deadline: %v", standby)
	}
	if final.GetFigures().GetDeadlinesBreached() < 1 {
		t.Fatalf("breach not counted in figures: %v", final.GetFigures())
	}
}

func TestFourEyesAndInvalidUpdatesAreRejectedWithoutTrace(t *testing.T) {
	h := newHarness(t)
	type attempt struct {
		name string
		req  *demarchev1.DecisionRequest
		says string
	}
	mk := func(principal string, d func(*demarchev1.DecisionRequest)) *demarchev1.DecisionRequest {
		r := &demarchev1.DecisionRequest{Principal: principal, Rationale: "because", Roles: allRoles}
		d(r)
		return r
	}
	early := []attempt{
		{"no principal", mk("", func(r *demarchev1.DecisionRequest) {
			r.Decision = &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "x"}}
		}), "principal: is required"},
		{"no rationale", &demarchev1.DecisionRequest{Principal: "alice", Roles: allRoles, Decision: &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "x"}}}, "rationale: is required"},
		{"no decision", mk("alice", func(*demarchev1.DecisionRequest) {}), "decision: is required"},
		{"wrong stage", mk("alice", func(r *demarchev1.DecisionRequest) {
			r.Decision = &demarchev1.DecisionRequest_GoodOffices{GoodOffices: &demarchev1.GoodOfficesDecision{Option: demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_DEMARCHE}}
		}), "rule stage-running"},
		{"closure too early", mk("alice", func(r *demarchev1.DecisionRequest) {
			r.Decision = &demarchev1.DecisionRequest_Closure{Closure: &demarchev1.ClosureDecision{Outcome: demarchev1.Outcome_OUTCOME_AVERTED, Lessons: []string{"x"}}}
		}), "rule closure-last"},
		{"wrong role", func() *demarchev1.DecisionRequest {
			r := mk("alice", func(r *demarchev1.DecisionRequest) {
				r.Decision = &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "x"}}
			})
			r.Roles = []demarchev1.Role{demarchev1.Role_ROLE_ANALYST}
			return r
		}(), "rule role: a triage decision is taken by a duty-officer; alice holds analyst"},
		{"no role", func() *demarchev1.DecisionRequest {
			r := mk("alice", func(r *demarchev1.DecisionRequest) {
				r.Decision = &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "x"}}
			})
			r.Roles = nil
			return r
		}(), "alice holds no role"},
		{"unknown option", mk("alice", func(r *demarchev1.DecisionRequest) {
			r.Decision = &demarchev1.DecisionRequest_GoodOffices{GoodOffices: &demarchev1.GoodOfficesDecision{}}
		}), "good_offices.option: is required"},
	}
	inFunding := []attempt{
		{"four-eyes", mk("alice", func(r *demarchev1.DecisionRequest) {
			r.Decision = &demarchev1.DecisionRequest_FundingDecision{FundingDecision: &demarchev1.FundingDecision{RequestId: "FR-1", Approve: true}}
		}), "rule four-eyes: alice requested FR-1"},
		{"unknown request", mk("bob", func(r *demarchev1.DecisionRequest) {
			r.Decision = &demarchev1.DecisionRequest_FundingDecision{FundingDecision: &demarchev1.FundingDecision{RequestId: "FR-9", Approve: true}}
		}), "rule known-request"},
		{"second open request", mk("alice", func(r *demarchev1.DecisionRequest) {
			r.Decision = &demarchev1.DecisionRequest_FundingRequest{FundingRequest: &demarchev1.FundingRequest{RequestId: "FR-2", Fund: "x", AmountUsd: 1, Purpose: "y"}}
		}), "rule one-open-request"},
		{"negative amount", mk("alice", func(r *demarchev1.DecisionRequest) {
			r.Decision = &demarchev1.DecisionRequest_FundingRequest{FundingRequest: &demarchev1.FundingRequest{RequestId: "FR-3", Fund: "x", AmountUsd: -5, Purpose: "y"}}
		}), "amount_usd: -5 is out of range"},
	}
	checked := 0
	check := func(list []attempt) {
		before := h.state()
		events := len(h.bus.kinds(""))
		answered := 0
		for _, a := range list {
			a := a
			h.decide(a.req, func(err error) {
				answered++
				if err == nil || !strings.Contains(err.Error(), a.says) {
					t.Errorf("%s: rejection %v does not say %q", a.name, err, a.says)
				}
			})
		}
		h.at(time.Second, func() {
			checked++
			after := h.state()
			if answered != len(list) {
				t.Errorf("%d of %d updates answered", answered, len(list))
			}
			if len(after.GetDecisions()) != len(before.GetDecisions()) || len(h.bus.kinds("")) != events {
				t.Errorf("rejected updates left a trace: decisions %d -> %d, events %d -> %d",
					len(before.GetDecisions()), len(after.GetDecisions()), events, len(h.bus.kinds("")))
			}
		})
	}
	h.at(time.Minute, func() { check(early) })
	fundingChecked := false
	h.drive(time.Hour, func(kind string) bool {
		if kind == "funding-decision" && !fundingChecked {
			fundingChecked = true
			check(inFunding)
			return true // decide it on a later tick, after the check
		}
		return false
	})
	final := h.run(mustPlaybook(t, "general"), nil)
	if !fundingChecked || checked != 2 {
		t.Fatalf("checks run: funding reached %v, checks %d of 2", fundingChecked, checked)
	}
	for _, d := range final.GetDecisions() {
		if d.GetKind() == "funding-decision" && d.GetPrincipal() != "bob" {
			t.Fatalf("funding decided by %s", d.GetPrincipal())
		}
	}
}

func TestRelapseDuringFollowUpReEscalates(t *testing.T) {
	h := newHarness(t)
	var after *demarchev1.CrisisState
	sent := false
	h.drive(6*time.Hour, func(kind string) bool {
		st := h.state()
		inFollowUp := len(st.GetActiveStages()) == 1 && st.GetActiveStages()[0] == demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP
		if inFollowUp && !sent {
			sent = true
			// The query says where follow-up stands: the next check-in due
			// within one interval, none recorded yet, the playbook's plan.
			pb := mustPlaybook(t, "general")
			fs, interval := st.GetFollowUp(), pb.GetFollowUp().GetInterval().AsDuration()
			if fs == nil || fs.GetCheckInsDone() != 0 || fs.GetCheckInsPlanned() != pb.GetFollowUp().GetCheckIns() ||
				!fs.GetNextDueAt().AsTime().After(h.env.Now()) || fs.GetNextDueAt().AsTime().After(h.env.Now().Add(interval)) {
				t.Errorf("follow-up state %v at %s (interval %s)", fs, h.env.Now(), interval)
			}
			h.env.SignalWorkflow(SignalWarning, &demarchev1.Warning{Source: "acled", SourceId: "GN123", Summary: "clashes in Conakry", Severity: 5, ObservedAt: timestamppb.New(h.env.Now())})
			h.at(time.Minute, func() { after = h.state() })
		}
		return false
	})
	final := h.run(mustPlaybook(t, "general"), nil)
	if !h.bus.has("WarningAttached") || !h.bus.has("CrisisRelapsed") || !h.bus.has("StageReopened:good-offices") {
		t.Fatalf("relapse events missing: %v", h.bus.events)
	}
	if after == nil || after.GetCrisis().GetSeverity() != 4 {
		t.Fatalf("severity after relapse: %v", after.GetCrisis().GetSeverity())
	}
	active := fmt.Sprint(after.GetActiveStages())
	if !strings.Contains(active, "GOOD_OFFICES") || !strings.Contains(active, "SUSTAINED_FOLLOW_UP") {
		t.Fatalf("after relapse good offices should run again beside follow-up: %s", active)
	}
	runs := 0
	for _, r := range final.GetTimeline() {
		if r.GetStage() == demarchev1.Stage_STAGE_GOOD_OFFICES {
			runs++
		}
	}
	if runs != 2 {
		t.Fatalf("good offices ran %d times, want 2", runs)
	}
}

func TestFollowUpContinuesAsNewAfterNCheckIns(t *testing.T) {
	h := newHarness(t)
	pb := mustPlaybook(t, "general")
	pb.FollowUp.CheckInsPerRun = 2
	for i := 1; i <= 2; i++ {
		h.at(time.Duration(i)*time.Hour, func() {
			h.env.SignalWorkflow(SignalStageDecision, &demarchev1.DecisionRecord{Kind: "follow-up-check-in", Request: &demarchev1.DecisionRequest{
				Principal: "alice", Rationale: "visit", Decision: &demarchev1.DecisionRequest_FollowUpCheckIn{FollowUpCheckIn: &demarchev1.FollowUpCheckIn{
					Recommendation: demarchev1.FollowUpRecommendation_FOLLOW_UP_RECOMMENDATION_CONTINUE}}}})
		})
	}
	h.env.OnSignalExternalWorkflow(mock.Anything, "crisis-parent", "", mock.Anything, mock.Anything).Return(nil)
	h.env.ExecuteWorkflow(FollowUpWorkflow, &demarchev1.StageWorkflowInput{Crisis: crisisFor(pb), ParentWorkflowId: "crisis-parent", Playbook: pb, Run: 1})
	var can *workflow.ContinueAsNewError
	if err := h.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new after 2 check-ins, got %v", err)
	}
	if can.WorkflowType.Name != FollowUpWorkflow {
		t.Fatalf("continued as %s", can.WorkflowType.Name)
	}
	if n := len(h.bus.kinds("FollowUpCheckInRecorded")); n != 2 {
		t.Fatalf("%d check-ins recorded before continue-as-new", n)
	}
}

func TestInvalidInputFailsWithoutSideEffects(t *testing.T) {
	h := newHarness(t)
	pb := mustPlaybook(t, "general")
	c := crisisFor(pb)
	c.Severity = 9
	h.env.ExecuteWorkflow(WorkflowName, &demarchev1.CrisisWorkflowInput{Crisis: c, Playbook: pb})
	var appErr *temporal.ApplicationError
	if err := h.env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != errs.TypeInvalidInput || !appErr.NonRetryable() {
		t.Fatalf("want a non-retryable %s error, got %v", errs.TypeInvalidInput, err)
	}
	if len(h.bus.events) != 0 {
		t.Fatalf("invalid input published %v", h.bus.events)
	}
}

func TestOperatorControls(t *testing.T) {
	h := newHarness(t)
	var mid *demarchev1.CrisisState
	reopened := false
	var refusals []string
	refused := func(err error) { refusals = append(refusals, fmt.Sprint(err)) }
	h.drive(6*time.Hour, func(kind string) bool {
		if kind == "fact-finding-mandate" && !reopened {
			reopened = true
			h.mustControl(UpdateReopenStage, &demarchev1.StageControl{Principal: "alice", Roles: dutyRoles, Reason: "junta reneged", Stage: demarchev1.Stage_STAGE_GOOD_OFFICES})
			h.mustControl(UpdateEscalate, &demarchev1.SeverityControl{Principal: "alice", Roles: dutyRoles, Reason: "troops deployed"})
			h.mustControl(UpdateEscalate, &demarchev1.SeverityControl{Principal: "alice", Roles: dutyRoles, Reason: "again"})
			h.control(UpdateEscalate, &demarchev1.SeverityControl{Principal: "alice", Roles: dutyRoles, Reason: "capped at 5"}, refused)
			h.mustControl(UpdateDeEscalate, &demarchev1.SeverityControl{Principal: "alice", Roles: dutyRoles, Reason: "talks resumed"})
			h.mustControl(UpdatePartnerRole, &demarchev1.PartnerRoleAck{Partner: "AU", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD, Principal: "au-liaison", Roles: dutyRoles})
			h.env.SignalWorkflow(SignalPartnerAck, &demarchev1.PartnerRoleAck{Partner: "AU", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_JOINT, Principal: "au-liaison"})
			h.control(UpdateSkipStage, &demarchev1.StageControl{Principal: "alice", Roles: dutyRoles, Reason: "", Stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT}, refused)
			h.control(UpdateReopenStage, &demarchev1.StageControl{Principal: "alice", Roles: dutyRoles, Reason: "again", Stage: demarchev1.Stage_STAGE_GOOD_OFFICES}, refused)
			h.control(UpdateReopenStage, &demarchev1.StageControl{Principal: "alice", Roles: dutyRoles, Reason: "early", Stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT}, refused)
			h.control(UpdateSkipStage, &demarchev1.StageControl{Principal: "alice", Roles: dutyRoles, Reason: "done", Stage: demarchev1.Stage_STAGE_WARNING}, refused)
			h.env.SignalWorkflow(SignalPartnerAck, &demarchev1.PartnerRoleAck{Partner: "", Principal: "forged"}) // refused, kept
			h.control(UpdateEscalate, &demarchev1.SeverityControl{Principal: "bob", Reason: "x", Roles: []demarchev1.Role{demarchev1.Role_ROLE_FUNDING_OFFICER}}, refused)
			h.at(time.Minute, func() { mid = h.state() })
			return true
		}
		return false
	})
	final := h.run(mustPlaybook(t, "general"), nil)
	want := []string{
		"rule severity-bounds: severity is 5 already",
		"reason: is required",
		"rule reopen-ended: stage good-offices is running",
		"rule reopen-reached: stage envoy-deployment has not run yet",
		"rule skip-running-or-ahead: stage warning has already ended",
		"rule role: crisis.escalate is for a duty-officer, head-of-department; bob holds funding-officer",
	}
	if len(refusals) != len(want) {
		t.Fatalf("refusals %v, want %d", refusals, len(want))
	}
	for i, w := range want {
		if !strings.Contains(refusals[i], w) {
			t.Errorf("refusal %d: %q does not say %q", i, refusals[i], w)
		}
	}
	if mid == nil || fmt.Sprint(mid.GetActiveStages()) != "[STAGE_FACT_FINDING STAGE_GOOD_OFFICES]" {
		t.Fatalf("after reopen, active stages: %v", mid.GetActiveStages())
	}
	if mid.GetCrisis().GetSeverity() != 4 { // 3 +1 +1 (then refused at 5) -1
		t.Fatalf("severity %d, want 4", mid.GetCrisis().GetSeverity())
	}
	if len(mid.GetPartners()) != 1 || mid.GetPartners()[0].GetRole() != demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_JOINT {
		t.Fatalf("partners: %v", mid.GetPartners())
	}
	if rs := mid.GetRefusedSignals(); len(rs) != 1 || rs[0].GetSignal() != SignalPartnerAck || !strings.Contains(rs[0].GetReason(), "partner") {
		t.Fatalf("refused signals: %v", rs)
	}
	if n := len(h.bus.kinds("SeverityChanged")); n != 3 {
		t.Fatalf("%d severity changes published, want 3 (the refused one changes nothing)", n)
	}
	if h.bus.has("StageSkipped") || len(h.bus.kinds("StageReopened")) != 1 || len(h.bus.kinds("PartnerRoleAcknowledged")) != 2 {
		t.Fatalf("control events: %v", h.bus.events)
	}
	runs := map[demarchev1.Stage]int32{}
	for _, r := range final.GetTimeline() {
		runs[r.GetStage()] = max(runs[r.GetStage()], r.GetRun())
	}
	if runs[demarchev1.Stage_STAGE_GOOD_OFFICES] != 2 || runs[demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT] != 1 {
		t.Fatalf("runs per stage: %v", runs)
	}
}

func TestServiceRefusalsRecordNothing(t *testing.T) {
	h := newHarness(t)
	tried := map[string]bool{}
	var refusals []string
	var kinds []error // what each refusal maps to (errs.FromTemporal)
	h.drive(time.Hour, func(kind string) bool {
		if (kind == "envoy-appointment" || kind == "funding-request") && !tried[kind] {
			tried[kind] = true
			req := &demarchev1.DecisionRequest{Principal: "alice", Rationale: "try", Roles: allRoles}
			if kind == "envoy-appointment" {
				req.Decision = &demarchev1.DecisionRequest_EnvoyAppointment{EnvoyAppointment: &demarchev1.EnvoyAppointment{Envoy: "booked-elsewhere", StandbyTeam: []string{"x"}}}
			} else {
				req.Decision = &demarchev1.DecisionRequest_FundingRequest{FundingRequest: &demarchev1.FundingRequest{RequestId: "FR-big", Fund: "flexible-financing", AmountUsd: 2_000_000, Purpose: "too much"}}
			}
			before := len(h.state().GetDecisions())
			h.decide(req, func(err error) {
				refusals = append(refusals, fmt.Sprint(err))
				kinds = append(kinds, errs.FromTemporal(err))
				if after := len(h.state().GetDecisions()); after != before {
					t.Errorf("%s refused by its service but recorded (%d -> %d decisions)", kind, before, after)
				}
			})
			return true
		}
		return false
	})
	final := h.run(mustPlaybook(t, "general"), nil)
	if len(refusals) != 2 || !strings.Contains(refusals[0], "rule service") || !strings.Contains(refusals[0], "already assigned") ||
		!strings.Contains(refusals[1], "ceiling") {
		t.Fatalf("refusals: %v", refusals)
	}
	// The service's kind of refusal reaches the person who decided: a booked
	// envoy is a conflict (409), a ceiling a rule (422).
	if !errors.Is(kinds[0], errs.ErrConflict) || errors.Is(kinds[0], errs.ErrRule) || !errors.Is(kinds[1], errs.ErrRule) {
		t.Fatalf("refusals map to %v (status %d) and %v (status %d), want a conflict and a rule", kinds[0], errs.HTTPStatus(kinds[0]), kinds[1], errs.HTTPStatus(kinds[1]))
	}
	if !h.bus.has("roster:release") || final.GetFigures().GetFundingDisbursedUsd() != 250_000 {
		t.Fatalf("closure should release the roster; figures %v", final.GetFigures())
	}
}

// TestServiceCallsNameTheirDecision: every call that moves money or books
// people names the decision it carries out, by the id the crisis records
// (the update's id), in the crisis's workflow or its funding stage's; the
// authority query lists those decisions.
func TestServiceCallsNameTheirDecision(t *testing.T) {
	h := newHarness(t)
	h.drive(6*time.Hour, nil)
	final := h.run(mustPlaybook(t, "general"), nil)
	byKind := map[string]*demarchev1.DecisionRecord{}
	for _, d := range final.GetDecisions() {
		if d.GetDecisionId() == "" || !strings.HasPrefix(d.GetDecisionId(), "u-") {
			t.Fatalf("decision %d (%s) has id %q, want its update's id", d.GetNumber(), d.GetKind(), d.GetDecisionId())
		}
		byKind[d.GetKind()] = d
	}
	for call, kind := range map[string]string{"request": "funding-request", "decide": "funding-decision", "disburse": "funding-decision",
		"reserve": "envoy-appointment", "release": "closure"} {
		r := h.bus.refs[call]
		// (The test environment names workflows its own way: the
		// workflow id is only checked to be there.)
		if r.GetDecisionId() != byKind[kind].GetDecisionId() || r.GetCrisisId() != final.GetCrisis().GetId() || r.GetRunId() == "" || r.GetWorkflowId() == "" {
			t.Errorf("%s named %v, want %s's decision %s", call, r, kind, byKind[kind].GetDecisionId())
		}
	}
	v, err := h.env.QueryWorkflow(QueryAuthority)
	if err != nil {
		t.Fatal(err)
	}
	var a demarchev1.CrisisAuthority
	if err := v.Get(&a); err != nil {
		t.Fatal(err)
	}
	if !a.GetClosed() || a.GetCrisisId() != final.GetCrisis().GetId() || len(a.GetDecisions()) != 4 || len(a.GetInFlight()) != 0 {
		t.Fatalf("authority %v: want the closed crisis's 4 money-and-people decisions", &a)
	}
}
