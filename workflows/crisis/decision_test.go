package crisis

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authz"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Every decision kind of the schema has exactly one type, whose fields are
// all set: the table is the one place a decision is described.
func TestEveryDecisionKindHasOneCompleteType(t *testing.T) {
	kinds := demarchev1.DecisionKinds()
	if len(decisionTypes) != len(kinds) {
		t.Fatalf("%d decision types for %d schema kinds", len(decisionTypes), len(kinds))
	}
	for i, dt := range decisionTypes {
		if dt.kind != kinds[i] {
			t.Errorf("type %d is %q, schema kind %q", i, dt.kind, kinds[i])
		}
		// Only a kind of a track of its own (anytime: the Security
		// Council's) belongs to no stage.
		if (dt.stage == demarchev1.Stage_STAGE_UNSPECIFIED && !dt.anytime) || dt.role == demarchev1.Role_ROLE_UNSPECIFIED || dt.who == "" ||
			dt.apply == nil || dt.pending == nil || dt.drill == nil || dt.describe == nil {
			t.Errorf("%s: stage (unless anytime), role, who, apply, pending, drill and describe are all required", dt.kind)
		}
	}
}

// rulesCase is one decision against one state: the rule it must break ("" =
// accepted).
type rulesCase struct {
	name  string
	setup func(l *lifecycle, r *stageRun)
	req   *demarchev1.DecisionRequest
	rule  string
}

var now = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func req(principal string, d proto.Message) *demarchev1.DecisionRequest {
	return demarchev1.NewDecisionRequest(principal, "why", d)
}

// Partners' roles, for the rules the division of labour decides.
var (
	support     = demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_SUPPORT
	joint       = demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_JOINT
	sequential  = demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_SEQUENTIAL
	regionalOrg = demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_REGIONAL_ORGANISATION
)

func roleOf(org string, role demarchev1.PartnerRoleKind) *demarchev1.PartnerRoleAck {
	return &demarchev1.PartnerRoleAck{Partner: org, Role: role}
}

// ledBy makes presence the crisis's lead field presence.
func ledBy(presence string) func(*lifecycle, *stageRun) {
	return func(l *lifecycle, _ *stageRun) { l.crisis.LeadPresence = presence }
}

// fieldReportBy is a visit reported by a field officer of presence (as the
// gateway stamps it from the credential).
func fieldReportBy(presence string) *demarchev1.DecisionRequest {
	r := req("fatou", &demarchev1.FieldReport{Type: demarchev1.FieldReportKind_FIELD_REPORT_KIND_VISIT, Summary: "met the transitional authorities"})
	r.Presence = presence
	return r
}

func TestDecisionRules(t *testing.T) {
	mandate := &demarchev1.FactFindingMandate{ReportDue: timestamppb.New(now.Add(time.Hour))}
	fr := func(id string) *demarchev1.FundingRequest { return &demarchev1.FundingRequest{RequestId: id} }
	requested := func(id, by string, decided bool) func(*lifecycle, *stageRun) {
		return func(_ *lifecycle, r *stageRun) {
			fundingOf(r).requests = append(fundingOf(r).requests, &openRequest{req: fr(id), requester: by, decided: decided})
		}
	}
	council := func(typ demarchev1.CouncilActionKind, date time.Time, situations ...string) *demarchev1.CouncilAction {
		return &demarchev1.CouncilAction{Type: typ, Date: timestamppb.New(date), Outcome: "members took note", Situations: situations}
	}
	option := func(o demarchev1.GoodOfficesOption) *demarchev1.GoodOfficesDecision {
		return &demarchev1.GoodOfficesDecision{Option: o}
	}
	cases := map[*decisionType][]rulesCase{
		goodOffices: {
			{"quiet diplomacy", nil, req("a", option(demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_QUIET_DIPLOMACY)), ""},
			{"a démarche", nil, req("a", option(demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_DEMARCHE)), ""},
			{"an informal interactive dialogue (the Council's)", nil, req("a", option(demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_SECURITY_COUNCIL_DIALOGUE)), "council-track"},
			{"horizon scanning (the Council's)", nil, req("a", option(demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_HORIZON_SCANNING)), "council-track"},
		},
		councilAction: {
			{"a briefing held yesterday", nil, req("a", council(demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_BRIEFING, now.Add(-24*time.Hour))), ""},
			{"an Article 99 letter dated today (17:00)", nil, req("a", council(demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_ARTICLE_99_LETTER, now.Add(9*time.Hour))), ""},
			{"a press statement dated next week", nil, req("a", council(demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_PRESS_STATEMENT, now.Add(7*24*time.Hour))), "council-date"},
			{"horizon scanning naming no other situation", nil, req("a", council(demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_HORIZON_SCANNING_BRIEFING, now)), "horizon-scanning-situations"},
			{"horizon scanning naming two others", nil, req("a", council(demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_HORIZON_SCANNING_BRIEFING, now, "ML-20261201-ABCDE", "Sahel border tensions")), ""},
		},
		factFindingMandate: {
			{"first mandate", nil, req("a", mandate), ""},
			{"second mandate", func(_ *lifecycle, r *stageRun) { factFindingOf(r).mandate = mandate }, req("a", mandate), "one-mandate"},
			{"report due in the past", nil, req("a", &demarchev1.FactFindingMandate{ReportDue: timestamppb.New(now.Add(-time.Hour))}), "report-due-future"},
			{"report due now", nil, req("a", &demarchev1.FactFindingMandate{ReportDue: timestamppb.New(now)}), "report-due-future"},
		},
		factFindingReport: {
			{"before the mandate", nil, req("a", &demarchev1.FactFindingReport{}), "mandate-first"},
			{"after the mandate", func(_ *lifecycle, r *stageRun) { factFindingOf(r).mandate = mandate }, req("a", &demarchev1.FactFindingReport{}), ""},
		},
		envoyAppointment: {
			{"first appointment", nil, req("a", &demarchev1.EnvoyAppointment{Envoy: "e"}), ""},
			{"the standby team alone, in support of SADC", nil, req("a", &demarchev1.EnvoyAppointment{StandbyTeam: []string{"s"}, Supports: "SADC-led mediation"}), ""},
			{"the standby team alone, supporting nothing", nil, req("a", &demarchev1.EnvoyAppointment{StandbyTeam: []string{"s"}, Supports: " "}), "envoy-or-supports"},
			{"second appointment", func(_ *lifecycle, r *stageRun) { envoyOf(r).appointment = &demarchev1.EnvoyAppointment{Envoy: "e"} }, req("a", &demarchev1.EnvoyAppointment{Envoy: "f"}), "one-envoy"},
			{"paid by an approved request", func(l *lifecycle, _ *stageRun) {
				l.decisions = append(l.decisions, &demarchev1.DecisionRecord{Kind: "funding-decision", Request: req("b", &demarchev1.FundingDecision{RequestId: "FR-1", Approve: true})})
			}, req("a", &demarchev1.EnvoyAppointment{Envoy: "e", FundingRequestId: "FR-1"}), ""},
			{"paid by a rejected request", func(l *lifecycle, _ *stageRun) {
				l.decisions = append(l.decisions, &demarchev1.DecisionRecord{Kind: "funding-decision", Request: req("b", &demarchev1.FundingDecision{RequestId: "FR-1"})})
			}, req("a", &demarchev1.EnvoyAppointment{Envoy: "e", FundingRequestId: "FR-1"}), "paid-by-approved"},
			{"paid by an unknown request", nil, req("a", &demarchev1.EnvoyAppointment{Envoy: "e", FundingRequestId: "FR-9"}), "paid-by-approved"},
		},
		standbyTeamHandedBack: {
			{"before any deployment", nil, req("a", &demarchev1.StandbyTeamHandedBack{HandedTo: "x"}), "deployed-first"},
			{"after a deployment", func(l *lifecycle, _ *stageRun) {
				l.decisions = append(l.decisions, &demarchev1.DecisionRecord{Request: req("m", &demarchev1.StandbyTeamDeployed{Location: "x"})})
			}, req("a", &demarchev1.StandbyTeamHandedBack{HandedTo: "x"}), ""},
			{"handed back already", func(l *lifecycle, _ *stageRun) {
				l.decisions = append(l.decisions, &demarchev1.DecisionRecord{Request: req("m", &demarchev1.StandbyTeamDeployed{Location: "x"})},
					&demarchev1.DecisionRecord{Request: req("m", &demarchev1.StandbyTeamHandedBack{HandedTo: "x"})})
			}, req("a", &demarchev1.StandbyTeamHandedBack{HandedTo: "x"}), "deployed-first"},
		},
		standbyTeamDeployed: {
			{"before the appointment", nil, req("a", &demarchev1.StandbyTeamDeployed{}), "appointment-first"},
			{"after the appointment", func(_ *lifecycle, r *stageRun) { envoyOf(r).appointment = &demarchev1.EnvoyAppointment{Envoy: "e"} }, req("a", &demarchev1.StandbyTeamDeployed{}), ""},
		},
		fundingRequest: {
			{"first request", nil, req("alice", fr("FR-1")), ""},
			{"same id again", requested("FR-1", "alice", true), req("alice", fr("FR-1")), "unique-request"},
			{"while one is open", requested("FR-1", "alice", false), req("alice", fr("FR-2")), "one-open-request"},
			{"after a decided one", requested("FR-1", "alice", true), req("alice", fr("FR-2")), ""},
		},
		fundingDecision: {
			{"by another principal", requested("FR-1", "alice", false), req("bob", &demarchev1.FundingDecision{RequestId: "FR-1"}), ""},
			{"by the requester", requested("FR-1", "alice", false), req("alice", &demarchev1.FundingDecision{RequestId: "FR-1"}), "four-eyes"},
			{"unknown request", requested("FR-1", "alice", false), req("bob", &demarchev1.FundingDecision{RequestId: "FR-9"}), "known-request"},
			{"decided twice", requested("FR-1", "alice", true), req("bob", &demarchev1.FundingDecision{RequestId: "FR-1"}), "decide-once"},
		},
		closure: {
			{"while stages run", func(l *lifecycle, r *stageRun) { l.closing, l.active = true, []*stageRun{r} }, req("a", &demarchev1.ClosureDecision{}), "closure-last"},
			{"before the last phase", nil, req("a", &demarchev1.ClosureDecision{}), "closure-last"},
			{"once every stage ended", func(l *lifecycle, _ *stageRun) { l.closing = true }, req("a", &demarchev1.ClosureDecision{}), ""},
			{"handed over to the Peacebuilding Commission", func(l *lifecycle, _ *stageRun) { l.closing = true },
				req("a", &demarchev1.ClosureDecision{HandOverTo: demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_PEACEBUILDING_COMMISSION}), ""},
			{"handed over to a partner in sequence", func(l *lifecycle, _ *stageRun) {
				l.closing, l.partners = true, []*demarchev1.PartnerRoleAck{roleOf("ECOWAS", sequential)}
			},
				req("a", &demarchev1.ClosureDecision{HandOverTo: regionalOrg, HandOverPartner: "ECOWAS"}), ""},
			{"handed over to a supporting partner", func(l *lifecycle, _ *stageRun) {
				l.closing, l.partners = true, []*demarchev1.PartnerRoleAck{roleOf("AU", support)}
			},
				req("a", &demarchev1.ClosureDecision{HandOverTo: regionalOrg, HandOverPartner: "AU"}), "hand-over-recipient"},
			{"handed over to a partner without a role", func(l *lifecycle, _ *stageRun) { l.closing = true },
				req("a", &demarchev1.ClosureDecision{HandOverTo: regionalOrg, HandOverPartner: "OIC"}), "hand-over-recipient"},
		},
		fieldReport: {
			{"by an officer of the lead presence", ledBy("UNOWA"), fieldReportBy("UNOWA"), ""},
			{"by an officer of another presence", ledBy("UNOWA"), fieldReportBy("UNOCA"), "lead-presence"},
			{"naming no presence", ledBy("UNOWA"), fieldReportBy(""), "lead-presence"},
			{"on a crisis without a lead presence", nil, fieldReportBy("UNOWA"), "lead-presence"},
		},
		factFindingAdded: {
			{"a UN inquiry", nil, req("a", &demarchev1.FactFindingAdded{}), ""},
			{"joint with a partner whose role is not recorded yet", nil, req("a", &demarchev1.FactFindingAdded{JointWith: "ECOWAS"}), ""},
			{"joint with a partner in a joint role", func(l *lifecycle, _ *stageRun) { l.partners = []*demarchev1.PartnerRoleAck{roleOf("ECOWAS", joint)} },
				req("a", &demarchev1.FactFindingAdded{JointWith: "ECOWAS"}), ""},
			{"joint with a supporting partner", func(l *lifecycle, _ *stageRun) { l.partners = []*demarchev1.PartnerRoleAck{roleOf("ECOWAS", support)} },
				req("a", &demarchev1.FactFindingAdded{JointWith: "ECOWAS"}), "joint-inquiry-partner"},
		},
	}
	for dt, list := range cases {
		for _, c := range list {
			t.Run(dt.kind+"/"+c.name, func(t *testing.T) {
				l := &lifecycle{crisis: &demarchev1.Crisis{Id: "GN-1"}}
				r := newStageRun(&demarchev1.StageRecord{Stage: dt.stage, Status: demarchev1.StageStatus_STAGE_STATUS_RUNNING}, nil, nil)
				if c.setup != nil {
					c.setup(l, r)
				}
				if got := c.req.DecisionKind(); got != dt.kind {
					t.Fatalf("case builds a %s decision", got)
				}
				err := dt.check(&decisionCtx{l: l, run: r, req: c.req, now: now})
				switch {
				case c.rule == "" && err != nil:
					t.Fatalf("refused: %v", err)
				case c.rule != "" && (err == nil || !strings.Contains(err.Error(), "rule "+c.rule+":")):
					t.Fatalf("want rule %s, got %v", c.rule, err)
				}
			})
		}
	}
	// Decisions without a check of their own take only the stage-running rule.
	for _, dt := range []*decisionType{triage, engagement, followUpCheckIn} {
		if dt.check != nil {
			t.Errorf("%s has rules of its own: add its cases here", dt.kind)
		}
	}
	for _, dt := range decisionTypes {
		if _, tested := cases[dt]; !tested && dt.check != nil {
			t.Errorf("%s has rules without cases", dt.kind)
		}
	}
}

// Pending decisions follow each stage run's state.
func TestPendingFollowsState(t *testing.T) {
	l := &lifecycle{crisis: &demarchev1.Crisis{Id: "GN-1"}}
	run := func(s demarchev1.Stage) *stageRun {
		return newStageRun(&demarchev1.StageRecord{Stage: s, Status: demarchev1.StageStatus_STAGE_STATUS_RUNNING}, nil, nil)
	}
	ff, fund := run(demarchev1.Stage_STAGE_FACT_FINDING), run(demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING)
	l.active = []*stageRun{ff, fund}
	kinds := func() string {
		var out []string
		for _, p := range l.pendingDecisions() {
			out = append(out, p.GetKind()+"/"+p.GetRole().Slug())
		}
		return strings.Join(out, " ")
	}
	if got := kinds(); got != "fact-finding-mandate/desk-officer funding-request/desk-officer" {
		t.Fatalf("pending: %s", got)
	}
	factFindingOf(ff).mandate = &demarchev1.FactFindingMandate{}
	fundingOf(fund).requests = []*openRequest{{req: &demarchev1.FundingRequest{RequestId: "FR-1"}, requester: "alice"}}
	if got := kinds(); got != "fact-finding-report/desk-officer funding-decision/funding-officer" {
		t.Fatalf("pending: %s", got)
	}
	if who := l.pendingDecisions()[1].GetWho(); !strings.Contains(who, "other than alice") {
		t.Fatalf("four-eyes not said: %s", who)
	}
	l.active, l.closing = nil, true
	if got := kinds(); got != "closure/head-of-department" {
		t.Fatalf("pending: %s", got)
	}
}

// Every control is an action of the policy table, under its update's name,
// and every decision's role may decide.
func TestControlsAndDecisionsAreInThePolicy(t *testing.T) {
	for _, name := range []string{UpdateEscalate, UpdateDeEscalate, UpdateSkipStage, UpdateReopenStage, UpdatePartnerRole, UpdateWarn, UpdateShare, UpdateComment} {
		if len(authz.Roles(authz.Action(name))) == 0 {
			t.Errorf("control %s has no roles in the policy table", name)
		}
	}
	for _, dt := range decisionTypes {
		if !authz.Allowed(authz.Decide, []demarchev1.Role{dt.role}) {
			t.Errorf("%s is taken by a %s, whom the policy does not let decide", dt.kind, dt.role.Slug())
		}
	}
}

// TestDecisionIDsAreNotTheDrillPolicys: an update named like a drill
// policy's decision (auto-<n>) is refused, naming the rule.
func TestDecisionIDsAreNotTheDrillPolicys(t *testing.T) {
	h := newHarness(t)
	var refused error
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(UpdateDecide, "auto-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { refused = err }, OnAccept: func() {}, OnComplete: func(_ any, err error) {},
		}, &demarchev1.DecisionRequest{Principal: "alice", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}, Rationale: "x",
			Decision: &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "credible"}}})
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.CancelWorkflow() }, 2*time.Minute)
	h.env.ExecuteWorkflow(WorkflowName, &demarchev1.CrisisWorkflowInput{Crisis: crisisFor(mustPlaybook(t, "general")), Playbook: mustPlaybook(t, "general")})
	if refused == nil || !strings.Contains(refused.Error(), "rule decision-id") {
		t.Fatalf("update auto-1: %v, want the decision-id rule", refused)
	}
}
