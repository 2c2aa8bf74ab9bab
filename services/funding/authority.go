package funding

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// The funding service moves money only on a decision of the crisis's
// workflow. A call names its decision (DecisionRef); the service asks the
// crisis's workflow (crisis.CheckDecision: the crisis exists and runs, the
// decision is recorded or being carried out under that id) and compares the
// call with the decision: the requester, approver, request terms, approval
// and drill flag are the workflow's. A call that differs is refused naming
// the rule (decision-terms, drill-flag); nothing is written for it.
//
// Why a check in the crisis's workflow rather than a token the worker signs:
// the worker's key would be one more secret whose theft moves money, and a
// token proves only that the worker said so; the workflow's answer is the
// decision itself, the one audit reconcile matches with the history.

// requestAuthority checks a filing against its funding-request decision and
// returns the call with the decision's terms.
func (s *Store) requestAuthority(ctx context.Context, call *demarchev1.FundingRequestCall) (*demarchev1.FundingRequestCall, error) {
	d, err := crisis.CheckDecision(ctx, s.decisions, call.GetCrisisId(), call.GetDecision(), "funding-request")
	if err != nil {
		return nil, err
	}
	decided := d.Record.GetRequest().GetFundingRequest()
	if call.GetRequest() != nil && !proto.Equal(call.GetRequest(), decided) {
		return nil, fmt.Errorf("%w: decision-terms: the call's request (%s: USD %d from %s) is not decision %s's (%s: USD %d from %s)", errs.ErrRule,
			call.GetRequest().GetRequestId(), call.GetRequest().GetAmountUsd(), call.GetRequest().GetFund(), d.Record.GetDecisionId(),
			decided.GetRequestId(), decided.GetAmountUsd(), decided.GetFund())
	}
	if err := crisis.Terms(d, [3]string{"requested_by", call.GetRequestedBy(), d.Record.GetPrincipal()}); err != nil {
		return nil, err
	}
	if err := crisis.DrillFlag(d, call.GetDrill()); err != nil {
		return nil, err
	}
	return &demarchev1.FundingRequestCall{CrisisId: call.GetCrisisId(), Request: decided, RequestedBy: d.Record.GetPrincipal(),
		Drill: d.Crisis.GetDrill(), Decision: call.GetDecision()}, nil
}

// decideAuthority checks a decision call against its funding-decision.
func (s *Store) decideAuthority(ctx context.Context, call *demarchev1.FundingDecideCall) (*demarchev1.FundingDecideCall, []string, error) {
	d, err := crisis.CheckDecision(ctx, s.decisions, call.GetCrisisId(), call.GetDecision(), "funding-decision")
	if err != nil {
		return nil, nil, err
	}
	fd := d.Record.GetRequest().GetFundingDecision()
	if err := crisis.Terms(d,
		[3]string{"request_id", call.GetRequestId(), fd.GetRequestId()},
		[3]string{"decided_by", call.GetDecidedBy(), d.Record.GetPrincipal()},
		[3]string{"approve", strconv.FormatBool(call.GetApprove()), strconv.FormatBool(fd.GetApprove())},
	); err != nil {
		return nil, nil, err
	}
	return &demarchev1.FundingDecideCall{CrisisId: call.GetCrisisId(), RequestId: fd.GetRequestId(), Approve: fd.GetApprove(),
		DecidedBy: d.Record.GetPrincipal(), Decision: call.GetDecision()}, approversOf(d.Crisis, fd.GetRequestId(), d.Record.GetPrincipal()), nil
}

// approversOf is who approved a request in the crisis's recorded decisions,
// and the principal whose approval is being carried out: distinct, in order.
// The quorum check counts them (Decide).
func approversOf(c *demarchev1.CrisisAuthority, requestID, now string) []string {
	var out []string
	for _, r := range c.GetDecisions() {
		fd := r.GetRequest().GetFundingDecision()
		if r.GetKind() == "funding-decision" && fd.GetRequestId() == requestID && fd.GetApprove() && !slices.Contains(out, r.GetPrincipal()) {
			out = append(out, r.GetPrincipal())
		}
	}
	if !slices.Contains(out, now) {
		out = append(out, now)
	}
	return out
}

// approval is the recorded approval a disbursement carries out.
type approval struct {
	d   *crisis.Decision
	ref *demarchev1.DecisionRef
	// filed is the crisis's funding-request decision for the request.
	filed *demarchev1.FundingRequest
}

// disburseAuthority checks a disbursement against a recorded approval of
// that very request.
func (s *Store) disburseAuthority(ctx context.Context, call *demarchev1.DisburseCall) (*approval, error) {
	d, err := crisis.CheckDecision(ctx, s.decisions, call.GetCrisisId(), call.GetDecision(), "funding-decision")
	if err != nil {
		return nil, err
	}
	fd := d.Record.GetRequest().GetFundingDecision()
	switch {
	case !d.Recorded:
		return nil, fmt.Errorf("%w: decision-recorded: decision %s of crisis %s is not recorded yet: nothing is paid before the approval is", errs.ErrRule, d.Record.GetDecisionId(), call.GetCrisisId())
	case !fd.GetApprove():
		return nil, fmt.Errorf("%w: decision-terms: decision %s of crisis %s rejected request %s: a rejection pays nothing", errs.ErrRule, d.Record.GetDecisionId(), call.GetCrisisId(), fd.GetRequestId())
	}
	if err := crisis.Terms(d,
		[3]string{"request_id", call.GetRequestId(), fd.GetRequestId()},
		// One key per approved request: a second key could pay before the
		// workflow does, and leave its own disbursement refused.
		[3]string{"key", call.GetKey(), crisis.DisbursementKey(call.GetCrisisId(), fd.GetRequestId())},
	); err != nil {
		return nil, err
	}
	if err := crisis.DrillFlag(d, call.GetDrill()); err != nil {
		return nil, err
	}
	a := &approval{d: d, ref: proto.Clone(call.GetDecision()).(*demarchev1.DecisionRef)}
	for _, r := range d.Crisis.GetDecisions() {
		if r.GetKind() == "funding-request" && r.GetRequest().GetFundingRequest().GetRequestId() == fd.GetRequestId() {
			a.filed = r.GetRequest().GetFundingRequest()
		}
	}
	if a.filed == nil {
		return nil, fmt.Errorf("%w: decision-recorded: crisis %s approved request %s but has no funding-request decision for it", errs.ErrRule, call.GetCrisisId(), fd.GetRequestId())
	}
	return a, nil
}

// matches checks the request on file against the crisis's decisions: the
// request the crisis filed, approved under this very decision.
func (a *approval) matches(rec *demarchev1.FundingRecord) error {
	if !proto.Equal(rec.GetRequest(), a.filed) {
		return fmt.Errorf("%w: decision-terms: request %s on file (USD %d from %s) is not the one crisis %s filed (USD %d from %s)", errs.ErrRule,
			a.filed.GetRequestId(), rec.GetRequest().GetAmountUsd(), rec.GetRequest().GetFund(), a.d.Crisis.GetCrisisId(), a.filed.GetAmountUsd(), a.filed.GetFund())
	}
	if rec.GetDecidedUnder() != a.ref.GetDecisionId() {
		return fmt.Errorf("%w: decision-terms: request %s was decided under %q, not under decision %s", errs.ErrRule,
			a.filed.GetRequestId(), rec.GetDecidedUnder(), a.ref.GetDecisionId())
	}
	return nil
}
