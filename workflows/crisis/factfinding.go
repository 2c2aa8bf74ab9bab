package crisis

// Fact-finding (¶32 "conduct impartial inquiries";
// ¶47 "the deployment of a fact-finding mission"; ¶66 "seemingly small steps"):
// a mission or inquiry with a mandate (terms of reference, the body that
// mandated it,
// ¶32 "mandated by the Security Council or by the Human Rights Council", a
// team) and a findings report due by a deadline. The desk officer records the
// mandate, which starts the report's deadline in the FactFindingMission
// workflow; the report ends the stage.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// factFindingRun is what a fact-finding stage run knows.
type factFindingRun struct {
	mandate  *demarchev1.FactFindingMandate
	reported bool
}

func factFindingOf(r *stageRun) *factFindingRun { return r.state.(*factFindingRun) }

func carriedFactFinding(cr *demarchev1.CarriedStageRun) stageState {
	return &factFindingRun{mandate: cr.GetFactFindingMandate(), reported: cr.GetFactFindingReported()}
}

func (f *factFindingRun) carry(cr *demarchev1.CarriedStageRun) {
	cr.FactFindingMandate, cr.FactFindingReported = f.mandate, f.reported
}

// factFindingAdded adds fact-finding to any crisis, whatever its playbook
// (the coup playbooks have none; Guinea's response had its inquiry,
// ¶55 "a United Nations-led Commission of Inquiry"), as a run beside the
// phases; the head of department decides it, and may name a regional
// organisation the inquiry is joint with. The mandate follows as usual.
var factFindingAdded = decisionKind(&decisionType{
	kind: "fact-finding-added", stage: demarchev1.Stage_STAGE_FACT_FINDING, adds: true,
	role: demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT, who: "head of department",
	describe: func(r *demarchev1.DecisionRequest) string {
		if with := r.GetFactFindingAdded().GetJointWith(); with != "" {
			return "fact-finding added: a joint inquiry with " + with
		}
		return "fact-finding added"
	},
	check: func(d *decisionCtx) error { return d.l.checkJointInquiry(d.req.GetFactFindingAdded().GetJointWith()) },
	apply: func(*decisionCtx) effect { return stageContinues },
	// Never awaited: added when the situation needs it.
	pending: func(*lifecycle, *stageRun) []waiting { return nil },
	drill: func(workflow.Context, *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_FactFindingAdded{FactFindingAdded: &demarchev1.FactFindingAdded{}}}, nil
	},
})

var factFindingMandate = decisionKind(&decisionType{
	kind: "fact-finding-mandate", stage: demarchev1.Stage_STAGE_FACT_FINDING,
	role: demarchev1.Role_ROLE_DESK_OFFICER, who: "desk officer, with the mandating body",
	describe: func(r *demarchev1.DecisionRequest) string {
		m := r.GetFactFindingMandate()
		return fmt.Sprintf("fact-finding mandated by %s, team %s, report due %s", m.GetMandatingBody().Slug(), strings.Join(m.GetTeam(), ", "), m.GetReportDue().AsTime().Format("2006-01-02"))
	},
	check: func(d *decisionCtx) error {
		if factFindingOf(d.run).mandate != nil {
			return rule("one-mandate", "the fact-finding mandate was already recorded")
		}
		if due := d.req.GetFactFindingMandate().GetReportDue().AsTime(); !due.After(d.now) {
			return rule("report-due-future", "report_due %s is not in the future", due.Format(time.RFC3339))
		}
		return nil
	},
	apply: func(d *decisionCtx) effect {
		factFindingOf(d.run).mandate = d.req.GetFactFindingMandate()
		return toStageWorkflow
	},
	pending: func(_ *lifecycle, r *stageRun) []waiting {
		if factFindingOf(r).mandate != nil {
			return nil
		}
		return []waiting{{due: r.deadline.GetDueAt()}}
	},
	drill: func(ctx workflow.Context, d *decisionCtx) (*demarchev1.DecisionRequest, error) {
		within := d.run.spec.GetDeadline().GetDue().AsDuration()
		if within <= 0 { // a stage added beside a playbook without fact-finding
			within = 720 * time.Hour
		}
		due := d.now.Add(scaled(within, d.l.drill))
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_FactFindingMandate{FactFindingMandate: &demarchev1.FactFindingMandate{
			TermsOfReference: "drill mission", MandatingBody: demarchev1.MandatingBody_MANDATING_BODY_SECRETARY_GENERAL,
			Team: []string{"drill-investigator"}, ReportDue: timestamppb.New(due)}}}, nil
	},
})

var factFindingReport = decisionKind(&decisionType{
	kind: "fact-finding-report", stage: demarchev1.Stage_STAGE_FACT_FINDING,
	role: demarchev1.Role_ROLE_DESK_OFFICER, who: "desk officer, for the head of the fact-finding mission",
	describe: func(r *demarchev1.DecisionRequest) string {
		return "fact-finding report: " + r.GetFactFindingReport().GetSummary()
	},
	check: func(d *decisionCtx) error {
		if factFindingOf(d.run).mandate == nil {
			return rule("mandate-first", "record the fact-finding mandate before its report")
		}
		return nil
	},
	apply: func(d *decisionCtx) effect {
		factFindingOf(d.run).reported = true
		return toStageWorkflow
	},
	pending: func(_ *lifecycle, r *stageRun) []waiting {
		f := factFindingOf(r)
		if f.mandate == nil || f.reported {
			return nil
		}
		return []waiting{{due: f.mandate.GetReportDue()}}
	},
	drill: func(workflow.Context, *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_FactFindingReport{
			FactFindingReport: &demarchev1.FactFindingReport{Summary: "drill findings"}}}, nil
	},
})

// FactFindingMission waits for the mandate, runs the findings-report deadline
// it sets, and ends with the report.
func FactFindingMission(ctx workflow.Context, in *demarchev1.StageWorkflowInput) (*demarchev1.StageOutcome, error) {
	c, err := newStageChild(ctx, in, demarchev1.Stage_STAGE_FACT_FINDING)
	if err != nil {
		return nil, err
	}
	var stop func(demarchev1.DeadlineStatus)
	for {
		rec, err := nextDecision(ctx)
		if err != nil {
			return c.end(ctx, err)
		}
		switch d := rec.GetRequest().GetDecision().(type) {
		case *demarchev1.DecisionRequest_FactFindingMandate:
			now := workflow.Now(ctx)
			due := d.FactFindingMandate.GetReportDue().AsTime()
			stop = c.watch(ctx, &demarchev1.DeadlineState{
				Name: "fact-finding report", Stage: demarchev1.Stage_STAGE_FACT_FINDING,
				Status:    demarchev1.DeadlineStatus_DEADLINE_STATUS_RUNNING,
				StartedAt: timestamppb.New(now), DueAt: timestamppb.New(due),
				AtRiskAt: timestamppb.New(now.Add(due.Sub(now) * 4 / 5)),
			})
		case *demarchev1.DecisionRequest_FactFindingReport:
			if stop != nil {
				stop(demarchev1.DeadlineStatus_DEADLINE_STATUS_MET)
			}
			return c.end(ctx, nil)
		}
	}
}

// conductsInquiries are the divisions of labour under which a regional
// organisation conducts an inquiry with the UN: it leads, or works jointly
// (¶51 "in several joint operations"); a partner that only supports, shares
// the burden or deploys in sequence does not. A partner whose role is not
// recorded yet may be named: its role, once acknowledged, is its own to say.
var conductsInquiries = []demarchev1.PartnerRoleKind{
	demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD,
	demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_JOINT,
}

// checkJointInquiry enforces the division of labour on a joint inquiry's
// partner (the update validator: a refusal leaves no trace in the history,
// so histories recorded before keep replaying).
func (l *lifecycle) checkJointInquiry(org string) error {
	if org == "" {
		return nil
	}
	for _, p := range l.partners {
		if strings.EqualFold(p.GetPartner(), org) && !slices.Contains(conductsInquiries, p.GetRole()) {
			return rule("joint-inquiry-partner", "%s's role in this crisis is %s: a joint inquiry is conducted with a partner in a lead or joint role (record its role with demarche crisis partner-role)",
				org, p.GetRole().Slug())
		}
	}
	return nil
}
