package crisis

// Authority: the funding and roster services move money and book people only
// on a decision they find in the crisis's workflow. Each call names its
// decision (a DecisionRef: crisis, asking workflow and run, decision id); the
// service asks the crisis's workflow (the crisis.authority query) what it has
// decided or is deciding, and takes the terms from that answer, not from the
// request's body. A query is read-only and leaves nothing in the history.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/ids"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// authorityKinds are the decisions the services act on.
var authorityKinds = map[string]bool{
	fundingRequest.kind: true, fundingDecision.kind: true, envoyAppointment.kind: true, closure.kind: true,
	standbyTeamHandedBack.kind: true,
}

// decisionID is a decision's id, fixed before its service call: the update's
// id for a person's decision (the gateway's request id, unique per decision),
// auto-<n> for the drill policy's n-th (it takes one at a time).
func (l *lifecycle) decisionID(ctx workflow.Context, automatic bool) string {
	if !automatic {
		if info := workflow.GetCurrentUpdateInfo(ctx); info != nil && info.ID != "" {
			return info.ID
		}
	}
	n := 1
	for _, d := range l.decisions {
		if d.GetAutomatic() {
			n++
		}
	}
	return autoPrefix + strconv.Itoa(n)
}

// autoPrefix begins the ids of the drill policy's decisions.
const autoPrefix = "auto-"

// ref names the decision in hand for its service call.
func (d *decisionCtx) ref(ctx workflow.Context) *demarchev1.DecisionRef {
	info := workflow.GetInfo(ctx).WorkflowExecution
	return &demarchev1.DecisionRef{CrisisId: d.l.crisis.GetId(), WorkflowId: info.ID, RunId: info.RunID, DecisionId: d.id}
}

// authority answers the crisis.authority query: a copy, never shared state.
func (l *lifecycle) authority() *demarchev1.CrisisAuthority {
	out := &demarchev1.CrisisAuthority{CrisisId: l.crisis.GetId(), Drill: l.crisis.GetDrill(), Closed: l.closure != nil}
	for _, d := range l.decisions {
		if authorityKinds[d.GetKind()] {
			out.Decisions = append(out.Decisions, d)
		}
	}
	for _, r := range l.active {
		if r.inFlightRec != nil {
			out.InFlight = append(out.InFlight, r.inFlightRec)
		}
	}
	if l.outside != nil {
		out.InFlight = append(out.InFlight, l.outside)
	}
	return proto.Clone(out).(*demarchev1.CrisisAuthority)
}

// Authority asks a crisis's workflow what the funding and roster services
// may act on: ErrNotFound when no such crisis was ever opened, ErrClosed
// when its workflow is no longer running (a closed crisis moves nothing).
// The caller needs only read access (describe, query).
func Authority(ctx context.Context, c client.Client, crisisID string) (*demarchev1.CrisisAuthority, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, WorkflowID(crisisID), "")
	if err = errs.FromTemporal(err); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, crisisID)
		}
		return nil, fmt.Errorf("%w: describe crisis %s: %v", errs.ErrUnavailable, crisisID, err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil, fmt.Errorf("%w: %s (its workflow is %s)", ErrClosed, crisisID, strings.ToLower(strings.TrimPrefix(st.String(), "WORKFLOW_EXECUTION_STATUS_")))
	}
	v, err := c.QueryWorkflow(ctx, WorkflowID(crisisID), "", QueryAuthority)
	if err != nil {
		return nil, fmt.Errorf("%w: query crisis %s: %v", errs.ErrUnavailable, crisisID, err)
	}
	var out demarchev1.CrisisAuthority
	if err := v.Get(&out); err != nil {
		return nil, fmt.Errorf("decode the authority of crisis %s: %w", crisisID, err)
	}
	return &out, nil
}

// TemporalDecisions is where the funding and roster services find decisions:
// the crisis workflows, through a (read-only) Temporal client.
type TemporalDecisions struct{ Client client.Client }

// Authority implements the services' decision source.
func (t TemporalDecisions) Authority(ctx context.Context, crisisID string) (*demarchev1.CrisisAuthority, error) {
	return Authority(ctx, t.Client, crisisID)
}

// DisbursementKey is the key an approved request of a crisis is paid under:
// one per request, whatever the run, so a retry, a reset or a second caller
// never pays twice (the funding service accepts no other key).
func DisbursementKey(crisisID, requestID string) string {
	return ids.Derived(crisisID, "disbursement", requestID)
}

// DecisionSource answers the authority query for a crisis (TemporalDecisions
// in production; a fake in the services' unit tests).
type DecisionSource interface {
	Authority(ctx context.Context, crisisID string) (*demarchev1.CrisisAuthority, error)
}

// Decision is a decision a service call carries out, as the crisis's
// workflow knows it: the service takes the terms from here, not from the body.
type Decision struct {
	Record *demarchev1.DecisionRecord
	// Recorded: in the crisis's decisions (false: its service call is in flight).
	Recorded bool
	// Crisis is the workflow's whole answer (drill flag, closure, other decisions).
	Crisis *demarchev1.CrisisAuthority
	// Ref is the reference the call named, as checked.
	Ref *demarchev1.DecisionRef
}

// CheckDecision finds the decision a service call names in the crisis's
// workflow, or says which rule refuses the call:
//   - decision-named: the call names no decision, or a decision of another crisis
//     or another crisis's workflow;
//   - crisis-exists: no such crisis (errs.ErrNotFound);
//   - crisis-open: its workflow has ended;
//   - decision-recorded: the crisis has no decision of one of the kinds under that id.
//
// Drill flag and terms are the caller's to compare with the Decision.
func CheckDecision(ctx context.Context, src DecisionSource, crisisID string, ref *demarchev1.DecisionRef, kinds ...string) (*Decision, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: decision-recorded: this service has no way to check decisions (no Temporal client configured); it acts on none", errs.ErrUnavailable)
	}
	switch {
	case ref.GetDecisionId() == "":
		return nil, fmt.Errorf("%w: decision-named: the call names no decision (decision.decision_id): the service acts only on a decision of the crisis's workflow", errs.ErrRule)
	case ref.GetCrisisId() != crisisID:
		return nil, fmt.Errorf("%w: decision-named: the call is about crisis %s but names a decision of crisis %q", errs.ErrRule, crisisID, ref.GetCrisisId())
	case ref.GetWorkflowId() != WorkflowID(crisisID) && !strings.HasPrefix(ref.GetWorkflowId(), WorkflowID(crisisID)+"-"):
		return nil, fmt.Errorf("%w: decision-named: workflow %q is not crisis %s's (%s or one of its stages)", errs.ErrRule, ref.GetWorkflowId(), crisisID, WorkflowID(crisisID))
	}
	view, err := src.Authority(ctx, crisisID)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("%w: crisis-exists: no crisis %s", errs.ErrNotFound, crisisID)
	case errors.Is(err, ErrClosed):
		return nil, fmt.Errorf("%w: crisis-open: %v", errs.ErrRule, err)
	case err != nil:
		return nil, err
	case view.GetCrisisId() != crisisID:
		return nil, fmt.Errorf("%w: crisis-exists: the workflow of %s answers for crisis %q", errs.ErrInternal, crisisID, view.GetCrisisId())
	}
	want := map[string]bool{}
	for _, k := range kinds {
		want[k] = true
	}
	for _, d := range view.GetDecisions() {
		if d.GetDecisionId() == ref.GetDecisionId() && want[d.GetKind()] {
			return &Decision{Record: d, Recorded: true, Crisis: view, Ref: ref}, nil
		}
	}
	for _, d := range view.GetInFlight() {
		if d.GetDecisionId() == ref.GetDecisionId() && want[d.GetKind()] {
			return &Decision{Record: d, Crisis: view, Ref: ref}, nil
		}
	}
	return nil, fmt.Errorf("%w: decision-recorded: crisis %s has no %s decision %q, recorded or being carried out", errs.ErrRule,
		crisisID, strings.Join(kinds, " or "), ref.GetDecisionId())
}

// Terms compares what a call says with what the decision says: a refusal
// naming decision-terms for the first that differs. An empty said value is
// not compared (the service takes the decision's).
func Terms(d *Decision, pairs ...[3]string) error {
	for _, p := range pairs {
		name, said, decided := p[0], p[1], p[2]
		if said != "" && said != decided {
			return fmt.Errorf("%w: decision-terms: the call says %s %q, decision %s of crisis %s says %q", errs.ErrRule,
				name, said, d.Record.GetDecisionId(), d.Crisis.GetCrisisId(), decided)
		}
	}
	return nil
}

// DrillFlag refuses a call whose drill flag is not the crisis's own.
func DrillFlag(d *Decision, said bool) error {
	if said != d.Crisis.GetDrill() {
		return fmt.Errorf("%w: drill-flag: the call says drill=%t, crisis %s is %s", errs.ErrRule, said, d.Crisis.GetCrisisId(),
			map[bool]string{true: "a drill", false: "a real crisis"}[d.Crisis.GetDrill()])
	}
	return nil
}
