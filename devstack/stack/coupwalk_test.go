package stack_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/natsauth"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestCoupWalkOnTheStack is issue 27's "Done when", walked through the CLI
// on the embedded stack as a political affairs officer would through an
// unconstitutional change of government (the report's Guinea:
// ¶55 "over 40 working visits to Conakry"):
//
//  0. before the coup, an analyst's early-warning dialogue with ECOWAS about
//     the situation (¶66 "early warning dialogues"): recorded through the
//     API with who from the credential, listed by warning score and the
//     console's situation page, on the global audit chain; an unknown
//     organisation, a situation without signals, a missing summary and a
//     desk officer are refused;
//  1. the crisis opened two hours after the first signal; ECOWAS leads
//     (¶51 "in a lead role, in a supporting role"), the AU supports;
//  2. the envoy's first working visit, then triage;
//  3. a commission of inquiry added by the head of department to a playbook
//     without fact-finding, joint with ECOWAS (fact-finding-added;
//     ¶32 "joint factfinding inquiry", ¶55 "a United Nations-led Commission of Inquiry");
//  4. a Security Council briefing (council-action; ¶13 "must be answered on a case-by-case basis");
//  5. during good offices, rapid funding requested and approved by two
//     funding officers (the fund's quorum above USD 500,000; the requester
//     never approves) and paid (¶17 "more flexible financing for rapid response");
//  6. only then the standby team deploys, no UN envoy, in support of the
//     ECOWAS-led mediation, paid by that request (envoy-appointment
//     --supports --paid-by; ¶6 "non-United Nations mediation efforts",
//     ¶19 "made possible through the rapid deployment of a mediation support team");
//  7. forty engagements in all, across the stages, quiet and public;
//  8. the standby team handed back when its work ends
//     (¶67 "in-high-demand services of the Standby Team of Mediation Experts");
//  9. follow-up engagements, then closure handed over to the Peacebuilding
//     Commission (¶15 "The Peacebuilding Commission").
//
// Every step is a decision in the crisis's history (the order asserted), the
// audit trail names each in the report's words, and the closure's figures
// are checked: 40 engagements, 1 Council action, the funding approved before
// the deployment (lead time > 0), one deployment without a UN envoy.
func TestCoupWalkOnTheStack(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	cli := mustCLI(t, s)
	today := time.Now().UTC().Format(time.DateOnly)
	state := func(id string) *demarchev1.CrisisState {
		t.Helper()
		st, err := crisis.State(ctx, tc, id)
		if err != nil {
			t.Fatalf("crisis state: %v", err)
		}
		return st
	}

	// 0. Early warning: a signal, then a dialogue with ECOWAS about the situation.
	analyst := []string{"analyst"}
	asAnalyst := func(args ...string) string {
		t.Helper()
		out, err := runCLIWith(t, s, "amina", analyst, args...)
		if err != nil {
			t.Fatalf("demarche %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	asAnalyst("warning", "report", "--country", "GN", "--type", "unconstitutional-change", "--severity", "3",
		"--summary", "Troops deployed around the presidential palace")
	talk := []string{"warning", "dialogue", "--country", "GN", "--type", "unconstitutional-change", "--organisation", "ecowas", "--date", today,
		"--summary", "ECOWAS early-warning directorate: troop movements around Conakry", "--outcome", "shared assessment: a coup is possible within weeks"}
	if out := asAnalyst(talk...); !strings.Contains(out, "recorded the early-warning dialogue") || !strings.Contains(out, "with ECOWAS on GN unconstitutional-change") {
		t.Fatalf("warning dialogue:\n%s", out)
	}
	if out := asAnalyst(talk...); !strings.Contains(out, "already recorded: nothing changed") {
		t.Fatalf("the same dialogue again:\n%s", out)
	}
	for _, tc := range []struct {
		name  string
		roles []string
		args  []string
		says  string
	}{
		{"an unknown organisation", analyst, []string{"--country", "GN", "--type", "unconstitutional-change", "--organisation", "NATO",
			"--summary", "x", "--outcome", "y"}, "dialogue.organisation: not a regional organisation of the partner registry"},
		{"a situation without signals", analyst, []string{"--country", "NO", "--type", "border-dispute", "--organisation", "AU",
			"--summary", "x", "--outcome", "y"}, "no such situation NO-border-dispute"},
		{"no summary", analyst, []string{"--country", "GN", "--type", "unconstitutional-change", "--organisation", "AU", "--outcome", "y"},
			"dialogue.summary: is required"},
		{"a desk officer may not", []string{"desk-officer"}, []string{"--country", "GN", "--type", "unconstitutional-change", "--organisation", "AU",
			"--summary", "x", "--outcome", "y"}, "situations.dialogue needs one of the roles analyst, head-of-department"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLIWith(t, s, "amina", tc.roles, append([]string{"warning", "dialogue"}, tc.args...)...)
			if err == nil || !strings.Contains(out+errText(err), tc.says) {
				t.Fatalf("got %v:\n%s\nwant a refusal saying %q", err, out, tc.says)
			}
		})
	}
	if out := asAnalyst("warning", "score", "--country", "GN", "--type", "unconstitutional-change"); !strings.Contains(out, "early-warning dialogues with regional organisations: 1\n") ||
		!strings.Contains(out, today+" with ECOWAS (recorded by amina): ECOWAS early-warning directorate") {
		t.Fatalf("warning score does not list the dialogue:\n%s", out)
	}
	if page := getConsolePage(t, s.APIURL(), testToken(t, s, "amina", analyst...), "/console/situations/GN/unconstitutional-change"); !strings.Contains(page, `data-dialogue="`) ||
		!strings.Contains(page, "shared assessment: a coup is possible within weeks") {
		t.Fatalf("the console's situation page does not show the dialogue:\n%.3000s", page)
	}
	gnc, _ := jsAs(t, s, natsauth.Gateway) // chains are read through the gateway
	chain, err := audit.FetchChain(ctx, gnc, "", "auditor-test")
	if err != nil {
		t.Fatal(err)
	}
	var dialogues []*demarchev1.AuditRecord
	for _, r := range chain.GetRecords() {
		if r.GetEventType() == audit.WarningDialogueEventType {
			dialogues = append(dialogues, r)
		}
	}
	if len(dialogues) != 1 || dialogues[0].GetPrincipal() != "amina" || !strings.Contains(dialogues[0].GetDetail(), "with ECOWAS about situation GN-unconstitutional-change") {
		t.Fatalf("warning-dialogue records on the global chain: %v", dialogues)
	}

	// 1. Opened, ECOWAS leading.
	id := openedID(t, cli("crisis", "open", "--title", "Military takeover in Conakry", "--country", "GN",
		"--type", "unconstitutional-change", "--severity", "4", "--share-with", "ECOWAS,AU",
		"--first-signal-at", time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339), "--as", "head-test"))
	cli("crisis", "partner-role", id, "--partner", "ECOWAS", "--role", "lead", "--as", "head-test")
	cli("crisis", "partner-role", id, "--partner", "AU", "--role", "support", "--as", "head-test")

	engagements := 0
	engage := func(n int, kinds ...string) {
		t.Helper()
		for i := 0; i < n; i++ {
			kind := kinds[i%len(kinds)]
			args := []string{"crisis", "decide", "engagement", id, "--as", "alice", "--rationale", fmt.Sprintf("working visit %d: return to constitutional order", engagements+1),
				"--type", kind, "--by", "srsg-west-africa", "--with", []string{"the junta", "the Forces vives", "the transitional council"}[engagements%3]}
			if kind == "public-statement" {
				args = append(args, "--public")
			}
			cli(args...)
			engagements++
		}
	}

	// 2. The first visit is the first response action; triage follows.
	waitPendingKind(t, tc, id, "triage")
	engage(1, "visit")
	cli("crisis", "decide", "triage", id, "--as", "duty-officer", "--rationale", "the junta on state television", "--assessment", "coup under way")

	// 3. A commission of inquiry, joint with ECOWAS, added to a playbook that has none.
	cli("crisis", "decide", "fact-finding-added", id, "--as", "head", "--rationale", "killings at the stadium: a commission of inquiry",
		"--joint-with", "ECOWAS")

	// 4. The Council briefed.
	cli("crisis", "decide", "council-action", id, "--as", "head", "--rationale", "the Council is kept informed",
		"--type", "briefing", "--date", today, "--outcome", "members called for a return to constitutional order")

	// 5. Money during good offices, before anyone deploys: two approvers for USD 600,000.
	waitPendingKind(t, tc, id, "good-offices")
	engage(9, "visit", "call", "meeting-with-party", "public-statement")
	cli("crisis", "decide", "funding-request", id, "--as", "alice", "--rationale", "the standby team must travel now",
		"--funding-request", "FR-1", "--fund", "flexible-financing", "--amount", "600000", "--purpose", "standby team in support of the ECOWAS mediation")
	waitPendingKind(t, tc, id, "funding-decision")
	if _, err := runCLI(t, s, "crisis", "decide", "funding-decision", id, "--as", "alice", "--rationale", "mine", "--funding-request", "FR-1", "--approve"); err == nil ||
		!strings.Contains(err.Error(), "rule four-eyes") {
		t.Fatalf("the requester approving her own request: %v, want rule four-eyes", err)
	}
	cli("crisis", "decide", "funding-decision", id, "--as", "bob", "--rationale", "within the ceiling", "--funding-request", "FR-1", "--approve")
	cli("crisis", "decide", "funding-decision", id, "--as", "carol", "--rationale", "second approval", "--funding-request", "FR-1", "--approve")
	waitFor(t, func() bool {
		out, err := runCLI(t, s, "fund", "ledger", "--fund", "flexible-financing")
		return err == nil && strings.Contains(out, id)
	})
	engage(10, "visit", "call", "meeting-with-party")
	cli("crisis", "decide", "good-offices", id, "--as", "head", "--rationale", "ECOWAS leads the mediation; the UN supports", "--option", "quiet-diplomacy")

	// The inquiry mandated and reporting.
	cli("crisis", "decide", "fact-finding-mandate", id, "--as", "alice", "--rationale", "a United Nations-led commission of inquiry",
		"--terms", "establish the facts and circumstances of the events of 28 September", "--body", "secretary-general", "--team", "med-claire-dubois",
		"--report-due", time.Now().Add(30*24*time.Hour).UTC().Format(time.DateOnly))
	cli("crisis", "decide", "fact-finding-report", id, "--as", "alice", "--rationale", "findings delivered", "--summary", "crimes against humanity likely committed")

	// 6. The standby team alone, for the ECOWAS-led mediation, paid by FR-1.
	waitPendingKind(t, tc, id, "envoy-appointment")
	cli("crisis", "decide", "envoy-appointment", id, "--as", "head", "--rationale", "ECOWAS asked for process-design and constitution-making support",
		"--standby-team", "sb-fatou-sow,sb-grace-okafor", "--supports", "ECOWAS-led mediation", "--paid-by", "FR-1")
	cli("crisis", "decide", "standby-team-deployed", id, "--as", "msu", "--rationale", "team with the ECOWAS mediator", "--location", "Conakry")

	// 7–8. Sustained engagement while the team works; the team handed back.
	engage(10, "visit", "meeting-with-party", "call")
	cli("crisis", "decide", "standby-team-handed-back", id, "--as", "msu", "--rationale", "transition charter drafted; ECOWAS carries on",
		"--handed-to", "ECOWAS mediation team")
	if out := cli("roster", "assignments", "--crisis", id); strings.Contains(out, "sb-fatou-sow") || strings.Contains(out, "sb-grace-okafor") {
		t.Fatalf("the hand-back did not release the team:\n%s", out)
	}

	// 9. Follow-up: the visits go on until forty; then the hand-over.
	waitFor(t, func() bool {
		st := state(id)
		return len(st.GetActiveStages()) == 1 && st.GetActiveStages()[0] == demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP
	})
	engage(40-engagements, "visit", "call", "public-statement")
	if out := cli("crisis", "show", id); !strings.Contains(out, "good-offices engagements: 40 (") {
		t.Fatalf("crisis show does not count forty engagements:\n%s", out)
	}
	cli("crisis", "skip-stage", id, "--stage", "sustained-follow-up", "--as", "head", "--reason", "elections held; the Peacebuilding Commission takes over")
	waitPendingKind(t, tc, id, "closure")
	cli("crisis", "decide", "closure", id, "--as", "head", "--rationale", "constitutional order restored", "--outcome", "contained",
		"--lesson", "rapid funding made the standby team's support of the regional mediation possible", "--hand-over-to", "peacebuilding-commission")
	run := tc.GetWorkflow(ctx, crisis.WorkflowID(id), "")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := run.Get(wctx, nil); err != nil {
		t.Fatalf("crisis did not complete: %v", err)
	}

	// Every step a first-class decision, in the order walked.
	st := state(id)
	var kinds []string
	var funded, appointed, deployed time.Time
	for _, d := range st.GetDecisions() {
		if d.GetKind() == "engagement" {
			continue
		}
		kinds = append(kinds, d.GetKind())
		switch d.GetKind() {
		case "funding-decision":
			funded = d.GetDecidedAt().AsTime()
		case "envoy-appointment":
			appointed = d.GetDecidedAt().AsTime()
			if a := d.GetRequest().GetEnvoyAppointment(); a.GetEnvoy() != "" || a.GetSupports() != "ECOWAS-led mediation" || a.GetFundingRequestId() != "FR-1" {
				t.Errorf("the appointment: %v, want no envoy, supporting the ECOWAS-led mediation, paid by FR-1", a)
			}
		case "standby-team-deployed":
			deployed = d.GetDecidedAt().AsTime()
		}
	}
	want := []string{"triage", "fact-finding-added", "council-action", "funding-request", "funding-decision", "funding-decision",
		"good-offices", "fact-finding-mandate", "fact-finding-report", "envoy-appointment", "standby-team-deployed", "standby-team-handed-back", "closure"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("decisions (engagements aside):\n %v\nwant\n %v", kinds, want)
	}
	if funded.IsZero() || !funded.Before(appointed) || !appointed.Before(deployed) {
		t.Fatalf("funding approved %v, team appointed %v, deployed %v: the money must come first", funded, appointed, deployed)
	}

	// The figures.
	f := st.GetFigures()
	switch {
	case f.GetEngagements() != 40:
		t.Errorf("engagements %d, want 40", f.GetEngagements())
	case f.GetCouncilActions() != 1:
		t.Errorf("council actions %d, want 1", f.GetCouncilActions())
	case f.GetDeploymentsWithEnvoy() != 0 || f.GetDeploymentsWithoutEnvoy() != 1:
		t.Errorf("deployments %d with a UN envoy, %d without; want 0 and 1", f.GetDeploymentsWithEnvoy(), f.GetDeploymentsWithoutEnvoy())
	case f.GetFundingLeadTime() == nil || f.GetFundingLeadTime().AsDuration() <= 0:
		t.Errorf("funding lead time %v, want the approval ahead of the deployment", f.GetFundingLeadTime())
	case f.GetFirstAction() != "engagement" || f.GetWarningToAction().AsDuration() < 2*time.Hour:
		t.Errorf("first action %q after %v, want the first visit, two hours after the first signal", f.GetFirstAction(), f.GetWarningToAction().AsDuration())
	case f.GetFundingDisbursedUsd() != 600_000:
		t.Errorf("disbursed USD %d, want 600000", f.GetFundingDisbursedUsd())
	}
	show := cli("crisis", "show", id)
	for _, w := range []string{"engagements              40\n", "council actions          1\n", "deployments              0 with a UN envoy, 1 without\n",
		"handed over to the Peacebuilding Commission"} {
		if !strings.Contains(show, w) {
			t.Errorf("crisis show lacks %q:\n%s", w, show)
		}
	}
	if strings.Contains(show, "funding lead time        none before deployment") {
		t.Errorf("crisis show counts no funding lead time:\n%s", show)
	}

	// The trail, in the report's words, replays.
	trail := cli("audit", "replay", "--crisis", id)
	for _, w := range []string{"histories replay deterministically", "[fact-finding-added] by head", "a joint inquiry with ECOWAS",
		"[council-action] by head", "Security Council briefing on " + today, "[funding-decision] by carol",
		"standby team sb-fatou-sow, sb-grace-okafor deployed in support of ECOWAS-led mediation, no UN envoy, paid by funding request FR-1",
		"[standby-team-handed-back] by msu", "handed back to ECOWAS mediation team", "engagement: visit by srsg-west-africa with the junta (quiet)",
		"paid USD 600000"} {
		if !strings.Contains(trail, w) {
			t.Errorf("audit replay lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("audit replay:\n%s", trail)
	}
}
