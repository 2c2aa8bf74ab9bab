package roster

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// The roster books and releases people only on a decision of the crisis's
// workflow (crisis.CheckDecision): a reservation carries out the crisis's
// envoy-appointment (expert per role, booked by its principal, in the
// crisis's own booking space); a release carries out its recorded closure,
// a standby team's hand-back (its standby roles only), or undoes the bookings
// of an appointment still in flight (the worker's rollback when one expert
// of the team cannot be booked). Anything else is
// refused naming the rule, and nothing is booked or released.

// appointed is the expert an envoy-appointment books for a role: "envoy",
// or "standby-<n>" for the n-th of the standby team ("" when none).
func appointed(a *demarchev1.EnvoyAppointment, role string) string {
	if role == "envoy" {
		return a.GetEnvoy()
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(role, "standby-")); err == nil && strings.HasPrefix(role, "standby-") && n >= 1 && n <= len(a.GetStandbyTeam()) {
		return a.GetStandbyTeam()[n-1]
	}
	return ""
}

// reserveAuthority checks a reservation against its envoy-appointment and
// returns it with the decision's terms.
func (s *Store) reserveAuthority(ctx context.Context, req *demarchev1.ReserveRequest) (*demarchev1.ReserveRequest, error) {
	d, err := crisis.CheckDecision(ctx, s.decisions, req.GetCrisisId(), req.GetDecision(), "envoy-appointment")
	if err != nil {
		return nil, err
	}
	expert := appointed(d.Record.GetRequest().GetEnvoyAppointment(), req.GetRole())
	if expert == "" {
		return nil, fmt.Errorf("%w: decision-terms: decision %s of crisis %s books no role %q (envoy, standby-1..%d)", errs.ErrRule,
			d.Record.GetDecisionId(), req.GetCrisisId(), req.GetRole(), len(d.Record.GetRequest().GetEnvoyAppointment().GetStandbyTeam()))
	}
	if err := crisis.Terms(d,
		[3]string{"expert_id", req.GetExpertId(), expert},
		[3]string{"reserved_by", req.GetReservedBy(), d.Record.GetPrincipal()},
	); err != nil {
		return nil, err
	}
	if err := crisis.DrillFlag(d, req.GetDrill()); err != nil {
		return nil, err
	}
	return &demarchev1.ReserveRequest{CrisisId: req.GetCrisisId(), Role: req.GetRole(), ExpertId: expert, ReservedBy: d.Record.GetPrincipal(),
		Drill: d.Crisis.GetDrill(), Decision: req.GetDecision()}, nil
}

// releaseAuthority checks a release against the crisis's closure, or an
// appointment in flight whose booking of that role it undoes.
func (s *Store) releaseAuthority(ctx context.Context, req *demarchev1.ReleaseRequest) error {
	d, err := crisis.CheckDecision(ctx, s.decisions, req.GetCrisisId(), req.GetDecision(), "closure", "envoy-appointment", "standby-team-handed-back")
	if err != nil {
		return err
	}
	switch {
	case d.Record.GetKind() == "closure" && !d.Recorded:
		return fmt.Errorf("%w: decision-recorded: the closure of crisis %s is not recorded: bookings are released once it is", errs.ErrRule, req.GetCrisisId())
	case d.Record.GetKind() == "envoy-appointment" && d.Recorded:
		return fmt.Errorf("%w: decision-terms: decision %s of crisis %s is a recorded appointment: its bookings stand until the crisis closes", errs.ErrRule,
			d.Record.GetDecisionId(), req.GetCrisisId())
	case d.Record.GetKind() == "standby-team-handed-back" && !strings.HasPrefix(req.GetRole(), "standby-"):
		return fmt.Errorf("%w: decision-terms: decision %s of crisis %s hands back the standby team, not role %q", errs.ErrRule,
			d.Record.GetDecisionId(), req.GetCrisisId(), req.GetRole())
	case d.Record.GetKind() == "envoy-appointment" && appointed(d.Record.GetRequest().GetEnvoyAppointment(), req.GetRole()) == "":
		return fmt.Errorf("%w: decision-terms: decision %s of crisis %s books no role %q", errs.ErrRule, d.Record.GetDecisionId(), req.GetCrisisId(), req.GetRole())
	}
	return crisis.DrillFlag(d, req.GetDrill())
}
