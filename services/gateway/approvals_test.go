package gateway

import (
	"slices"
	"testing"

	"github.com/demarche/demarche/pkg/authn"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestApprovalCardCountsTheQuorum: a request's card reads its quorum from the
// crisis's pending funding-decision: an approval that did not complete it
// leaves the request awaiting a decision, "1 of 2", and marks it approved by
// the user who gave it (who may not approve again); an approval completing
// it (no longer pending) makes it approved; a rejection, rejected.
func TestApprovalCardCountsTheQuorum(t *testing.T) {
	request := func(id string, amount int64) *demarchev1.DecisionRecord {
		return &demarchev1.DecisionRecord{Principal: "alice", Rationale: "mediation costs", Request: demarchev1.NewDecisionRequest("alice", "mediation costs",
			&demarchev1.FundingRequest{RequestId: id, Fund: "flexible-financing", AmountUsd: amount, Purpose: "venue"})}
	}
	decision := func(who, id string, approve bool) *demarchev1.DecisionRecord {
		return &demarchev1.DecisionRecord{Principal: who, Request: demarchev1.NewDecisionRequest(who, "why", &demarchev1.FundingDecision{RequestId: id, Approve: approve})}
	}
	st := &demarchev1.CrisisState{
		Crisis: &demarchev1.Crisis{Id: "NE-1", Severity: 4}, CurrentStage: demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING,
		Decisions: []*demarchev1.DecisionRecord{
			request("FR-1", 120_000), decision("bob", "FR-1", true),
			request("FR-2", 600_000), decision("bob", "FR-2", true),
			request("FR-3", 600_000), decision("bob", "FR-3", true), decision("carol", "FR-3", true),
			request("FR-4", 600_000), decision("bob", "FR-4", false),
		},
		PendingDecisions: []*demarchev1.PendingDecision{{Kind: "funding-decision", RequestId: "FR-2", Approvers: []string{"bob"}, ApprovalsRequired: 2}},
	}
	got := fundingOf(st, &user{Principal: &authn.Principal{Subject: "bob"}})
	want := []struct {
		id, status string
		approvers  []string
		need       int32
		byMe       bool
	}{
		{"FR-1", "approved", []string{"bob"}, 1, true},
		{"FR-2", "awaiting decision", []string{"bob"}, 2, true},
		{"FR-3", "approved", []string{"bob", "carol"}, 2, true},
		{"FR-4", "rejected", nil, 1, false},
	}
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.id || g.Status != w.status || !slices.Equal(g.Approvers, w.approvers) || g.Need != w.need || g.Approved != w.byMe ||
			g.Severity != 4 || g.Stage != demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING || g.Rationale != "mediation costs" {
			t.Errorf("request %d: %+v, want %+v (severity 4, stage funding, rationale)", i, g, w)
		}
	}
}
