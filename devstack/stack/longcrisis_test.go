package stack_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/trail"
)

// A chronic crisis receiving warnings and controls by the thousand stays
// within Temporal's limits: with a low history guard it continues as new
// several times, and its state after every hand-over is the state expected
// (every warning once, severity, partners, refused signals, deadlines,
// decisions numbered across runs); no event is lost or published twice;
// queries, decisions and a deadline's timers work across runs; and audit
// replay covers every run.
func TestLongCrisisContinuesAsNew(t *testing.T) {
	s := startStack(t, t.TempDir())
	// A cleanup, not a defer: the diagnostics below (a cleanup too, so run
	// first) read Temporal and the stream while the stack is still up.
	t.Cleanup(s.Stop)
	tc := temporalClient(t, s)
	// Warnings come from early warning's identity, the one that may send them.
	ew := temporalClientAs(t, s, temporalx.IdentityEarlyWarning)
	_, js := jsOf(t, s)
	ctx := context.Background()

	const (
		id         = "NE-20261128-CHRON"
		warnings   = 1500
		invalid    = 10
		pairs      = 250 // escalate + de-escalate
		partnerOps = 50
		guard      = 1000 // history events per run at most (before the hand-over)
	)
	partners := []string{"AU", "ECOWAS", "EU", "OSCE", "OAS"}
	// A drill whose policy waits 720h (it never decides here) and whose
	// warning-stage deadline (24h, at risk at 12h) is compressed to about 40s:
	// its timers run across the hand-overs.
	in := &demarchev1.CrisisWorkflowInput{
		Crisis: crisis.NewCrisis(crisis.NewCrisisParams{ID: id, Title: "Chronic standoff", CountryCode: "NE",
			CrisisType: demarchev1.CrisisType_CRISIS_TYPE_CONSTITUTIONAL_CRISIS, Severity: 3, OpenedBy: "duty",
			Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC}, time.Now()),
		DrillPolicy:      &demarchev1.DrillPolicy{StageDuration: durationpb.New(720 * time.Hour), TimeScale: 40.0 / 86400},
		MaxHistoryEvents: guard,
	}
	if _, err := crisis.Open(ctx, tc, in); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	// Warnings arrive from eight senders at once (signals, as early warning sends them).
	var wg sync.WaitGroup
	errs := make(chan error, warnings+invalid)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < warnings; i += 8 {
				err := crisis.Signal(ctx, ew, id, crisis.SignalWarning, &demarchev1.Warning{
					Source: "ecowarn", SourceId: fmt.Sprintf("W-%04d", i), Summary: "protests continue", Severity: 2, ObservedAt: timestamppb.Now()})
				if err != nil {
					errs <- err
				}
			}
		}(w)
	}
	// Meanwhile operators steer it (updates, one at a time as people do).
	principal, roles := "duty", []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER, demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT}
	control := func(name string, arg demarchev1.Validator) {
		t.Helper()
		if _, err := crisis.Control(ctx, tc, id, "", name, arg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	want := map[string]demarchev1.PartnerRoleKind{}
	for i := 0; i < pairs; i++ {
		control(crisis.UpdateEscalate, &demarchev1.SeverityControl{Principal: principal, Roles: roles, Reason: "worse"})
		control(crisis.UpdateDeEscalate, &demarchev1.SeverityControl{Principal: principal, Roles: roles, Reason: "calmer"})
		if i < partnerOps {
			p, role := partners[i%len(partners)], demarchev1.PartnerRoleKind(1+i%3)
			control(crisis.UpdatePartnerRole, &demarchev1.PartnerRoleAck{Partner: p, Role: role, Principal: principal, Roles: roles})
			want[p] = role
		}
	}
	wg.Wait()
	// A machine's invalid warning is refused, and the refusal kept (raw
	// signals: crisis.Signal would refuse them before sending).
	for i := 0; i < invalid; i++ {
		if err := ew.SignalWorkflow(ctx, crisis.WorkflowID(id), "", crisis.SignalWarning, &demarchev1.Warning{Source: "ecowarn", Summary: "bad", Severity: 9, ObservedAt: timestamppb.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	close(errs)
	for err := range errs {
		t.Fatalf("signal: %v", err)
	}
	t.Logf("%d warnings, %d controls, %d refused signals sent in %s", warnings, 2*pairs+partnerOps, invalid, time.Since(start).Round(time.Millisecond))

	// The warning deadline's timers fire (in whichever run holds them then).
	var st *demarchev1.CrisisState
	last := time.Now()
	// On failure: each run's size and what it carried, to see where something went.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		hs, _ := trail.FetchHistories(ctx, tc, id)
		for i, h := range hs {
			for _, ev := range h.History.GetEvents() {
				if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil {
					var in demarchev1.CrisisWorkflowInput
					_ = converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &in)
					t.Logf("history %d (%s %s): %d events, carried %d warnings, %d signals handed over", i, h.WorkflowID, h.RunID, len(h.History.GetEvents()), len(in.GetCarryOver().GetWarnings()), len(in.GetCarryOver().GetSignals()))
				}
				if a := ev.GetWorkflowTaskFailedEventAttributes(); a != nil {
					t.Logf("history %d: task failed %s %s", i, a.GetCause(), a.GetFailure().GetMessage())
				}
			}
		}
		t.Logf("WarningAttached on the stream: %d", streamCount(t, js, "demarche.crisis.*.*."+id+".warning_attached"))
	})
	// However slow the machine, the crisis must keep taking signals: the wait
	// fails only when nothing moves (warnings taken, refusals, runs,
	// deadlines) for a long while, which is a crisis stuck, not a slow one.
	waitProgressing(t, 5*time.Minute, "warning deadline breached and every signal taken", func() (bool, string) {
		cur, err := crisis.State(ctx, tc, id)
		if err != nil {
			return false, ""
		}
		st = cur
		progress := fmt.Sprintf("%d of %d warnings, %d of %d refused signals, run %d, deadlines %v", len(st.GetWarnings()), warnings,
			len(st.GetRefusedSignals()), invalid, st.GetWorkflowRuns(), st.GetDeadlines())
		if time.Since(last) > 15*time.Second {
			last = time.Now()
			t.Log(progress)
		}
		if len(st.GetWarnings()) < warnings || len(st.GetRefusedSignals()) < invalid {
			return false, progress
		}
		for _, d := range st.GetDeadlines() {
			if d.GetStage() == demarchev1.Stage_STAGE_WARNING && d.GetStatus() == demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED {
				return true, progress
			}
		}
		return false, progress
	})
	// Decisions across runs: numbered on from the carried ones.
	rec, err := crisis.Decide(ctx, tc, id, "", &demarchev1.DecisionRequest{Principal: principal, Roles: roles, Rationale: "credible",
		Decision: &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "chronic"}}})
	if err != nil || rec.GetNumber() != 1 {
		t.Fatalf("triage: %v (number %d)", err, rec.GetNumber())
	}
	waitFor(t, func() bool {
		st, err = crisis.State(ctx, tc, id)
		return err == nil && slices.Contains(st.GetActiveStages(), demarchev1.Stage_STAGE_GOOD_OFFICES)
	})
	rec, err = crisis.Decide(ctx, tc, id, "", &demarchev1.DecisionRequest{Principal: principal, Roles: roles, Rationale: "quiet first",
		Decision: &demarchev1.DecisionRequest_GoodOffices{GoodOffices: &demarchev1.GoodOfficesDecision{Option: demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_QUIET_DIPLOMACY}}})
	if err != nil || rec.GetNumber() != 2 {
		t.Fatalf("good offices: %v (number %d)", err, rec.GetNumber())
	}
	waitFor(t, func() bool {
		st, err = crisis.State(ctx, tc, id)
		return err == nil && slices.Contains(st.GetActiveStages(), demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT)
	})

	// The state is the state expected.
	if st.GetWorkflowRuns() < 3 {
		t.Errorf("the crisis ran %d run(s); want several hand-overs at a %d-event guard", st.GetWorkflowRuns(), guard)
	}
	seen := map[string]int{}
	for _, w := range st.GetWarnings() {
		seen[w.GetSourceId()]++
	}
	for i := 0; i < warnings; i++ {
		if n := seen[fmt.Sprintf("W-%04d", i)]; n != 1 {
			t.Errorf("warning W-%04d is in the state %d times, want once", i, n)
		}
	}
	if len(st.GetWarnings()) != warnings || len(st.GetRefusedSignals()) != invalid {
		t.Errorf("state holds %d warnings and %d refused signals, want %d and %d", len(st.GetWarnings()), len(st.GetRefusedSignals()), warnings, invalid)
	}
	if got := st.GetCrisis().GetSeverity(); got != 3 {
		t.Errorf("severity %d after %d escalations and de-escalations, want 3", got, pairs)
	}
	got := map[string]demarchev1.PartnerRoleKind{}
	for _, p := range st.GetPartners() {
		got[p.GetPartner()] = p.GetRole()
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("partners %v, want %v", got, want)
	}
	var stages []string
	for _, r := range st.GetTimeline() {
		stages = append(stages, r.GetStage().Slug()+":"+r.GetStatus().String())
	}
	if wantTL := "warning:STAGE_STATUS_COMPLETED good-offices:STAGE_STATUS_COMPLETED envoy-deployment:STAGE_STATUS_RUNNING"; strings.Join(stages, " ") != wantTL {
		t.Errorf("timeline %v, want %s", stages, wantTL)
	}
	if len(st.GetDecisions()) != 2 {
		t.Errorf("%d decisions, want 2", len(st.GetDecisions()))
	}

	// Every event once: ids continue across runs (a restarted numbering would
	// collide with earlier ids and be dropped as duplicates).
	count := func(token string) uint64 { return streamCount(t, js, "demarche.crisis.*.*."+id+"."+token) }
	if n := count("warning_attached"); n != warnings {
		t.Errorf("%d WarningAttached events on the stream, want %d", n, warnings)
	}
	if n := count("severity_changed"); n != 2*pairs {
		t.Errorf("%d SeverityChanged events, want %d", n, 2*pairs)
	}
	if at, br := count("deadline_at_risk"), count("deadline_breached"); at != 1 || br != 1 {
		t.Errorf("warning deadline announced at risk %d and breached %d times, want once each", at, br)
	}
	if n := count("crisis_opened"); n != 1 {
		t.Errorf("%d CrisisOpened events, want 1", n)
	}

	// Each run's history stayed near the guard; replay covers every run. The
	// envoy stage runs as its own workflow, started after the stage shows as
	// active: wait for it, so this fetch and audit replay's own see the same
	// histories.
	var hs []trail.History
	waitFor(t, func() bool {
		hs, err = trail.FetchHistories(ctx, tc, id)
		return err == nil && slices.ContainsFunc(hs, func(h trail.History) bool { return h.WorkflowID != crisis.WorkflowID(id) })
	})
	runs := 0
	for _, h := range hs {
		if h.WorkflowID == crisis.WorkflowID(id) {
			runs++
			if n := len(h.History.GetEvents()); n > 2*guard {
				t.Errorf("a run's history has %d events; the guard is %d", n, guard)
			}
		}
	}
	if runs != int(st.GetWorkflowRuns()) {
		t.Errorf("%d runs in Temporal, the state says %d", runs, st.GetWorkflowRuns())
	}
	out, err := runCLI(t, s, "audit", "replay", "--crisis", id)
	if err != nil {
		t.Fatalf("audit replay: %v\n%.2000s", err, out)
	}
	if !strings.Contains(out, fmt.Sprintf("(run 1 of %d)", runs)) || !strings.Contains(out, fmt.Sprintf("%d of %d histories replay deterministically", len(hs), len(hs))) {
		var heads []string // one line per history replayed, and the verdict
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, " ") {
				heads = append(heads, l)
			}
		}
		t.Errorf("audit replay does not cover the %d runs (%d histories):\n%s", runs, len(hs), strings.Join(heads, "\n"))
	}
	waitFor(t, func() bool {
		_, err := runCLI(t, s, "audit", "reconcile", "--crisis", id)
		return err == nil
	})
	t.Logf("%d runs; state checked after the last hand-over", runs)
}

// A small crisis that continues as new a few times (a 100-event guard); its
// latest run, which starts from carried-over state and handed-over signals,
// is recorded as CrisisResponse-continued.json for the replay tests.
func TestContinuedCrisisIsRecorded(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ew := temporalClientAs(t, s, temporalx.IdentityEarlyWarning)
	ctx := context.Background()
	// Every signal is a history event of its own: 150 fill a 100-event
	// run at least once, however the events they make are batched.
	const id, warnings = "NE-20261128-CONT1", 150
	in := &demarchev1.CrisisWorkflowInput{
		Crisis: crisis.NewCrisis(crisis.NewCrisisParams{ID: id, Title: "Chronic standoff", CountryCode: "NE",
			CrisisType: demarchev1.CrisisType_CRISIS_TYPE_CONSTITUTIONAL_CRISIS, Severity: 3, OpenedBy: "duty",
			Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC}, time.Now()),
		MaxHistoryEvents: 100,
	}
	if _, err := crisis.Open(ctx, tc, in); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < warnings; i += 4 {
				if err := crisis.Signal(ctx, ew, id, crisis.SignalWarning, &demarchev1.Warning{
					Source: "ecowarn", SourceId: fmt.Sprintf("W-%02d", i), Summary: "protests continue", Severity: 2, ObservedAt: timestamppb.Now()}); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	roles := []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}
	if _, err := crisis.Control(ctx, tc, id, "", crisis.UpdateEscalate, &demarchev1.SeverityControl{Principal: "duty", Roles: roles, Reason: "worse"}); err != nil {
		t.Fatal(err)
	}
	var st *demarchev1.CrisisState
	waitFor(t, func() bool {
		var err error
		st, err = crisis.State(ctx, tc, id)
		return err == nil && len(st.GetWarnings()) == warnings && st.GetWorkflowRuns() >= 2
	})
	rec, err := crisis.Decide(ctx, tc, id, "", &demarchev1.DecisionRequest{Principal: "duty", Roles: roles, Rationale: "credible",
		Decision: &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "chronic"}}})
	if err != nil || rec.GetNumber() != 1 {
		t.Fatalf("triage: %v (number %d)", err, rec.GetNumber())
	}
	if st, err = crisis.State(ctx, tc, id); err != nil || st.GetCrisis().GetSeverity() != 4 || len(st.GetDecisions()) != 1 {
		t.Fatalf("state after %d runs: severity %d, %d decisions (%v)", st.GetWorkflowRuns(), st.GetCrisis().GetSeverity(), len(st.GetDecisions()), err)
	}
	recordHistories(t, tc, id, "CrisisResponse-continued.json", false)
}

// waitProgressing polls cond (every second) until it holds. It fails only
// when what cond reports as its progress has not changed for stall: a
// loaded machine makes the wait longer, never a failure; a stuck one fails
// with where it stopped. An empty progress (cond could not tell) is no
// progress.
func waitProgressing(t *testing.T, stall time.Duration, what string, cond func() (done bool, progress string)) {
	t.Helper()
	last, since := "", time.Now()
	for {
		done, progress := cond()
		if done {
			return
		}
		if progress != "" && progress != last {
			last, since = progress, time.Now()
		}
		if time.Since(since) > stall {
			t.Fatalf("%s: no progress for %v (stopped at: %s)", what, stall, last)
		}
		time.Sleep(time.Second)
	}
}
