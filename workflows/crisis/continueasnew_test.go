package crisis

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// When Temporal suggests it, the crisis continues as new; the next run,
// started from what it carried, answers the query with the state the run
// before had (one run more), its deadline goes on from where it was (at risk
// announced once, breached once, in the new run), and decisions are numbered
// on.
func TestContinueAsNewCarriesTheState(t *testing.T) {
	pb := mustPlaybook(t, "constitutional-crisis") // warning, then good offices (no stage workflow)
	roles := []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER, demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT}

	h := newHarness(t)
	var before *demarchev1.CrisisState
	h.at(time.Hour, func() {
		h.decide(&demarchev1.DecisionRequest{Principal: "alice", Roles: roles, Rationale: "credible",
			Decision: &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "credible threat"}}}, func(err error) {
			if err != nil {
				t.Errorf("triage: %v", err)
			}
		})
	})
	h.at(2*time.Hour, func() {
		h.mustControl(UpdateEscalate, &demarchev1.SeverityControl{Principal: "alice", Roles: roles, Reason: "worse"})
		h.mustControl(UpdatePartnerRole, &demarchev1.PartnerRoleAck{Partner: "ECOWAS", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD, Principal: "alice", Roles: roles})
		h.env.SignalWorkflow(SignalWarning, &demarchev1.Warning{Source: "ecowarn", SourceId: "W-1", Summary: "protests", Severity: 3, ObservedAt: timestamppb.New(t0)})
		h.env.SignalWorkflow(SignalWarning, &demarchev1.Warning{Source: "ecowarn", Summary: "bad", Severity: 9, ObservedAt: timestamppb.New(t0)})
	})
	// Good offices entered at 1h: at risk at 73h; hand over at 80h.
	h.at(79*time.Hour, func() {
		h.env.SignalWorkflow(SignalWarning, &demarchev1.Warning{Source: "ecowarn", SourceId: "W-2", Summary: "later", Severity: 2, ObservedAt: timestamppb.New(t0)})
	})
	h.at(80*time.Hour, func() {
		before = h.state()
		h.env.SetContinueAsNewSuggested(true)
	})
	h.env.ExecuteWorkflow(WorkflowName, &demarchev1.CrisisWorkflowInput{Crisis: crisisFor(pb), Playbook: pb})
	var can *workflow.ContinueAsNewError
	if err := h.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("the crisis did not continue as new: %v", err)
	}
	var next demarchev1.CrisisWorkflowInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if n := len(h.bus.kinds("DeadlineAtRisk")); n != 1 {
		t.Fatalf("first run: %d at-risk announcements, want 1", n)
	}

	// The next run, from what was carried.
	h2 := newHarness(t)
	h2.env.SetStartTime(t0.Add(80 * time.Hour))
	var first, later *demarchev1.CrisisState
	h2.at(time.Minute, func() {
		first = h2.state()
		// The stages after good offices would start workflows that wait for
		// people: passed over, so the test ends.
		for _, st := range []demarchev1.Stage{demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT, demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING, demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP} {
			h2.mustControl(UpdateSkipStage, &demarchev1.StageControl{Principal: "bob", Roles: roles, Reason: "test", Stage: st})
		}
	})
	h2.at(50*time.Hour, func() { // past good offices' due time (121h after opening)
		later = h2.state()
		h2.decide(&demarchev1.DecisionRequest{Principal: "bob", Roles: roles, Rationale: "quiet first",
			Decision: &demarchev1.DecisionRequest_GoodOffices{GoodOffices: &demarchev1.GoodOfficesDecision{Option: demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_QUIET_DIPLOMACY}}}, func(err error) {
			if err != nil {
				t.Errorf("good offices in the new run: %v", err)
			}
		})
	})
	h2.at(51*time.Hour, func() {
		st := h2.state()
		if n := len(st.GetDecisions()); n != 2 || st.GetDecisions()[1].GetNumber() != 2 {
			t.Errorf("decisions after the hand-over: %v", st.GetDecisions())
		}
		h2.env.CancelWorkflow()
	})
	h2.env.ExecuteWorkflow(WorkflowName, &next)

	// The state carried is the state before (one run more).
	want := proto.Clone(before).(*demarchev1.CrisisState)
	want.WorkflowRuns = 2
	if !proto.Equal(first, want) {
		t.Errorf("state after the hand-over differs\n got %v\nwant %v", first, want)
	}
	if n := len(first.GetRefusedSignals()); n != 1 || first.GetCrisis().GetSeverity() != 4 || len(first.GetPartners()) != 1 || len(first.GetWarnings()) != 2 {
		t.Errorf("carried: %d refused, severity %d, %d partners, %d warnings", n, first.GetCrisis().GetSeverity(), len(first.GetPartners()), len(first.GetWarnings()))
	}
	var dl *demarchev1.DeadlineState
	for _, d := range later.GetDeadlines() {
		if d.GetStage() == demarchev1.Stage_STAGE_GOOD_OFFICES {
			dl = d
		}
	}
	if dl.GetStatus() != demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED {
		t.Errorf("good offices deadline in the new run: %v", dl)
	}
	if at, br := len(h2.bus.kinds("DeadlineAtRisk")), len(h2.bus.kinds("DeadlineBreached")); at != 0 || br != 1 {
		t.Errorf("new run announced at risk %d and breached %d times, want 0 and 1", at, br)
	}
	if h2.bus.has("CrisisOpened") {
		t.Error("the new run announced the crisis again")
	}
}

// Each kind of stage's state survives continue-as-new: a new run carries
// nothing, and a run with decisions taken carries them, and the run made
// again from what it carried knows what it knew.
func TestStageStateCarriesOver(t *testing.T) {
	take := map[demarchev1.Stage]func(*stageRun){
		demarchev1.Stage_STAGE_FACT_FINDING: func(r *stageRun) {
			f := factFindingOf(r)
			f.mandate, f.reported = &demarchev1.FactFindingMandate{TermsOfReference: "establish the facts", Team: []string{"carol"}}, true
		},
		demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT: func(r *stageRun) {
			e := envoyOf(r)
			e.appointment, e.deployed = &demarchev1.EnvoyAppointment{Envoy: "dora", StandbyTeam: []string{"erin"}}, true
		},
		demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING: func(r *stageRun) {
			fundingOf(r).requests = []*openRequest{
				{req: &demarchev1.FundingRequest{RequestId: "FR-1", AmountUsd: 1}, requester: "alice", decided: true},
				{req: &demarchev1.FundingRequest{RequestId: "FR-2", AmountUsd: 2}, requester: "bob"},
			}
		},
		demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP: func(r *stageRun) {
			f := followUpOf(r)
			f.due, f.done = 3, 2
		},
	}
	carried := func(r *stageRun) *demarchev1.CarriedStageRun {
		cr := &demarchev1.CarriedStageRun{}
		r.state.carry(cr)
		return cr
	}
	for _, stage := range demarchev1.LifecycleStages {
		rec := &demarchev1.StageRecord{Stage: stage, Status: demarchev1.StageStatus_STAGE_STATUS_RUNNING}
		r := newStageRun(rec, nil, nil)
		decide, ok := take[stage]
		if r.state == nil {
			if ok {
				t.Errorf("%s: no state, but the test takes its decisions: add it to stageStates", stage.Slug())
			}
			continue
		}
		if !ok {
			t.Errorf("%s keeps a state: add its decisions to this test", stage.Slug())
			continue
		}
		if cr := carried(r); !proto.Equal(cr, &demarchev1.CarriedStageRun{}) {
			t.Errorf("%s: a new run carries %v", stage.Slug(), cr)
		}
		decide(r)
		cr := carried(r)
		if proto.Equal(cr, &demarchev1.CarriedStageRun{}) {
			t.Errorf("%s: decisions taken, nothing carried", stage.Slug())
		}
		if next := newStageRun(rec, nil, cr); !reflect.DeepEqual(next.state, r.state) {
			t.Errorf("%s: state %+v carried as %v, made again as %+v", stage.Slug(), r.state, cr, next.state)
		}
	}
}
