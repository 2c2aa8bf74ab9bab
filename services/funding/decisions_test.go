package funding_test

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// fakeCrises stands for the crises' workflows: what each has decided (or is
// deciding), as the crisis.authority query answers.
type fakeCrises struct {
	mu     sync.Mutex
	crises map[string]*demarchev1.CrisisAuthority
	closed map[string]bool
}

func newFakeCrises() *fakeCrises {
	return &fakeCrises{crises: map[string]*demarchev1.CrisisAuthority{}, closed: map[string]bool{}}
}

func (f *fakeCrises) Authority(_ context.Context, id string) (*demarchev1.CrisisAuthority, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.crises[id]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %s", crisis.ErrNotFound, id)
	case f.closed[id]:
		return nil, fmt.Errorf("%w: %s", crisis.ErrClosed, id)
	}
	return proto.Clone(c).(*demarchev1.CrisisAuthority), nil
}

// open makes a crisis (a drill when drill).
func (f *fakeCrises) open(id string, drill bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.crises[id]; !ok {
		f.crises[id] = &demarchev1.CrisisAuthority{CrisisId: id, Drill: drill}
	}
}

// record records a decision of a crisis (opened, real, if unknown).
func (f *fakeCrises) record(crisisID, decisionID, principal string, req *demarchev1.DecisionRequest) *demarchev1.DecisionRef {
	f.open(crisisID, false)
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.crises[crisisID]
	d := &demarchev1.DecisionRecord{Number: int32(len(c.Decisions) + 1), Kind: req.DecisionKind(), Principal: principal, Request: req, DecisionId: decisionID}
	for i, old := range c.Decisions { // tests reuse crisis ids: the last word counts
		if old.GetDecisionId() == decisionID {
			c.Decisions[i] = d
			return ref(crisisID, decisionID)
		}
	}
	c.Decisions = append(c.Decisions, d)
	return ref(crisisID, decisionID)
}

func ref(crisisID, decisionID string) *demarchev1.DecisionRef {
	return &demarchev1.DecisionRef{CrisisId: crisisID, WorkflowId: crisis.WorkflowID(crisisID), RunId: "run-1", DecisionId: decisionID}
}

// fileCall records a funding-request decision "req-<id>" by principal and
// returns the call carrying it out.
func (f *fakeCrises) fileCall(crisisID, id, fund string, amount int64, principal string) *demarchev1.FundingRequestCall {
	fr := &demarchev1.FundingRequest{RequestId: id, Fund: fund, AmountUsd: amount, Purpose: "mediation"}
	r := f.record(crisisID, "req-"+id, principal, &demarchev1.DecisionRequest{Principal: principal,
		Decision: &demarchev1.DecisionRequest_FundingRequest{FundingRequest: fr}})
	f.mu.Lock()
	drill := f.crises[crisisID].GetDrill()
	f.mu.Unlock()
	return &demarchev1.FundingRequestCall{CrisisId: crisisID, RequestedBy: principal, Drill: drill, Request: proto.Clone(fr).(*demarchev1.FundingRequest), Decision: r}
}

// decideCall records a funding-decision "dec-<id>" and returns its call.
func (f *fakeCrises) decideCall(crisisID, id string, approve bool, principal string) *demarchev1.FundingDecideCall {
	r := f.record(crisisID, "dec-"+id, principal, &demarchev1.DecisionRequest{Principal: principal,
		Decision: &demarchev1.DecisionRequest_FundingDecision{FundingDecision: &demarchev1.FundingDecision{RequestId: id, Approve: approve}}})
	return &demarchev1.FundingDecideCall{CrisisId: crisisID, RequestId: id, Approve: approve, DecidedBy: principal, Decision: r}
}

// disburseCall pays request id under its approval "dec-<id>", with the
// request's one key (the key argument only names the call in tests).
func disburseCall(crisisID, id, _ string, drill bool) *demarchev1.DisburseCall {
	return &demarchev1.DisburseCall{CrisisId: crisisID, RequestId: id, Key: crisis.DisbursementKey(crisisID, id), Drill: drill, Decision: ref(crisisID, "dec-"+id)}
}
