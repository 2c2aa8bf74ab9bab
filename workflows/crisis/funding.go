package crisis

// Rapid-response funding (¶17 "more flexible financing for rapid response";
// ¶21 "rapidly deployable funding"; ¶64 "a genuine rapid response capability"):
// a desk officer requests money from a fund (the flexible financing mechanism,
// the Peacebuilding Fund,
// ¶55 "Critical contributions were also made by our Peacebuilding Fund"); the
// funding service checks the fund and the crisis's ceiling. Someone other than
// the requester approves or rejects it (four-eyes, checked here and again by
// the funding service). The RapidResponseFunding workflow pays an approval
// once, keyed by crisis and request, and ends the stage; a rejection waits for
// the next request.
//
// Quorum: the funding service answers a filed request with the approvals it
// needs (the fund's quorum rules, data in the funds file: e.g. above USD
// 500,000, two). An approval that does not complete the quorum is recorded as
// one approval, and the request stays pending ("1 of 2 approvals"); only the
// approval that completes it is carried out (the funding service's decide,
// then the payment). The same principal approves once; the requester never.
// Histories older than the rules answered no quorum: one approval, as then.

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// fundingRun is what a funding stage run knows: its requests, in order.
type fundingRun struct {
	requests []*openRequest
}

type openRequest struct {
	req       *demarchev1.FundingRequest
	requester string
	decided   bool
	// required is the number of distinct approvers the request needs (at
	// least one); approvers are those who approved so far, in order.
	required  int32
	approvers []string
}

// need is the quorum: one when the funding service set none (older records).
func (o *openRequest) need() int32 { return max(o.required, 1) }

// completes says whether one more approval completes the quorum.
func (o *openRequest) completes() bool { return int32(len(o.approvers))+1 >= o.need() }

func fundingOf(r *stageRun) *fundingRun { return r.state.(*fundingRun) }

func carriedFunding(cr *demarchev1.CarriedStageRun) stageState {
	f := &fundingRun{}
	for _, fr := range cr.GetFundingRequests() {
		f.requests = append(f.requests, &openRequest{req: fr.GetRequest(), requester: fr.GetRequester(), decided: fr.GetDecided(),
			required: fr.GetApprovalsRequired(), approvers: fr.GetApprovers()})
	}
	return f
}

func (f *fundingRun) carry(cr *demarchev1.CarriedStageRun) {
	for _, o := range f.requests {
		cr.FundingRequests = append(cr.FundingRequests, &demarchev1.CarriedFundingRequest{Request: o.req, Requester: o.requester, Decided: o.decided,
			ApprovalsRequired: o.required, Approvers: o.approvers})
	}
}

func (f *fundingRun) request(id string) *openRequest {
	for _, r := range f.requests {
		if r.req.GetRequestId() == id {
			return r
		}
	}
	return nil
}

// open lists the ids of the requests awaiting a decision.
func (f *fundingRun) open() []string {
	var out []string
	for _, r := range f.requests {
		if !r.decided {
			out = append(out, r.req.GetRequestId())
		}
	}
	return out
}

func (f *fundingRun) openList() string {
	if o := f.open(); len(o) > 0 {
		return strings.Join(o, ", ")
	}
	return "none"
}

var fundingRequest = decisionKind(&decisionType{
	kind: "funding-request", stage: demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING,
	// From good offices on, a request opens the funding stage beside the
	// others when it is not running: money comes before the deployment it
	// pays for (¶21 "rapidly deployable funding").
	opensFrom: demarchev1.Stage_STAGE_GOOD_OFFICES,
	role:      demarchev1.Role_ROLE_DESK_OFFICER, who: "desk officer",
	describe: func(r *demarchev1.DecisionRequest) string {
		f := r.GetFundingRequest()
		return fmt.Sprintf("funding request %s: USD %d from %s for %s", f.GetRequestId(), f.GetAmountUsd(), f.GetFund(), f.GetPurpose())
	},
	check: func(d *decisionCtx) error {
		id := d.req.GetFundingRequest().GetRequestId()
		if fundingOf(d.run).request(id) != nil {
			return rule("unique-request", "request %s already exists", id)
		}
		if open := fundingOf(d.run).open(); len(open) > 0 {
			return rule("one-open-request", "request %s is still awaiting a decision", open[0])
		}
		return nil
	},
	call: func(ctx workflow.Context, d *decisionCtx) error {
		rec, err := call(withServiceOptions(ctx), acts.FileFundingRequest, &demarchev1.FundingRequestCall{
			CrisisId: d.l.crisis.GetId(), Request: d.req.GetFundingRequest(), RequestedBy: d.req.GetPrincipal(), Drill: d.l.crisis.GetDrill(),
			Decision: d.ref(ctx)})
		d.answer = rec
		return err
	},
	apply: func(d *decisionCtx) effect {
		var required int32
		if rec, ok := d.answer.(*demarchev1.FundingRecord); ok {
			required = rec.GetApprovalsRequired()
		}
		fundingOf(d.run).requests = append(fundingOf(d.run).requests, &openRequest{req: d.req.GetFundingRequest(), requester: d.req.GetPrincipal(), required: required})
		return toStageWorkflow
	},
	pending: func(_ *lifecycle, r *stageRun) []waiting {
		if len(fundingOf(r).open()) > 0 {
			return nil
		}
		return []waiting{{due: r.deadline.GetDueAt()}}
	},
	// A drill files a request like a crisis would, on the drill fund: drills
	// never touch real money (the funding service refuses a drill on a real fund).
	drill: func(_ workflow.Context, d *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_FundingRequest{FundingRequest: &demarchev1.FundingRequest{
			RequestId: fmt.Sprintf("drill-%d", len(d.l.decisions)+1), Fund: demarchev1.DrillFundID, AmountUsd: 50_000, Purpose: "drill"}}}, nil
	},
})

var fundingDecision = decisionKind(&decisionType{
	kind: "funding-decision", stage: demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING,
	role: demarchev1.Role_ROLE_FUNDING_OFFICER, who: "funding officer",
	describe: func(r *demarchev1.DecisionRequest) string {
		verb := "rejected"
		if r.GetFundingDecision().GetApprove() {
			verb = "approved"
		}
		return fmt.Sprintf("funding request %s %s", r.GetFundingDecision().GetRequestId(), verb)
	},
	check: func(d *decisionCtx) error {
		id := d.req.GetFundingDecision().GetRequestId()
		r := fundingOf(d.run).request(id)
		switch {
		case r == nil:
			return rule("known-request", "no funding request %s (open: %s)", id, fundingOf(d.run).openList())
		case r.decided:
			return rule("decide-once", "request %s was already decided", id)
		case r.requester == d.req.GetPrincipal():
			return rule("four-eyes", "%s requested %s and cannot approve or reject it; another principal must", d.req.GetPrincipal(), id)
		case slices.Contains(r.approvers, d.req.GetPrincipal()):
			return rule("distinct-approvers", "%s already approved %s (%d of %d approvals); another funding officer must", d.req.GetPrincipal(), id, len(r.approvers), r.need())
		}
		return nil
	},
	call: func(ctx workflow.Context, d *decisionCtx) error {
		fd := d.req.GetFundingDecision()
		if fd.GetApprove() && !fundingOf(d.run).request(fd.GetRequestId()).completes() {
			// One approval of several: recorded in the crisis only; the
			// funding service hears of the approval that completes the quorum.
			return nil
		}
		_, err := call(withServiceOptions(ctx), acts.DecideFunding, &demarchev1.FundingDecideCall{
			CrisisId: d.l.crisis.GetId(), RequestId: fd.GetRequestId(), Approve: fd.GetApprove(), DecidedBy: d.req.GetPrincipal(),
			Decision: d.ref(ctx)})
		return err
	},
	apply: func(d *decisionCtx) effect {
		fd := d.req.GetFundingDecision()
		r := fundingOf(d.run).request(fd.GetRequestId())
		if fd.GetApprove() && !r.completes() {
			r.approvers = append(r.approvers, d.req.GetPrincipal())
			return stageContinues
		}
		if fd.GetApprove() {
			r.approvers = append(r.approvers, d.req.GetPrincipal())
		}
		r.decided = true
		return toStageWorkflow
	},
	pending: func(_ *lifecycle, r *stageRun) []waiting {
		var out []waiting
		for _, fr := range fundingOf(r).requests {
			if fr.decided {
				continue
			}
			who := fmt.Sprintf("funding officer other than %s (four-eyes)", fr.requester)
			if fr.need() > 1 {
				// The quorum, and who may still approve, in words.
				others := append([]string{fr.requester}, fr.approvers...)
				who = fmt.Sprintf("funding officer other than %s (four-eyes; %d of %d approvals)", strings.Join(others, ", "), len(fr.approvers), fr.need())
			}
			out = append(out, waiting{who: who, due: r.deadline.GetDueAt(), requestID: fr.req.GetRequestId(),
				approvers: slices.Clone(fr.approvers), required: fr.need()})
		}
		return out
	},
	drill: func(_ workflow.Context, d *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Principal: "drill-approver", Decision: &demarchev1.DecisionRequest_FundingDecision{
			FundingDecision: &demarchev1.FundingDecision{RequestId: fundingOf(d.run).open()[0], Approve: true}}}, nil
	},
})

// RapidResponseFunding waits for a request and its decision; an approval is
// paid through the disbursement activity, once, keyed by crisis and request.
// A rejection waits for the next request.
func RapidResponseFunding(ctx workflow.Context, in *demarchev1.StageWorkflowInput) (*demarchev1.StageOutcome, error) {
	c, err := newStageChild(ctx, in, demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING)
	if err != nil {
		return nil, err
	}
	var requests []*demarchev1.FundingRequest
	for {
		rec, err := nextDecision(ctx)
		if err != nil {
			return c.end(ctx, err)
		}
		switch d := rec.GetRequest().GetDecision().(type) {
		case *demarchev1.DecisionRequest_FundingRequest:
			requests = append(requests, d.FundingRequest)
		case *demarchev1.DecisionRequest_FundingDecision:
			if !d.FundingDecision.GetApprove() {
				continue
			}
			var req *demarchev1.FundingRequest
			for _, r := range requests {
				if r.GetRequestId() == d.FundingDecision.GetRequestId() {
					req = r
				}
			}
			if req == nil {
				continue
			}
			cr := in.GetCrisis()
			paid, err := call(withActivityOptions(ctx), acts.DisburseFunds, &demarchev1.DisburseRequest{
				CrisisId: cr.GetId(), Region: cr.GetRegion(), CountryCode: cr.GetCountryCode(),
				Request: req, ApprovedBy: rec.GetPrincipal(),
				DisbursementKey: DisbursementKey(cr.GetId(), req.GetRequestId()),
				Drill:           cr.GetDrill(),
				// The approval, recorded in the crisis's workflow, is what
				// the funding service checks before it pays.
				Decision: &demarchev1.DecisionRef{CrisisId: cr.GetId(), WorkflowId: workflow.GetInfo(ctx).WorkflowExecution.ID,
					RunId: workflow.GetInfo(ctx).WorkflowExecution.RunID, DecisionId: rec.GetDecisionId()},
			})
			if err != nil {
				return c.end(ctx, fmt.Errorf("disburse %s: %w", req.GetRequestId(), err))
			}
			c.out.DisbursedUsd += paid.GetAmountUsd()
			return c.end(ctx, nil)
		}
	}
}
