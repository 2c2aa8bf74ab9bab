package crisis

// Envoy deployment (¶18 "I have appointed envoys to help to defuse tensions";
// ¶19 "the rapid deployment of a mediation support team";
// ¶62 "rosters of senior envoys, mediators and experts"): the head of
// department appoints a special envoy from the senior roster and the standby
// team of mediation experts (¶17 "able to deploy within 72 hours"), booked on
// the roster service (an expert held by another crisis is refused). The standby
// team must deploy within 72 hours of the stage's start: the EnvoyDeployment
// workflow runs that durable deadline, at risk at 48 hours, and keeps waiting
// however late until the mediation support unit confirms the team deployed,
// which ends the stage.

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// envoyRun is what an envoy-deployment stage run knows.
type envoyRun struct {
	appointment *demarchev1.EnvoyAppointment
	deployed    bool
}

func envoyOf(r *stageRun) *envoyRun { return r.state.(*envoyRun) }

func carriedEnvoy(cr *demarchev1.CarriedStageRun) stageState {
	return &envoyRun{appointment: cr.GetEnvoyAppointment(), deployed: cr.GetEnvoyDeployed()}
}

func (e *envoyRun) carry(cr *demarchev1.CarriedStageRun) {
	cr.EnvoyAppointment, cr.EnvoyDeployed = e.appointment, e.deployed
}

var envoyAppointment = decisionKind(&decisionType{
	kind: "envoy-appointment", stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT,
	role: demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT, who: "head of department",
	describe: func(r *demarchev1.DecisionRequest) string {
		a := r.GetEnvoyAppointment()
		s := fmt.Sprintf("envoy %s appointed, standby team %s", a.GetEnvoy(), strings.Join(a.GetStandbyTeam(), ", "))
		if a.GetEnvoy() == "" {
			s = fmt.Sprintf("standby team %s deployed in support of %s, no UN envoy", strings.Join(a.GetStandbyTeam(), ", "), a.GetSupports())
		} else if a.GetSupports() != "" {
			s += ", in support of " + a.GetSupports()
		}
		if id := a.GetFundingRequestId(); id != "" {
			s += ", paid by funding request " + id
		}
		return s
	},
	check: func(d *decisionCtx) error {
		if a := envoyOf(d.run).appointment; a != nil {
			return rule("one-envoy", "an envoy (%s) was already appointed", or(a.GetEnvoy(), "none: the standby team alone"))
		}
		if a := d.req.GetEnvoyAppointment(); a.GetEnvoy() == "" && strings.TrimSpace(a.GetSupports()) == "" {
			return rule("envoy-or-supports", "appoint an envoy, or name in supports the partner-led or UN-led process the standby team alone supports")
		}
		if id := d.req.GetEnvoyAppointment().GetFundingRequestId(); id != "" && !d.l.fundingApproved(id) {
			return rule("paid-by-approved", "funding request %s is not an approved request of this crisis (approved: %s)", id, listOrNone(d.l.approvedFunding()))
		}
		return nil
	},
	call: func(ctx workflow.Context, d *decisionCtx) error {
		a := d.req.GetEnvoyAppointment()
		_, err := call(withServiceOptions(ctx), acts.ReserveExperts, &demarchev1.ReserveExpertsRequest{
			CrisisId: d.l.crisis.GetId(), Envoy: a.GetEnvoy(), StandbyTeam: a.GetStandbyTeam(), Principal: d.req.GetPrincipal(), Drill: d.l.crisis.GetDrill(),
			Decision: d.ref(ctx)})
		return err
	},
	apply: func(d *decisionCtx) effect {
		envoyOf(d.run).appointment = d.req.GetEnvoyAppointment()
		return toStageWorkflow
	},
	pending: func(_ *lifecycle, r *stageRun) []waiting {
		if envoyOf(r).appointment != nil {
			return nil
		}
		return []waiting{{due: r.deadline.GetDueAt()}}
	},
	// A drill books roster members as a crisis would, the best available
	// envoy and standby expert of the region, but in the roster's shadow
	// booking space: a drill never holds an expert against a real crisis.
	drill: func(ctx workflow.Context, d *decisionCtx) (*demarchev1.DecisionRequest, error) {
		picked, err := call(withServiceOptions(ctx), acts.PickExperts, &demarchev1.PickExpertsRequest{Region: d.l.crisis.GetRegion(), Drill: true, CrisisId: d.l.crisis.GetId()})
		if err != nil {
			return nil, err
		}
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_EnvoyAppointment{EnvoyAppointment: &demarchev1.EnvoyAppointment{
			Envoy: picked.GetEnvoy(), StandbyTeam: picked.GetStandbyTeam()}}}, nil
	},
})

// approvedFunding lists the crisis's approved funding requests, in order.
func (l *lifecycle) approvedFunding() []string {
	var out []string
	for _, d := range l.decisions {
		if fd := d.GetRequest().GetFundingDecision(); fd != nil && fd.GetApprove() {
			out = append(out, fd.GetRequestId())
		}
	}
	return out
}

func (l *lifecycle) fundingApproved(id string) bool {
	return slices.Contains(l.approvedFunding(), id)
}

var standbyTeamDeployed = decisionKind(&decisionType{
	kind: "standby-team-deployed", stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT,
	role: demarchev1.Role_ROLE_MEDIATION_SUPPORT, who: "mediation support unit",
	describe: func(r *demarchev1.DecisionRequest) string {
		return "standby team deployed in " + r.GetStandbyTeamDeployed().GetLocation()
	},
	check: func(d *decisionCtx) error {
		if envoyOf(d.run).appointment == nil {
			return rule("appointment-first", "appoint the envoy and the standby team before confirming deployment")
		}
		return nil
	},
	apply: func(d *decisionCtx) effect {
		envoyOf(d.run).deployed = true
		return toStageWorkflow
	},
	pending: func(_ *lifecycle, r *stageRun) []waiting {
		if e := envoyOf(r); e.appointment == nil || e.deployed {
			return nil
		}
		return []waiting{{}}
	},
	drill: func(workflow.Context, *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_StandbyTeamDeployed{
			StandbyTeamDeployed: &demarchev1.StandbyTeamDeployed{Location: "drill"}}}, nil
	},
})

// standbyTeamHandedBack ends a standby team's deployment whatever stage runs
// (follow-up, often): the roster releases the team's bookings at once, for
// other crises need it; the envoy's booking stands until closure.
var standbyTeamHandedBack = decisionKind(&decisionType{
	kind: "standby-team-handed-back", stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT, anytime: true,
	role: demarchev1.Role_ROLE_MEDIATION_SUPPORT, who: "mediation support unit",
	describe: func(r *demarchev1.DecisionRequest) string {
		return "standby team handed back to " + r.GetStandbyTeamHandedBack().GetHandedTo()
	},
	check: func(d *decisionCtx) error {
		deployed, back := d.l.deployments()
		if deployed <= back {
			return rule("deployed-first", "no standby team is deployed to hand back (deployed %d, handed back %d)", deployed, back)
		}
		return nil
	},
	call: func(ctx workflow.Context, d *decisionCtx) error {
		return workflow.ExecuteActivity(withServiceOptions(ctx), acts.ReleaseExperts, &demarchev1.AssignmentsRequest{
			CrisisId: d.l.crisis.GetId(), Drill: d.l.crisis.GetDrill(), Decision: d.ref(ctx), Roles: d.l.standbyRoles()}).Get(ctx, nil)
	},
	apply:   func(*decisionCtx) effect { return stageContinues },
	pending: func(*lifecycle, *stageRun) []waiting { return nil }, // when the deployment ends, not on a clock
	drill: func(workflow.Context, *decisionCtx) (*demarchev1.DecisionRequest, error) {
		return &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_StandbyTeamHandedBack{
			StandbyTeamHandedBack: &demarchev1.StandbyTeamHandedBack{HandedTo: "drill"}}}, nil
	},
})

// deployments counts the standby teams confirmed deployed and handed back.
func (l *lifecycle) deployments() (deployed, handedBack int) {
	for _, d := range l.decisions {
		switch {
		case d.GetRequest().GetStandbyTeamDeployed() != nil:
			deployed++
		case d.GetRequest().GetStandbyTeamHandedBack() != nil:
			handedBack++
		}
	}
	return deployed, handedBack
}

// standbyRoles are the roster roles of the latest appointment's standby
// team (standby-1 ...), the bookings a hand-back releases.
func (l *lifecycle) standbyRoles() []string {
	var roles []string
	for _, d := range l.decisions {
		if a := d.GetRequest().GetEnvoyAppointment(); a != nil {
			roles = roles[:0]
			for i := range a.GetStandbyTeam() {
				roles = append(roles, fmt.Sprintf("standby-%d", i+1))
			}
		}
	}
	return roles
}

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

// EnvoyDeployment runs the standby team's durable deadline (72 hours in the
// playbooks, at risk at 48) from the moment the stage starts, publishing and
// notifying when it is at risk or breached, and waits, however late, until the
// team is confirmed deployed.
func EnvoyDeployment(ctx workflow.Context, in *demarchev1.StageWorkflowInput) (*demarchev1.StageOutcome, error) {
	c, err := newStageChild(ctx, in, demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT)
	if err != nil {
		return nil, err
	}
	dl := newDeadline(ctx, "standby team deployment", demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT, in.GetPlaybook().GetStandbyTeam(), in.GetDrillPolicy())
	stop := c.watch(ctx, dl)
	for {
		rec, err := nextDecision(ctx)
		if err != nil {
			return c.end(ctx, err)
		}
		if rec.GetRequest().GetStandbyTeamDeployed() != nil {
			stop(demarchev1.DeadlineStatus_DEADLINE_STATUS_MET)
			return c.end(ctx, nil)
		}
	}
}
