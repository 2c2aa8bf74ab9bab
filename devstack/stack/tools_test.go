package stack_test

import (
	"context"
	"strings"
	"testing"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestCoupCrisisGetsAnInquiryAndMoneyBeforeDeployment walks a coup as the
// report does (issue 27, item 1), through the CLI on the embedded stack: the
// head of department adds a joint inquiry with ECOWAS to a playbook that has
// no fact-finding; during good offices a desk officer asks for rapid funding,
// which opens the funding stage beside good offices, and another officer
// approves it, paid by the funding service; the envoy appointment names the
// request that pays for the deployment (an unapproved one is refused), and
// the playbook's own funding phase does not run again.
func TestCoupCrisisGetsAnInquiryAndMoneyBeforeDeployment(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	cli := mustCLI(t, s)
	var id string
	state := func() *demarchev1.CrisisState {
		st, err := crisis.State(ctx, tc, id)
		if err != nil {
			return nil
		}
		return st
	}
	waitPending := func(kind string) {
		t.Helper()
		waitFor(t, func() bool {
			for _, p := range state().GetPendingDecisions() {
				if p.GetKind() == kind {
					return true
				}
			}
			return false
		})
	}
	stageStatus := func(st *demarchev1.CrisisState, stage demarchev1.Stage) []demarchev1.StageStatus {
		var out []demarchev1.StageStatus
		for _, r := range st.GetTimeline() {
			if r.GetStage() == stage {
				out = append(out, r.GetStatus())
			}
		}
		return out
	}

	id = openedID(t, cli("crisis", "open", "--title", "Military takeover in Conakry", "--country", "GN",
		"--type", "unconstitutional-change", "--severity", "4"))
	waitPending("triage")
	cli("crisis", "decide", "triage", id, "--as", "duty-officer", "--rationale", "junta on state television", "--assessment", "coup under way")

	// Fact-finding anywhere: the coup playbook has none, the head of department adds it.
	cli("crisis", "decide", "fact-finding-added", id, "--as", "head", "--rationale", "killings at the stadium: an impartial inquiry",
		"--joint-with", "ECOWAS")
	if _, err := runCLI(t, s, "crisis", "decide", "fact-finding-added", id, "--as", "head", "--rationale", "again"); err == nil ||
		!strings.Contains(err.Error(), "rule one-run") {
		t.Fatalf("a second fact-finding while one runs: %v", err)
	}

	// Money from good offices on: the request opens the funding stage beside good offices.
	waitPending("good-offices")
	cli("crisis", "decide", "funding-request", id, "--as", "alice", "--rationale", "the standby team must travel now",
		"--funding-request", "FR-1", "--fund", "flexible-financing", "--amount", "90000", "--purpose", "standby team deployment")
	waitPending("funding-decision")
	cli("crisis", "decide", "funding-decision", id, "--as", "bob", "--rationale", "within ceiling", "--funding-request", "FR-1", "--approve")
	waitFor(t, func() bool {
		st := state()
		return st != nil && len(stageStatus(st, demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING)) == 1 &&
			stageStatus(st, demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING)[0] == demarchev1.StageStatus_STAGE_STATUS_COMPLETED
	})
	if st := state(); !strings.Contains(stageList(st.GetActiveStages()), "good-offices") {
		t.Fatalf("good offices should still run beside the paid funding: active %v", st.GetActiveStages())
	}
	if out := cli("fund", "ledger", "--fund", "flexible-financing"); !strings.Contains(out, id) {
		t.Fatalf("the ledger lacks the disbursement before deployment:\n%s", out)
	}
	cli("crisis", "decide", "good-offices", id, "--as", "head", "--rationale", "ECOWAS leads; the UN supports", "--option", "demarche")

	// The inquiry is mandated and reports, beside the envoy stage.
	cli("crisis", "decide", "fact-finding-mandate", id, "--as", "alice", "--rationale", "commission of inquiry",
		"--terms", "establish the events of 28 September", "--body", "secretary-general", "--team", "med-claire-dubois",
		"--report-due", time.Now().Add(30*24*time.Hour).UTC().Format("2006-01-02"))
	cli("crisis", "decide", "fact-finding-report", id, "--as", "alice", "--rationale", "findings delivered", "--summary", "crimes against humanity likely")

	waitPending("envoy-appointment")
	if _, err := runCLI(t, s, "crisis", "decide", "envoy-appointment", id, "--as", "head", "--rationale", "x",
		"--envoy", "env-amara-diallo", "--standby-team", "sb-fatou-sow", "--paid-by", "FR-9"); err == nil || !strings.Contains(err.Error(), "rule paid-by-approved") {
		t.Fatalf("an appointment paid by an unknown request: %v", err)
	}
	cli("crisis", "decide", "envoy-appointment", id, "--as", "head", "--rationale", "regional standing",
		"--envoy", "env-amara-diallo", "--standby-team", "sb-fatou-sow", "--paid-by", "FR-1")
	cli("crisis", "decide", "standby-team-deployed", id, "--as", "msu", "--rationale", "team on the ground", "--location", "Conakry")

	waitFor(t, func() bool {
		st := state()
		return st != nil && len(st.GetActiveStages()) == 1 && st.GetActiveStages()[0] == demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP
	})
	cli("crisis", "skip", id, "--stage", "sustained-follow-up", "--as", "head", "--reason", "handed over")
	waitPending("closure")
	cli("crisis", "decide", "closure", id, "--as", "head", "--rationale", "transition on track", "--outcome", "contained", "--lesson", "money before the team")
	run := tc.GetWorkflow(ctx, crisis.WorkflowID(id), "")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := run.Get(wctx, nil); err != nil {
		t.Fatalf("crisis did not complete: %v", err)
	}

	st := state()
	if got := stageStatus(st, demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING); len(got) != 1 {
		t.Fatalf("funding ran %d times (%v): the playbook's phase must not run it again", len(got), got)
	}
	if got := stageStatus(st, demarchev1.Stage_STAGE_FACT_FINDING); len(got) != 1 || got[0] != demarchev1.StageStatus_STAGE_STATUS_COMPLETED {
		t.Fatalf("fact-finding in the timeline: %v", got)
	}
	var funded, deployed time.Time
	for _, d := range st.GetDecisions() {
		switch d.GetKind() {
		case "funding-decision":
			funded = d.GetDecidedAt().AsTime()
		case "standby-team-deployed":
			deployed = d.GetDecidedAt().AsTime()
		case "envoy-appointment":
			if d.GetRequest().GetEnvoyAppointment().GetFundingRequestId() != "FR-1" {
				t.Fatalf("appointment does not name FR-1: %v", d)
			}
		}
	}
	if funded.IsZero() || !funded.Before(deployed) {
		t.Fatalf("funding approved %v, team deployed %v: the money must come first", funded, deployed)
	}
	trail := cli("audit", "replay", "--crisis", id)
	for _, want := range []string{"histories replay deterministically", "[fact-finding-added] by head", "a joint inquiry with ECOWAS",
		"paid by funding request FR-1", "paid USD 90000"} {
		if !strings.Contains(trail, want) {
			t.Fatalf("audit replay lacks %q:\n%s", want, trail)
		}
	}
}

func stageList(stages []demarchev1.Stage) string {
	var out []string
	for _, s := range stages {
		out = append(out, s.Slug())
	}
	return strings.Join(out, ",")
}

// TestStandbyTeamSupportsAPartnerLedMediationAndIsReleasedAtHandBack: the
// standby team deploys alone, with no UN envoy, in support of a SADC-led
// mediation (¶20 "assist the mediation efforts of the Southern African Development Community");
// the roster books the team only; when its deployment ends the mediation
// support unit hands it back and the roster releases it at
// once, not at closure. Refused: a team supporting nothing named, and a
// hand-back before any deployment.
func TestStandbyTeamSupportsAPartnerLedMediationAndIsReleasedAtHandBack(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	cli := mustCLI(t, s)
	refused := func(rule string, args ...string) {
		t.Helper()
		if _, err := runCLI(t, s, args...); err == nil || !strings.Contains(err.Error(), "rule "+rule) {
			t.Fatalf("demarche %s: %v, want rule %s", strings.Join(args, " "), err, rule)
		}
	}
	id := openedID(t, cli("crisis", "open", "--title", "Political crisis in Antananarivo", "--country", "MG",
		"--type", "constitutional-crisis", "--severity", "3"))
	pending := func(kind string) bool {
		st, err := crisis.State(ctx, tc, id)
		if err != nil {
			return false
		}
		for _, p := range st.GetPendingDecisions() {
			if p.GetKind() == kind {
				return true
			}
		}
		return false
	}
	for _, stage := range []string{"warning", "good-offices"} {
		cli("crisis", "skip-stage", id, "--stage", stage, "--as", "duty-officer", "--reason", "SADC leads the mediation")
	}
	waitFor(t, func() bool { return pending("envoy-appointment") })
	refused("deployed-first", "crisis", "decide", "standby-team-handed-back", id, "--as", "msu", "--rationale", "x", "--handed-to", "SADC")
	refused("envoy-or-supports", "crisis", "decide", "envoy-appointment", id, "--as", "head", "--rationale", "x", "--standby-team", "sb-fatou-sow")
	cli("crisis", "decide", "envoy-appointment", id, "--as", "head", "--rationale", "SADC asked for process-design support",
		"--standby-team", "sb-fatou-sow,sb-grace-okafor", "--supports", "SADC-led mediation")
	out := cli("roster", "assignments", "--crisis", id)
	if !strings.Contains(out, "sb-fatou-sow") || !strings.Contains(out, "standby-2") || strings.Contains(out, "env-") {
		t.Fatalf("the team alone should be booked, no envoy:\n%s", out)
	}
	cli("crisis", "decide", "standby-team-deployed", id, "--as", "msu", "--rationale", "team with the SADC mediator", "--location", "Antananarivo")
	cli("crisis", "decide", "standby-team-handed-back", id, "--as", "msu", "--rationale", "roadmap drafted; SADC carries on",
		"--handed-to", "SADC mediation team")
	if out := cli("roster", "assignments", "--crisis", id); strings.Contains(out, "sb-fatou-sow") || strings.Contains(out, "sb-grace-okafor") {
		t.Fatalf("the hand-back did not release the team:\n%s", out)
	}
	if st, err := crisis.State(ctx, tc, id); err != nil || st.GetClosedAt() != nil {
		t.Fatalf("the crisis should still be open after the hand-back: %v, %v", st.GetClosedAt(), err)
	}
	refused("deployed-first", "crisis", "decide", "standby-team-handed-back", id, "--as", "msu", "--rationale", "again", "--handed-to", "SADC")
	trail := cli("audit", "replay", "--crisis", id)
	for _, want := range []string{"histories replay deterministically", "in support of SADC-led mediation, no UN envoy",
		"[standby-team-handed-back] by msu", "handed back to SADC mediation team"} {
		if !strings.Contains(trail, want) {
			t.Fatalf("audit replay lacks %q:\n%s", want, trail)
		}
	}
}

// TestEngagementsAreLoggedAcrossStagesOnTheStack: good offices as sustained
// engagement (issue 27, item 2) through the CLI: visits, a call and a public
// statement logged across the warning and good-offices stages, counted on
// the crisis page (crisis show) and in the closure figures.
func TestEngagementsAreLoggedAcrossStagesOnTheStack(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	cli := mustCLI(t, s)
	id := openedID(t, cli("crisis", "open", "--title", "Transition talks in Conakry", "--country", "GN", "--type", "general", "--severity", "3"))
	engage := func(kind, with string, public bool) {
		args := []string{"crisis", "decide", "engagement", id, "--as", "alice", "--rationale", "transition calendar",
			"--type", kind, "--by", "srsg-west-africa", "--with", with}
		if public {
			args = append(args, "--public")
		}
		cli(args...)
	}
	waitFor(t, func() bool {
		st, err := crisis.State(ctx, tc, id)
		return err == nil && len(st.GetPendingDecisions()) > 0
	})
	engage("visit", "the transitional authorities", false)
	engage("call", "the opposition coalition", false)
	cli("crisis", "decide", "triage", id, "--as", "duty-officer", "--rationale", "talks stalled", "--assessment", "tensions rising")
	engage("public-statement", "the press", true)
	engage("meeting-with-party", "the junta", false)
	out := cli("crisis", "show", id)
	if !strings.Contains(out, "good-offices engagements: 4 (1 public, 3 quiet)") {
		t.Fatalf("crisis show does not count the engagements:\n%s", out)
	}
	for _, stage := range []string{"good-offices", "fact-finding", "envoy-deployment", "rapid-response-funding", "sustained-follow-up"} {
		cli("crisis", "skip-stage", id, "--stage", stage, "--as", "duty-officer", "--reason", "engagement is enough")
	}
	waitFor(t, func() bool {
		st, err := crisis.State(ctx, tc, id)
		if err != nil {
			return false
		}
		for _, p := range st.GetPendingDecisions() {
			if p.GetKind() == "closure" && len(st.GetActiveStages()) == 0 {
				return true
			}
		}
		return false
	})
	cli("crisis", "decide", "closure", id, "--as", "head", "--rationale", "calendar agreed", "--outcome", "averted", "--lesson", "sustained engagement")
	run := tc.GetWorkflow(ctx, crisis.WorkflowID(id), "")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := run.Get(wctx, nil); err != nil {
		t.Fatalf("crisis did not complete: %v", err)
	}
	if out := cli("crisis", "show", id); !strings.Contains(out, "engagements              4") {
		t.Fatalf("the closure figures do not count the engagements:\n%s", out)
	}
}
