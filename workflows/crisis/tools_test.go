package crisis

// Tools when the situation needs them (issue 27, item 1): fact-finding added
// to any crisis, rapid funding asked for from good offices on.

import (
	"slices"
	"strings"
	"testing"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// index is the position of the first event of that kind (-1: none).
func index(events []string, kind string) int {
	return slices.IndexFunc(events, func(e string) bool { return e == kind })
}

// A coup crisis, whose playbook has no fact-finding, gets a joint inquiry
// with ECOWAS by decision of the head of department; it runs beside the
// phases (good offices does not wait for it) and closure waits for it. A
// second while it runs, and one by a desk officer, are refused.
func TestFactFindingAddedToACoupCrisis(t *testing.T) {
	pb := mustPlaybook(t, "unconstitutional-change")
	if pb.GetPhases()[1].GetStages()[0].GetStage() != demarchev1.Stage_STAGE_GOOD_OFFICES {
		t.Fatal("the coup playbook changed: this test reads its second phase as good offices")
	}
	h := newHarness(t)
	added := func(by string, roles ...demarchev1.Role) *demarchev1.DecisionRequest {
		r := req(by, &demarchev1.FactFindingAdded{JointWith: "ECOWAS"})
		r.Roles = roles
		return r
	}
	var refusals []string
	h.at(time.Minute, func() {
		h.decide(added("hana", demarchev1.Role_ROLE_DESK_OFFICER), func(err error) { refusals = append(refusals, errString(err)) })
	})
	h.at(2*time.Minute, func() {
		h.decide(added("hana", demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT), func(err error) {
			if err != nil {
				t.Errorf("fact-finding-added refused: %v", err)
			}
		})
	})
	h.at(3*time.Minute, func() {
		h.decide(added("hana", demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT), func(err error) { refusals = append(refusals, errString(err)) })
	})
	h.drive(6*time.Hour, nil)
	final := h.run(pb, nil)

	if len(refusals) != 2 || !strings.Contains(refusals[0], "rule role:") || !strings.Contains(refusals[1], "rule one-run:") {
		t.Fatalf("refusals %q, want the desk officer's (role) and the second while one runs (one-run)", refusals)
	}
	order := stageOrder(h.bus.events)
	entered, goEntered, done := index(order, "StageEntered:fact-finding"), index(order, "StageEntered:good-offices"), index(order, "StageCompleted:fact-finding")
	if entered < 0 || done < 0 || goEntered < 0 {
		t.Fatalf("stage events %v: fact-finding entered and completed, good offices entered", order)
	}
	if !(entered < goEntered && goEntered < done) {
		t.Fatalf("stage events %v: good offices must enter while the added fact-finding runs (it does not hold the phase)", order)
	}
	var kinds []string
	for _, d := range final.GetDecisions() {
		kinds = append(kinds, d.GetKind())
		if d.GetKind() == "fact-finding-added" && (d.GetRequest().GetFactFindingAdded().GetJointWith() != "ECOWAS" || d.GetStage() != demarchev1.Stage_STAGE_FACT_FINDING) {
			t.Errorf("added: %v", d)
		}
	}
	for _, want := range []string{"fact-finding-added", "fact-finding-mandate", "fact-finding-report", "closure"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("decisions %v lack %s", kinds, want)
		}
	}
	if final.GetCurrentStage() != demarchev1.Stage_STAGE_CLOSED {
		t.Fatalf("crisis ended in %v", final.GetCurrentStage())
	}
	for _, r := range final.GetTimeline() {
		if r.GetStage() == demarchev1.Stage_STAGE_FACT_FINDING && (r.GetStatus() != demarchev1.StageStatus_STAGE_STATUS_COMPLETED || r.GetRun() != 1) {
			t.Fatalf("fact-finding in the timeline: %v", r)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "accepted"
	}
	return err.Error()
}

// Money before deployment: during good offices a desk officer requests
// funding, which opens the funding stage beside it; another officer approves,
// the money is paid, and only then is the envoy appointed, naming the request
// that pays for the deployment. The playbook's own funding phase (after the
// envoy in the general playbook) does not run the stage again. Before good
// offices, a request is refused.
func TestFundingRequestedDuringGoodOfficesApprovedBeforeDeployment(t *testing.T) {
	h := newHarness(t)
	var early error
	h.at(time.Minute, func() { // warning stage: too early
		r := req("alice", &demarchev1.FundingRequest{RequestId: "FR-0", Fund: "peacebuilding-irf", AmountUsd: 1, Purpose: "x"})
		r.Roles = allRoles
		h.decide(r, func(err error) { early = err })
	})
	requested, approved := false, false
	h.drive(6*time.Hour, func(kind string) bool {
		st := h.state()
		running := slices.Contains(st.GetActiveStages(), demarchev1.Stage_STAGE_GOOD_OFFICES)
		switch {
		case kind == "good-offices" && running && !requested:
			requested = true
			r := req("alice", &demarchev1.FundingRequest{RequestId: "FR-1", Fund: "peacebuilding-irf", AmountUsd: 250_000, Purpose: "standby team travel"})
			r.Roles = allRoles
			h.decide(r, func(err error) {
				if err != nil {
					t.Errorf("funding-request during good offices refused: %v", err)
				}
			})
			return true
		case kind == "good-offices" && !approved:
			return true // good offices stays open until the money is approved
		case kind == "funding-decision":
			approved = true
		case kind == "envoy-appointment":
			r := req("alice", &demarchev1.EnvoyAppointment{Envoy: "dora", StandbyTeam: []string{"erin"}, FundingRequestId: "FR-1"})
			r.Roles = allRoles
			h.decide(r, func(err error) {
				if err != nil {
					t.Errorf("envoy-appointment paid by FR-1 refused: %v", err)
				}
			})
			return true
		}
		return false
	})
	final := h.run(mustPlaybook(t, "general"), nil)

	if early == nil || !strings.Contains(early.Error(), "rule stage-running:") || !strings.Contains(early.Error(), "good-offices") {
		t.Fatalf("a request during the warning stage: %v, want rule stage-running naming good-offices", early)
	}
	ev := h.bus.events
	order := stageOrder(ev)
	if n := len(h.bus.kinds("StageEntered:rapid-response-funding")); n != 1 {
		t.Fatalf("funding entered %d times, want once (events %v)", n, order)
	}
	fundingIn, goDone, paid, envoyIn := index(order, "StageEntered:rapid-response-funding"), index(order, "StageCompleted:good-offices"),
		index(order, "StageCompleted:rapid-response-funding"), index(order, "StageEntered:envoy-deployment")
	if !(fundingIn >= 0 && fundingIn < goDone && paid < goDone && goDone < envoyIn) {
		t.Fatalf("stage events %v: funding must open and complete during good offices, before envoy deployment", order)
	}
	if index(ev, "DecisionRecorded:funding-decision") > index(ev, "DecisionRecorded:envoy-appointment") {
		t.Fatalf("events %v: the approval must come before the appointment", ev)
	}
	if got := final.GetFigures().GetFundingDisbursedUsd(); got != 250_000 {
		t.Fatalf("disbursed %d, want 250000", got)
	}
	for _, d := range final.GetDecisions() {
		if d.GetKind() == "envoy-appointment" && d.GetRequest().GetEnvoyAppointment().GetFundingRequestId() != "FR-1" {
			t.Fatalf("appointment %v does not name FR-1", d)
		}
	}
	if final.GetCurrentStage() != demarchev1.Stage_STAGE_CLOSED {
		t.Fatalf("crisis ended in %v", final.GetCurrentStage())
	}
}

// Good offices as sustained engagement: engagements are logged in any stage,
// any number, quiet or public, without moving the crisis on; the state and
// the closure figures count them. One by a role that does not log them is
// refused.
func TestSeveralEngagementsAcrossStages(t *testing.T) {
	h := newHarness(t)
	logged := func(kind demarchev1.EngagementKind, public bool) *demarchev1.DecisionRequest {
		r := req("dana", &demarchev1.GoodOfficesEngagement{Type: kind, By: "srsg-west-africa", With: "the junta", Public: public})
		r.Roles = []demarchev1.Role{demarchev1.Role_ROLE_DESK_OFFICER}
		return r
	}
	var during *demarchev1.CrisisState
	var refused error
	h.at(time.Minute, func() {
		for _, k := range []demarchev1.EngagementKind{demarchev1.EngagementKind_ENGAGEMENT_KIND_CALL, demarchev1.EngagementKind_ENGAGEMENT_KIND_VISIT} {
			h.decide(logged(k, false), func(err error) {
				if err != nil {
					t.Errorf("engagement during the warning stage refused: %v", err)
				}
			})
		}
		wrong := logged(demarchev1.EngagementKind_ENGAGEMENT_KIND_VISIT, false)
		wrong.Roles = []demarchev1.Role{demarchev1.Role_ROLE_FUNDING_OFFICER}
		h.decide(wrong, func(err error) { refused = err })
	})
	h.at(2*time.Minute, func() { during = h.state() })
	h.at(8*time.Hour, func() { // good offices runs (triage at 6h)
		h.decide(logged(demarchev1.EngagementKind_ENGAGEMENT_KIND_PUBLIC_STATEMENT, true), func(err error) {
			if err != nil {
				t.Errorf("public statement refused: %v", err)
			}
		})
	})
	h.drive(6*time.Hour, nil)
	final := h.run(mustPlaybook(t, "general"), nil)

	if refused == nil || !strings.Contains(refused.Error(), "rule role:") {
		t.Fatalf("an engagement by a funding officer: %v, want rule role", refused)
	}
	if during.GetEngagements() != 2 || during.GetPublicEngagements() != 0 || during.GetCurrentStage() != demarchev1.Stage_STAGE_WARNING {
		t.Fatalf("after two quiet engagements: %d (%d public), stage %v; want 2, 0, still warning",
			during.GetEngagements(), during.GetPublicEngagements(), during.GetCurrentStage())
	}
	if final.GetEngagements() != 3 || final.GetPublicEngagements() != 1 || final.GetFigures().GetEngagements() != 3 {
		t.Fatalf("final: %d engagements (%d public), figures %d; want 3, 1, 3", final.GetEngagements(), final.GetPublicEngagements(), final.GetFigures().GetEngagements())
	}
	if n := len(h.bus.kinds("DecisionRecorded:engagement")); n != 3 {
		t.Fatalf("%d engagement events, want 3", n)
	}
}

// A stage an operator marked to be skipped is not opened by a decision: the
// refusal names the rule, and the stage stays skipped.
func TestASkippedStageIsNotOpenedBeside(t *testing.T) {
	h := newHarness(t)
	h.at(time.Minute, func() {
		h.mustControl(UpdateSkipStage, &demarchev1.StageControl{Principal: "alice", Roles: dutyRoles, Reason: "facts are public", Stage: demarchev1.Stage_STAGE_FACT_FINDING})
	})
	var refused error
	h.at(2*time.Minute, func() {
		r := req("hana", &demarchev1.FactFindingAdded{})
		r.Roles = dutyRoles
		h.decide(r, func(err error) { refused = err })
	})
	h.drive(6*time.Hour, nil)
	h.run(mustPlaybook(t, "general"), nil)
	if refused == nil || !strings.Contains(refused.Error(), "rule skipped-ahead:") {
		t.Fatalf("fact-finding added after it was marked skipped: %v, want rule skipped-ahead", refused)
	}
	if h.bus.has("StageEntered:fact-finding") {
		t.Fatal("the skipped stage was entered")
	}
}
