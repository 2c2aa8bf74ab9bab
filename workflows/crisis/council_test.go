package crisis

// The Security Council's own track and the right clock (issue 27, items 3
// and 7): a council-action in any stage, by the head of department only;
// warning-to-action ends at the first response action, triage kept apart;
// the figures count engagements, Council actions and deployments with and
// without a UN envoy, and the funding lead time before deployment.

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func councilReq(h *harness, typ demarchev1.CouncilActionKind, roles ...demarchev1.Role) *demarchev1.DecisionRequest {
	r := req("hana", &demarchev1.CouncilAction{Type: typ, Date: timestamppb.New(h.env.Now()), Outcome: "members back the mediation"})
	r.Roles = roles
	return r
}

// A Council action is recorded in each stage of the general playbook while
// that stage runs, and none of them moves the crisis on: the stage it was
// taken in still runs after it. Each is recorded under no stage (the
// Council's own track) and published as a DecisionRecorded event.
func TestCouncilActionInEachStage(t *testing.T) {
	h := newHarness(t)
	types := map[demarchev1.Stage]demarchev1.CouncilActionKind{
		demarchev1.Stage_STAGE_WARNING:                demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_ARTICLE_99_LETTER,
		demarchev1.Stage_STAGE_GOOD_OFFICES:           demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_BRIEFING,
		demarchev1.Stage_STAGE_FACT_FINDING:           demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_INFORMAL_INTERACTIVE_DIALOGUE,
		demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT:       demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_PRESIDENTIAL_STATEMENT,
		demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING: demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_PRESS_STATEMENT,
		demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP:    demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_MISSION,
	}
	recorded := map[demarchev1.Stage]bool{}
	stillRunning := map[demarchev1.Stage]bool{}
	var checking []demarchev1.Stage // recorded, its stage to be checked on the next tick
	h.drive(6*time.Hour, func(string) bool {
		st := h.state()
		for _, s := range checking {
			stillRunning[s] = slices.Contains(st.GetActiveStages(), s)
		}
		checking = nil
		for _, s := range st.GetActiveStages() {
			typ, ok := types[s]
			if !ok || recorded[s] {
				continue
			}
			recorded[s] = true
			stage := s
			h.decide(councilReq(h, typ, demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT), func(err error) {
				if err != nil {
					t.Errorf("council action during %s refused: %v", stage.Slug(), err)
				}
			})
			checking = append(checking, s)
			return true // the stage's own decision waits for the next tick
		}
		return false
	})
	final := h.run(mustPlaybook(t, "general"), nil)

	for stage, typ := range types {
		if !recorded[stage] || !stillRunning[stage] {
			t.Errorf("%s: council action recorded %v, stage still running after it %v", stage.Slug(), recorded[stage], stillRunning[stage])
		}
		found := false
		for _, d := range final.GetDecisions() {
			if a := d.GetRequest().GetCouncilAction(); a != nil && a.GetType() == typ {
				found = d.GetKind() == "council-action" && d.GetStage() == demarchev1.Stage_STAGE_UNSPECIFIED && a.GetOutcome() != "" && a.GetDate() != nil
			}
		}
		if !found {
			t.Errorf("%s: no council-action %s with its date and outcome in the decisions", stage.Slug(), typ.Slug())
		}
	}
	if final.GetCouncilActions() != 6 || final.GetFigures().GetCouncilActions() != 6 {
		t.Fatalf("council actions: state %d, figures %d; want 6", final.GetCouncilActions(), final.GetFigures().GetCouncilActions())
	}
	if n := len(h.bus.kinds("DecisionRecorded:council-action")); n != 6 {
		t.Fatalf("%d council-action events, want 6", n)
	}
	if final.GetCurrentStage() != demarchev1.Stage_STAGE_CLOSED {
		t.Fatalf("crisis ended in %v", final.GetCurrentStage())
	}
}

// Only the head of department records a Council action: every other
// operating role is refused by the workflow (rule role), whatever it holds.
func TestCouncilActionByAnotherRoleIsRefused(t *testing.T) {
	cases := []struct {
		role demarchev1.Role
		rule string // "" : accepted
	}{
		{demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT, ""},
		{demarchev1.Role_ROLE_DUTY_OFFICER, "rule role:"},
		{demarchev1.Role_ROLE_DESK_OFFICER, "rule role:"},
		{demarchev1.Role_ROLE_FUNDING_OFFICER, "rule role:"},
		{demarchev1.Role_ROLE_MEDIATION_SUPPORT, "rule role:"},
	}
	h := newHarness(t)
	got := make([]error, len(cases))
	answered := make([]bool, len(cases))
	h.at(time.Minute, func() {
		for i, c := range cases {
			h.decide(councilReq(h, demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_ARTICLE_99_LETTER, c.role), func(err error) { got[i], answered[i] = err, true })
		}
	})
	h.drive(6*time.Hour, nil)
	final := h.run(mustPlaybook(t, "general"), nil)
	for i, c := range cases {
		switch {
		case !answered[i]:
			t.Errorf("%s: no answer", c.role.Slug())
		case c.rule == "" && got[i] != nil:
			t.Errorf("%s: refused: %v", c.role.Slug(), got[i])
		case c.rule != "" && (got[i] == nil || !strings.Contains(got[i].Error(), c.rule)):
			t.Errorf("%s: %v, want %s", c.role.Slug(), got[i], c.rule)
		}
	}
	if final.GetCouncilActions() != 1 {
		t.Fatalf("%d council actions recorded, want the head of department's only", final.GetCouncilActions())
	}
}

// The clock: the crisis's first signal is 6h before it opens. A Council
// briefing one minute after opening, before triage, is the first response
// action: warning-to-action ends there (6h1m), and triage (6h later) is kept
// as its own time. Without a Council action the clock runs on past triage to
// the good-offices option.
func TestWarningToActionEndsAtACouncilAction(t *testing.T) {
	cases := []struct {
		name      string
		council   bool
		w2a       time.Duration
		first     string
		w2aTriage time.Duration
	}{
		{"a Council briefing before triage", true, 6*time.Hour + time.Minute, "council-action", 12 * time.Hour},
		{"no Council action: good offices is first", false, 18 * time.Hour, "good-offices", 12 * time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			if c.council {
				h.at(time.Minute, func() {
					h.decide(councilReq(h, demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_BRIEFING, demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT), func(err error) {
						if err != nil {
							t.Errorf("briefing refused: %v", err)
						}
					})
				})
			}
			h.drive(6*time.Hour, nil)
			f := h.run(mustPlaybook(t, "general"), nil).GetFigures()
			if got := f.GetWarningToAction().AsDuration(); got != c.w2a || f.GetFirstAction() != c.first {
				t.Fatalf("warning to action %v ending at %q, want %v at %q", got, f.GetFirstAction(), c.w2a, c.first)
			}
			if got := f.GetWarningToTriage().AsDuration(); got != c.w2aTriage {
				t.Fatalf("warning to triage %v, want %v", got, c.w2aTriage)
			}
		})
	}
}

// The figures on a crisis with engagements and a deployment, with a UN envoy
// and without one (the standby team alone in support of a partner-led
// mediation, paid by funding approved during good offices: the lead time is
// from that approval to the deployment).
func TestFiguresCountEngagementsAndDeploymentsWithAndWithoutAnEnvoy(t *testing.T) {
	cases := []struct {
		name             string
		envoy            string
		prepaid          bool // funding requested and approved during good offices, named by the appointment
		with, without    int32
		wantLead         bool
		engagements      int32
		wantFirstActions string
	}{
		{"a UN envoy, funding after deployment", "dora", false, 1, 0, false, 2, "engagement"},
		{"the standby team alone, paid before it deploys", "", true, 0, 1, true, 2, "engagement"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.at(time.Minute, func() {
				for _, typ := range []demarchev1.EngagementKind{demarchev1.EngagementKind_ENGAGEMENT_KIND_CALL, demarchev1.EngagementKind_ENGAGEMENT_KIND_VISIT} {
					r := req("dana", &demarchev1.GoodOfficesEngagement{Type: typ, By: "srsg-west-africa", With: "the junta"})
					r.Roles = allRoles
					h.decide(r, func(err error) {
						if err != nil {
							t.Errorf("engagement refused: %v", err)
						}
					})
				}
			})
			requested, approved := false, false
			var approvedAt, appointedAt time.Time
			h.drive(6*time.Hour, func(kind string) bool {
				st := h.state()
				switch {
				case !c.prepaid:
				case kind == "good-offices" && slices.Contains(st.GetActiveStages(), demarchev1.Stage_STAGE_GOOD_OFFICES) && !requested:
					requested = true
					r := req("alice", &demarchev1.FundingRequest{RequestId: "FR-1", Fund: "peacebuilding-irf", AmountUsd: 90_000, Purpose: "standby team travel"})
					r.Roles = allRoles
					h.decide(r, func(err error) {
						if err != nil {
							t.Errorf("funding request refused: %v", err)
						}
					})
					return true
				case kind == "good-offices" && !approved:
					return true
				case kind == "funding-decision" && !approved:
					approved, approvedAt = true, h.env.Now()
				}
				if kind != "envoy-appointment" {
					return false
				}
				a := &demarchev1.EnvoyAppointment{Envoy: c.envoy, StandbyTeam: []string{"erin"}}
				if c.envoy == "" {
					a.Supports = "ECOWAS-led mediation"
				}
				if c.prepaid {
					a.FundingRequestId = "FR-1"
				}
				r := req("hana", a)
				r.Roles = allRoles
				appointedAt = h.env.Now()
				h.decide(r, func(err error) {
					if err != nil {
						t.Errorf("appointment refused: %v", err)
					}
				})
				return true
			})
			final := h.run(mustPlaybook(t, "general"), nil)
			f := final.GetFigures()
			if f.GetEngagements() != c.engagements || f.GetFirstAction() != c.wantFirstActions {
				t.Fatalf("engagements %d, first action %q; want %d, %q", f.GetEngagements(), f.GetFirstAction(), c.engagements, c.wantFirstActions)
			}
			if f.GetDeploymentsWithEnvoy() != c.with || f.GetDeploymentsWithoutEnvoy() != c.without {
				t.Fatalf("deployments with an envoy %d, without %d; want %d, %d", f.GetDeploymentsWithEnvoy(), f.GetDeploymentsWithoutEnvoy(), c.with, c.without)
			}
			switch lead := f.GetFundingLeadTime(); {
			case !c.wantLead && lead != nil:
				t.Fatalf("funding lead time %v, want none (funding came after the deployment)", lead.AsDuration())
			case c.wantLead && (lead == nil || lead.AsDuration() != appointedAt.Sub(approvedAt) || lead.AsDuration() <= 0):
				t.Fatalf("funding lead time %v, want %v (approval %v, appointment %v)", lead.AsDuration(), appointedAt.Sub(approvedAt), approvedAt, appointedAt)
			}
		})
	}
}

// The figures read from the decisions, case by case: what ends the clock,
// what counts as a deployment with or without an envoy, and which approval
// gives the funding lead time.
func TestFiguresFromDecisions(t *testing.T) {
	opened := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	at := func(h int, d proto.Message) *demarchev1.DecisionRecord {
		r := req("a", d)
		return &demarchev1.DecisionRecord{Kind: r.DecisionKind(), Request: r, DecidedAt: timestamppb.New(opened.Add(time.Duration(h) * time.Hour))}
	}
	triage := &demarchev1.WarningTriage{Assessment: "x"}
	approve := func(id string, yes bool) *demarchev1.FundingDecision {
		return &demarchev1.FundingDecision{RequestId: id, Approve: yes}
	}
	appoint := func(envoy, paidBy string) *demarchev1.EnvoyAppointment {
		return &demarchev1.EnvoyAppointment{Envoy: envoy, StandbyTeam: []string{"s"}, Supports: "AU-led mediation", FundingRequestId: paidBy}
	}
	cases := []struct {
		name               string
		decisions          []*demarchev1.DecisionRecord
		w2a, triage, lead  time.Duration // -1: unset
		first              string
		withEnvoy, noEnvoy int32
	}{
		{"triage only: no response action", []*demarchev1.DecisionRecord{at(1, triage)}, -1, 1 * time.Hour, -1, "", 0, 0},
		{"a rejected request is no action; the approval is", []*demarchev1.DecisionRecord{
			at(1, triage), at(2, approve("FR-1", false)), at(3, approve("FR-2", true)), at(5, appoint("", "FR-2"))},
			3 * time.Hour, 1 * time.Hour, 2 * time.Hour, "funding-decision", 0, 1},
		{"a fact-finding mandate is a deployment of a mission", []*demarchev1.DecisionRecord{
			at(1, &demarchev1.FactFindingMandate{TermsOfReference: "x"}), at(2, triage)},
			1 * time.Hour, 2 * time.Hour, -1, "fact-finding-mandate", 0, 0},
		{"funding approved after the deployment gives no lead time", []*demarchev1.DecisionRecord{
			at(1, appoint("e", "")), at(4, approve("FR-1", true)), at(6, appoint("", ""))},
			1 * time.Hour, -1, -1, "envoy-appointment", 1, 1},
		{"without paid-by, the first approval before the deployment", []*demarchev1.DecisionRecord{
			at(2, approve("FR-1", true)), at(3, approve("FR-2", true)), at(7, appoint("e", ""))},
			2 * time.Hour, -1, 5 * time.Hour, "funding-decision", 1, 0},
	}
	dur := func(d interface{ AsDuration() time.Duration }, set bool) time.Duration {
		if !set {
			return -1
		}
		return d.AsDuration()
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := &lifecycle{crisis: &demarchev1.Crisis{Id: "GN-1", OpenedAt: timestamppb.New(opened)}, decisions: c.decisions}
			f := l.computeFigures(opened.Add(24 * time.Hour))
			if got := dur(f.GetWarningToAction(), f.GetWarningToAction() != nil); got != c.w2a || f.GetFirstAction() != c.first {
				t.Errorf("warning to action %v (%q), want %v (%q)", got, f.GetFirstAction(), c.w2a, c.first)
			}
			if got := dur(f.GetWarningToTriage(), f.GetWarningToTriage() != nil); got != c.triage {
				t.Errorf("warning to triage %v, want %v", got, c.triage)
			}
			if got := dur(f.GetFundingLeadTime(), f.GetFundingLeadTime() != nil); got != c.lead {
				t.Errorf("funding lead time %v, want %v", got, c.lead)
			}
			if f.GetDeploymentsWithEnvoy() != c.withEnvoy || f.GetDeploymentsWithoutEnvoy() != c.noEnvoy {
				t.Errorf("deployments %d with an envoy, %d without; want %d, %d", f.GetDeploymentsWithEnvoy(), f.GetDeploymentsWithoutEnvoy(), c.withEnvoy, c.noEnvoy)
			}
		})
	}
}
