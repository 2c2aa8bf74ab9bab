package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestPeopleDriveACrisisThroughTheCLI runs a real (non-drill) crisis on the
// embedded stack: every decision and control goes through the CLI, a four-eyes
// violation is rejected without touching the workflow history, and closure
// reports its figures.
func TestPeopleDriveACrisisThroughTheCLI(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	var id string // minted by the platform when the crisis opens
	cli := mustCLI(t, s)
	events := func() int { return settledHistoryLength(t, tc, id) }
	waitPending := func(kind string) {
		t.Helper()
		waitPendingKind(t, tc, id, kind)
	}

	id = openedID(t, cli("crisis", "open", "--title", "Constitutional standoff in Niamey", "--country", "NE",
		"--type", "constitutional-crisis", "--severity", "3", "--first-signal-at", time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339)))
	waitPending("triage")
	cli("crisis", "decide", "triage", id, "--as", "duty-officer", "--rationale", "credible reports", "--assessment", "parliament dissolved")
	cli("crisis", "partner-role", id, "--partner", "ECOWAS", "--role", "lead", "--as", "liaison")
	// A partner acknowledges its own role through the partners service, which
	// signals the crisis (once the service has seen the crisis open).
	waitFor(t, func() bool {
		_, err := runCLI(t, s, "partner", "ack-role", "--partner", "AU", "--crisis", id, "--role", "support", "--as", "au-desk")
		return err == nil
	})
	cli("crisis", "escalate", id, "--as", "duty-officer", "--reason", "protests spreading")
	if out := cli("crisis", "share", id, "--with", "ECOWAS", "--as", "duty-officer", "--reason", "ECOWAS leads the mediation"); !strings.Contains(out, "shared with ECOWAS") {
		t.Fatalf("crisis share: %s", out)
	}
	// An invalid control is refused by the crisis, naming the rule, and
	// leaves no trace in its history.
	before := events()
	if _, err := runCLI(t, s, "crisis", "skip-stage", id, "--stage", "warning", "--as", "duty-officer", "--reason", "x"); err == nil ||
		!strings.Contains(err.Error(), "rule skip-running-or-ahead: stage warning has already ended") {
		t.Fatalf("skipping an ended stage: %v", err)
	}
	if _, err := runCLI(t, s, "crisis", "reopen", id, "--stage", "closed", "--as", "duty-officer", "--reason", "x"); err == nil {
		t.Fatal("reopening the closed pseudo-stage was accepted")
	}
	if after := events(); after != before {
		t.Fatalf("refused controls changed the history: %d -> %d events", before, after)
	}

	waitPending("good-offices")
	// A decision for a stage that is not running is refused, naming the rule.
	if _, err := runCLI(t, s, "crisis", "decide", "appoint-envoy", id, "--as", "alice", "--rationale", "x", "--envoy", "env-lucia-mendez", "--standby-team", "sb-omar-farouk"); err == nil ||
		!strings.Contains(err.Error(), "rule stage-running") {
		t.Fatalf("early envoy appointment: %v", err)
	}
	cli("crisis", "decide", "good-offices", id, "--as", "head", "--rationale", "quiet channel open", "--option", "quiet-diplomacy")

	waitPending("envoy-appointment")
	waitFor(t, func() bool { // the envoy child reports its standby deadline to the crisis
		st, err := crisis.State(ctx, tc, id)
		if err != nil {
			return false
		}
		for _, d := range st.GetDeadlines() {
			if d.GetName() == "standby team deployment" {
				return true
			}
		}
		return false
	})
	out := cli("crisis", "show", id)
	if !strings.Contains(out, "standby team deployment") || !strings.Contains(out, "ECOWAS") || !strings.Contains(out, "AU           support") || !strings.Contains(out, "severity  4") ||
		!strings.Contains(out, "[role head-of-department]") {
		t.Fatalf("crisis show lacks the standby deadline, the partner, the new severity or the role that decides:\n%s", out)
	}
	// An expert booked elsewhere is refused by the roster, and nothing is recorded.
	// (Bookings come only from decisions: the other crisis appoints her.)
	other := openedID(t, cli("crisis", "open", "--title", "Another crisis", "--country", "NE", "--type", "general", "--severity", "2"))
	for _, stage := range []string{"warning", "good-offices", "fact-finding"} {
		cli("crisis", "skip-stage", other, "--stage", stage, "--as", "duty-officer", "--reason", "straight to an envoy")
	}
	waitFor(t, func() bool {
		st, err := crisis.State(ctx, tc, other)
		if err != nil {
			return false
		}
		for _, p := range st.GetPendingDecisions() {
			if p.GetKind() == "envoy-appointment" {
				return true
			}
		}
		return false
	})
	cli("crisis", "decide", "appoint-envoy", other, "--as", "head", "--rationale", "available", "--envoy", "env-nadia-haddad", "--standby-team", "sb-omar-farouk")
	// The roster's 409 keeps its kind through the activity, the workflow and
	// the API: a conflict, not a rule violation.
	if _, err := runCLI(t, s, "crisis", "decide", "appoint-envoy", id, "--as", "head", "--rationale", "x", "--envoy", "env-nadia-haddad", "--standby-team", "sb-fatou-sow"); err == nil ||
		!strings.Contains(err.Error(), "already assigned to crisis "+other) || !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("appointing a booked envoy: %v", err)
	}
	cli("crisis", "decide", "appoint-envoy", id, "--as", "head", "--rationale", "regional standing", "--envoy", "env-amara-diallo", "--standby-team", "sb-fatou-sow,sb-grace-okafor")
	if out := cli("roster", "assignments", "--crisis", id); !strings.Contains(out, "env-amara-diallo") || !strings.Contains(out, "standby-2") || strings.Contains(out, "sb-fatou-sow  ") && false {
		t.Fatalf("the appointment did not book the roster:\n%s", out)
	}
	cli("crisis", "decide", "deployed", id, "--as", "msu", "--rationale", "team on the ground", "--location", "Niamey")

	waitPending("funding-request")
	cli("crisis", "decide", "request-funds", id, "--as", "alice", "--rationale", "mediation costs", "--funding-request", "FR-1",
		"--fund", "flexible-financing", "--amount", "120000", "--purpose", "dialogue venue and travel")
	waitPending("funding-decision")
	before = events()
	_, err := runCLI(t, s, "crisis", "decide", "decide-funds", id, "--as", "alice", "--rationale", "urgent", "--funding-request", "FR-1", "--approve")
	if err == nil || !strings.Contains(err.Error(), "rule four-eyes") || !strings.Contains(err.Error(), "rejected") || !errors.Is(err, errs.ErrRule) {
		t.Fatalf("self-approval: %v", err)
	}
	if after := events(); after != before {
		t.Fatalf("a rejected decision changed the history: %d -> %d events", before, after)
	}
	cli("crisis", "decide", "decide-funds", id, "--as", "bob", "--rationale", "within ceiling", "--funding-request", "FR-1", "--approve")

	// Follow-up would last months: skip it, with a reason, then close.
	waitFor(t, func() bool {
		st, err := crisis.State(ctx, tc, id)
		return err == nil && len(st.GetActiveStages()) == 1 && st.GetActiveStages()[0].String() == "STAGE_SUSTAINED_FOLLOW_UP"
	})
	cli("crisis", "skip", id, "--stage", "sustained-follow-up", "--as", "head", "--reason", "handed over to the peacebuilding office")
	waitPending("closure")
	cli("crisis", "decide", "close", id, "--as", "head", "--rationale", "agreement signed", "--outcome", "averted", "--lesson", "regional lead worked")

	run := tc.GetWorkflow(ctx, crisis.WorkflowID(id), "")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := run.Get(wctx, nil); err != nil {
		t.Fatalf("crisis did not complete: %v", err)
	}
	recordHistories(t, tc, id, crisis.WorkflowName+".json", false)
	out = cli("crisis", "show", id)
	for _, want := range []string{"outcome averted", "funding disbursed        USD 120000", "decisions                7",
		"sustained-follow-up", "skipped", "handed over to the peacebuilding office", "funding-decision", "by bob"} {
		if !strings.Contains(out, want) {
			t.Fatalf("crisis show after closure lacks %q:\n%s", want, out)
		}
	}
	// The money moved through the funding service's ledger, and the roster is free again.
	if out := cli("fund", "ledger", "--fund", "flexible-financing"); !strings.Contains(out, id) || !strings.Contains(out, "4880000") {
		t.Fatalf("ledger lacks the disbursement:\n%s", out)
	}
	if out := cli("roster", "assignments", "--crisis", id); strings.Contains(out, id) {
		t.Fatalf("closure did not release the roster:\n%s", out)
	}
	// An auditor replays the crisis: every decision is in the trail with who and why.
	trailOut := cli("audit", "replay", "--crisis", id)
	if !strings.Contains(trailOut, "histories replay deterministically") || strings.Contains(trailOut, "DOES NOT REPLAY") {
		t.Fatalf("audit replay:\n%s", trailOut)
	}
	for _, want := range []string{
		"[triage] by duty-officer — credible reports",
		"[good-offices] by head — quiet channel open",
		"[envoy-appointment] by head — regional standing",
		"[standby-team-deployed] by msu — team on the ground",
		"[funding-request] by alice — mediation costs",
		"[funding-decision] by bob — within ceiling",
		"[closure] by head — agreement signed",
		"skipped sustained-follow-up by head — handed over to the peacebuilding office",
		"refused  rule service: envoy-appointment refused by its service",
		"paid USD 120000",
	} {
		if !strings.Contains(trailOut, want) {
			t.Fatalf("decision trail lacks %q:\n%s", want, trailOut)
		}
	}
	// Real figures list this crisis; drills (TestPlatform's) stay out unless asked for.
	figs := cli("crisis", "figures")
	if !strings.Contains(figs, id) || strings.Contains(figs, "true") {
		t.Fatalf("crisis figures:\n%s", figs)
	}
	var asJSON struct {
		Crises []struct {
			CrisisID string `json:"crisisId"`
			Outcome  string `json:"outcome"`
			Figures  struct {
				Decisions int `json:"decisions"`
			} `json:"figures"`
		} `json:"crises"`
	}
	if err := json.Unmarshal([]byte(cli("crisis", "figures", "--output", "json")), &asJSON); err != nil || len(asJSON.Crises) != 1 ||
		asJSON.Crises[0].CrisisID != id || asJSON.Crises[0].Outcome != "averted" || asJSON.Crises[0].Figures.Decisions != 7 {
		t.Fatalf("crisis figures --output json: %+v %v", asJSON, err)
	}
	// warning to action: first signal 2h before opening, the good-offices
	// option (the first response action) a few seconds after, triage before
	// it kept as its own time (crisis show writes durations for people: "2h",
	// not "2h0m7.3s").
	if !strings.Contains(out, "warning to first action  2h (good-offices)\n") || !strings.Contains(out, "warning to triage        2h\n") {
		t.Fatalf("warning-to-action figure:\n%s", out)
	}
}
