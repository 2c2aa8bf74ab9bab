package funding_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestActsOnlyOnTheCrisisDecisions: request, decide and disburse are refused,
// naming the rule, unless the crisis's workflow holds the decision they
// carry out with the same terms; a refused call writes nothing.
func TestActsOnlyOnTheCrisisDecisions(t *testing.T) {
	_, _, nc := start(t, t.TempDir(), smallFund)
	ctx := context.Background()
	refused := func(what string, err error, rule string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), rule) {
			t.Fatalf("%s: %v, want a refusal naming %s", what, err, rule)
		}
	}
	file := func(c *demarchev1.FundingRequestCall) error {
		return natsrpc.Call(ctx, nc, natsrpc.FundingRequest, c, &demarchev1.FundingRecord{})
	}
	decide := func(c *demarchev1.FundingDecideCall) error {
		return natsrpc.Call(ctx, nc, natsrpc.FundingDecide, c, &demarchev1.FundingRecord{})
	}
	disburse := func(c *demarchev1.DisburseCall) error {
		return natsrpc.Call(ctx, nc, natsrpc.FundingDisburse, c, &demarchev1.DisburseResult{})
	}

	// The three calls: a crisis that does not exist, requested by
	// mallory, approved by mallory2.
	ghost := &demarchev1.FundingRequestCall{CrisisId: "XX-ghost", RequestedBy: "mallory",
		Request: &demarchev1.FundingRequest{RequestId: "FR-1", Fund: "small-fund", AmountUsd: 900, Purpose: "x"}}
	refused("no decision named", file(ghost), "decision-named")
	ghost.Decision = ref("XX-ghost", "upd-1")
	err := file(ghost)
	refused("a crisis that does not exist", err, "crisis-exists")
	if !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("no crisis: %v, want not found", err)
	}
	refused("decide for a crisis that does not exist",
		decide(&demarchev1.FundingDecideCall{CrisisId: "XX-ghost", RequestId: "FR-1", Approve: true, DecidedBy: "mallory2", Decision: ref("XX-ghost", "upd-2")}), "crisis-exists")
	refused("disburse for a crisis that does not exist", disburse(disburseCall("XX-ghost", "FR-1", "k-1", false)), "crisis-exists")

	// A real crisis without such a decision.
	crises.open("ML-real", false)
	real := &demarchev1.FundingRequestCall{CrisisId: "ML-real", RequestedBy: "mallory", Decision: ref("ML-real", "upd-9"),
		Request: &demarchev1.FundingRequest{RequestId: "FR-1", Fund: "small-fund", AmountUsd: 900, Purpose: "x"}}
	refused("no such decision", file(real), "decision-recorded")
	otherCrisis := crises.fileCall("ML-real", "FR-1", "small-fund", 100, "alice")
	otherCrisis.Decision.CrisisId = "ML-other"
	refused("a decision of another crisis", file(otherCrisis), "decision-named")
	otherCrisis.Decision.CrisisId, otherCrisis.Decision.WorkflowId = "ML-real", "crisis-ML-other"
	refused("a decision named in another workflow", file(otherCrisis), "decision-named")

	// The crisis's decision, with other terms in the body.
	good := crises.fileCall("ML-real", "FR-2", "small-fund", 100, "alice")
	good.RequestedBy = "mallory"
	refused("another requester", file(good), "decision-terms")
	good.RequestedBy, good.Request.AmountUsd = "alice", 900
	refused("another amount", file(good), "decision-terms")
	good.Request.AmountUsd, good.Drill = 100, true
	refused("another drill flag", file(good), "drill-flag")
	good.Drill = false
	var rec demarchev1.FundingRecord
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingRequest, good, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.GetRequestedUnder() != "req-FR-2" || rec.GetRequestedBy() != "alice" {
		t.Fatalf("record %v: want requested by alice under req-FR-2", &rec)
	}
	if err := file(crises.fileCall("ML-real", "FR-3", "small-fund", 50, "carol")); err != nil {
		t.Fatal(err)
	}

	// Decide: another approver, or the approval of a rejection, is refused.
	dec := crises.decideCall("ML-real", "FR-2", true, "bob")
	dec.DecidedBy = "mallory2"
	refused("another approver", decide(dec), "decision-terms")
	rej := crises.decideCall("ML-real", "FR-3", false, "bob")
	rej.Approve = true
	refused("a rejection carried out as an approval", decide(rej), "decision-terms")
	refused("a funding-request decision used to decide", decide(&demarchev1.FundingDecideCall{CrisisId: "ML-real", RequestId: "FR-2",
		Approve: true, DecidedBy: "bob", Decision: ref("ML-real", "req-FR-2")}), "decision-recorded")
	// Disburse before any approval: not an approval of the crisis.
	noApproval := disburseCall("ML-real", "FR-2", "k-2", false)
	noApproval.Decision = ref("ML-real", "upd-none")
	refused("disburse without approval", disburse(noApproval), "decision-recorded")
	// A rejection pays nothing.
	rej.Approve = false
	if err := decide(rej); err != nil {
		t.Fatal(err)
	}
	refused("disburse a rejection", disburse(disburseCall("ML-real", "FR-3", "k-3", false)), "decision-terms")
	dec.DecidedBy = "bob"
	if err := decide(dec); err != nil {
		t.Fatal(err)
	}
	refused("disburse as a drill", disburse(disburseCall("ML-real", "FR-2", "k-2", true)), "drill-flag")
	wrongReq := disburseCall("ML-real", "FR-2", "k-2", false)
	wrongReq.RequestId = "FR-3"
	refused("disburse another request under the approval", disburse(wrongReq), "decision-terms")
	anotherKey := disburseCall("ML-real", "FR-2", "", false)
	anotherKey.Key = "another-key"
	refused("disburse under a key of the caller's", disburse(anotherKey), `decision-terms: the call says key "another-key"`)
	if l := checkLedgerBalances(t, nc, "small-fund", 1_000); len(l) != 1 {
		t.Fatalf("refused calls wrote %d ledger lines", len(l)-1)
	}
	// The crisis's own approval pays, and the line names it.
	var res demarchev1.DisburseResult
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingDisburse, disburseCall("ML-real", "FR-2", "k-2", false), &res); err != nil {
		t.Fatal(err)
	}
	if res.GetEntry().GetDecision().GetDecisionId() != "dec-FR-2" || res.GetEntry().GetAmountUsd() != 100 {
		t.Fatalf("paid %v: want USD 100 naming dec-FR-2", res.GetEntry())
	}
	// A closed crisis moves nothing.
	crises.decideCall("ML-real", "FR-4", true, "bob")
	crises.mu.Lock()
	crises.closed["ML-real"] = true
	crises.mu.Unlock()
	refused("a closed crisis", file(crises.fileCall("ML-real", "FR-5", "small-fund", 10, "alice")), "crisis-open")
	if l := checkLedgerBalances(t, nc, "small-fund", 1_000); len(l) != 2 {
		t.Fatalf("ledger has %d lines, want the opening and the one payment", len(l))
	}
}
