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

// TestQuorumCheckedAgainByTheService: a filed request carries the approvals
// its fund's quorum rules ask (two above USD 100 here), and the funding
// service, as it keeps four-eyes, carries out an approval only once the
// crisis has recorded that many distinct approvers (the requester never
// counts); a request under the threshold needs one.
func TestQuorumCheckedAgainByTheService(t *testing.T) {
	quorumFund := &demarchev1.Fund{Id: "quorum-fund", Name: "Quorum fund", OpeningBalanceUsd: 1_000, PerCrisisCeilingUsd: 1_000,
		Quorum: []*demarchev1.QuorumRule{{AboveUsd: 100, Approvers: 2}}}
	_, _, nc := start(t, t.TempDir(), quorumFund)
	ctx := context.Background()
	var rec demarchev1.FundingRecord
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingRequest, crises.fileCall("SD-crisis", "FR-1", "quorum-fund", 500, "alice"), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.GetApprovalsRequired() != 2 {
		t.Fatalf("a USD 500 request from a fund asking two above 100: %d approvals required", rec.GetApprovalsRequired())
	}
	approve := func(who string) error {
		r := crises.record("SD-crisis", "dec-FR-1-"+who, who, &demarchev1.DecisionRequest{Principal: who,
			Decision: &demarchev1.DecisionRequest_FundingDecision{FundingDecision: &demarchev1.FundingDecision{RequestId: "FR-1", Approve: true}}})
		return natsrpc.Call(ctx, nc, natsrpc.FundingDecide, &demarchev1.FundingDecideCall{CrisisId: "SD-crisis", RequestId: "FR-1", Approve: true, DecidedBy: who, Decision: r}, &rec)
	}
	// A workflow that carried out the first of two approvals is refused.
	if err := approve("bob"); !errors.Is(err, errs.ErrRule) || !strings.Contains(err.Error(), "quorum: request FR-1 needs 2 distinct approvers") {
		t.Fatalf("one approval of two carried out: %v", err)
	}
	if err := approve("carol"); err != nil {
		t.Fatalf("the approval completing the quorum: %v", err)
	}
	if rec.GetStatus() != demarchev1.FundingStatus_FUNDING_STATUS_APPROVED || rec.GetDecidedBy() != "carol" {
		t.Fatalf("after the quorum: %v", &rec)
	}

	if err := natsrpc.Call(ctx, nc, natsrpc.FundingRequest, crises.fileCall("SD-crisis", "FR-2", "quorum-fund", 100, "alice"), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.GetApprovalsRequired() != 1 {
		t.Fatalf("a USD 100 request (not above 100): %d approvals required", rec.GetApprovalsRequired())
	}
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingDecide, crises.decideCall("SD-crisis", "FR-2", true, "bob"), &rec); err != nil {
		t.Fatalf("one approval under the threshold: %v", err)
	}
}
