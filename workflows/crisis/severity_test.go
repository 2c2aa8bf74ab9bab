package crisis

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestSeverityFollowsTheScoreInTheWarningStage: in the warning stage a
// warning whose score calls for severity 5 raises a severity-3 crisis to 5
// (SeverityChanged, like an escalation), one calling for less lowers
// nothing, and once triage ended the warning stage a higher score_severity
// no longer changes it (a person decides from then on).
func TestSeverityFollowsTheScoreInTheWarningStage(t *testing.T) {
	pb := mustPlaybook(t, "constitutional-crisis") // warning, then good offices
	roles := []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER, demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT}
	warn := func(id string, scoreSeverity int32) *demarchev1.Warning {
		return &demarchev1.Warning{Source: "earlywarning-test", SourceId: id, Summary: "score rose", Severity: 2, ScoreSeverity: scoreSeverity, ObservedAt: timestamppb.New(t0)}
	}
	h := newHarness(t)
	var inWarning, lower, afterTriage *demarchev1.CrisisState
	h.at(10*time.Minute, func() { h.env.SignalWorkflow(SignalWarning, warn("w-1", 4)) })
	h.at(20*time.Minute, func() { h.env.SignalWorkflow(SignalWarning, warn("w-2", 5)) })
	h.at(30*time.Minute, func() {
		inWarning = h.state()
		h.env.SignalWorkflow(SignalWarning, warn("w-3", 3))
	})
	h.at(40*time.Minute, func() {
		lower = h.state()
		h.decide(&demarchev1.DecisionRequest{Principal: "alice", Roles: roles, Rationale: "credible",
			Decision: &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "credible threat"}}}, func(err error) {
			if err != nil {
				t.Errorf("triage: %v", err)
			}
		})
	})
	h.at(50*time.Minute, func() {
		h.mustControl(UpdateDeEscalate, &demarchev1.SeverityControl{Principal: "alice", Roles: roles, Reason: "calmer than the score says"})
	})
	h.at(time.Hour, func() { h.env.SignalWorkflow(SignalWarning, warn("w-4", 5)) })
	h.at(70*time.Minute, func() {
		afterTriage = h.state()
		h.env.CancelWorkflow()
	})
	h.env.ExecuteWorkflow(WorkflowName, &demarchev1.CrisisWorkflowInput{Crisis: crisisFor(pb), Playbook: pb})

	if got := inWarning.GetCrisis().GetSeverity(); got != 5 {
		t.Fatalf("in the warning stage, after warnings calling for 4 then 5: severity %d, want 5", got)
	}
	if got := lower.GetCrisis().GetSeverity(); got != 5 {
		t.Fatalf("a warning calling for 3 lowered the severity to %d", got)
	}
	if got := afterTriage.GetCrisis().GetSeverity(); got != 4 || len(afterTriage.GetWarnings()) != 4 {
		t.Fatalf("after triage and a de-escalation, a warning calling for 5: severity %d (want 4, the person's), %d warnings", got, len(afterTriage.GetWarnings()))
	}
	// 3 → 4 → 5 by the score, 5 → 4 by alice.
	if n := len(h.bus.kinds("SeverityChanged")); n != 3 {
		t.Fatalf("%d SeverityChanged events, want 3: %v", n, h.bus.kinds(""))
	}
}
