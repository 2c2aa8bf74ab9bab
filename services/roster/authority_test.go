package roster_test

import (
	"context"
	"strings"
	"testing"

	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestBooksOnlyOnTheCrisisDecisions: reserve and release are refused, naming
// the rule, unless the crisis's workflow holds the decision they carry out
// with the same terms; a refused call books and releases nothing.
func TestBooksOnlyOnTheCrisisDecisions(t *testing.T) {
	srv := natstest.ServerIn(t, t.TempDir())
	defer srv.Stop()
	svc, nc := startRoster(t, srv.URL())
	defer svc.Stop()
	defer nc.Close()
	ctx := context.Background()
	refused := func(what string, err error, rule string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), rule) {
			t.Fatalf("%s: %v, want a refusal naming %s", what, err, rule)
		}
	}
	reserve := func(r *demarchev1.ReserveRequest) error {
		return natsrpc.Call(ctx, nc, natsrpc.RosterReserve, r, &demarchev1.ReserveResponse{})
	}
	release := func(r *demarchev1.ReleaseRequest) error {
		return natsrpc.Call(ctx, nc, natsrpc.RosterRelease, r, &demarchev1.ReleaseResponse{})
	}
	booking := func(crisisID, role, expert, by string) *demarchev1.ReserveRequest {
		return &demarchev1.ReserveRequest{CrisisId: crisisID, Role: role, ExpertId: expert, ReservedBy: by}
	}

	refused("no decision named", reserve(booking("XX-ghost", "envoy", "env-amara-diallo", "mallory")), "decision-named")
	ghost := booking("XX-ghost", "envoy", "env-amara-diallo", "mallory")
	ghost.Decision = ref("XX-ghost", "upd-1")
	refused("a crisis that does not exist", reserve(ghost), "crisis-exists")
	refused("release for a crisis that does not exist", release(&demarchev1.ReleaseRequest{CrisisId: "XX-ghost", Role: "envoy", Decision: ref("XX-ghost", "upd-2")}), "crisis-exists")

	// A real crisis, booked by its own appointment.
	good := auth(booking("ML-real", "envoy", "env-amara-diallo", "hod"))
	noSuch := booking("ML-real", "envoy", "env-amara-diallo", "hod")
	noSuch.Decision = ref("ML-real", "upd-none")
	refused("no such decision", reserve(noSuch), "decision-recorded")
	other := copyOf(good)
	other.ExpertId = "env-nadia-haddad"
	refused("another expert", reserve(other), "decision-terms")
	other = copyOf(good)
	other.ReservedBy = "mallory"
	refused("another booker", reserve(other), "decision-terms")
	other = copyOf(good)
	other.Role = "standby-3"
	refused("a role the decision does not book", reserve(other), "decision-terms")
	other = copyOf(good)
	other.Drill = true
	refused("the drill flag", reserve(other), "drill-flag")
	if as, _ := svc.Store.Assignments(ctx, "", false); len(as) != 0 {
		t.Fatalf("refused reservations booked %v", as)
	}
	if as, _ := svc.Store.Assignments(ctx, "", true); len(as) != 0 {
		t.Fatalf("refused reservations booked %v", as)
	}
	var res demarchev1.ReserveResponse
	if err := natsrpc.Call(ctx, nc, natsrpc.RosterReserve, good, &res); err != nil {
		t.Fatal(err)
	}
	if res.GetAssignment().GetDecision().GetDecisionId() != good.GetDecision().GetDecisionId() {
		t.Fatalf("booking %v does not name its decision", res.GetAssignment())
	}
	// Release: not without the closure, and not under an appointment that
	// is no longer in flight.
	refused("release with no decision", release(&demarchev1.ReleaseRequest{CrisisId: "ML-real", Role: "envoy", Decision: ref("ML-real", "upd-x")}), "decision-recorded")
	crises.mu.Lock()
	c := crises.crises["ML-real"]
	c.Decisions, c.InFlight = append(c.Decisions, c.InFlight...), nil
	crises.mu.Unlock()
	refused("release under a recorded appointment", release(&demarchev1.ReleaseRequest{CrisisId: "ML-real", Role: "envoy", Decision: good.GetDecision()}), "decision-terms")
	if as, _ := svc.Store.Assignments(ctx, "ML-real", false); len(as) != 1 {
		t.Fatalf("refused releases released: %v", as)
	}
	if err := release(closing(&demarchev1.ReleaseRequest{CrisisId: "ML-real", Role: "envoy"})); err != nil {
		t.Fatalf("release at closure: %v", err)
	}
	if as, _ := svc.Store.Assignments(ctx, "ML-real", false); len(as) != 0 {
		t.Fatalf("after closure: %v", as)
	}
}

func copyOf(r *demarchev1.ReserveRequest) *demarchev1.ReserveRequest {
	return &demarchev1.ReserveRequest{CrisisId: r.GetCrisisId(), Role: r.GetRole(), ExpertId: r.GetExpertId(), ReservedBy: r.GetReservedBy(),
		Drill: r.GetDrill(), Decision: r.GetDecision()}
}

// TestHandBackReleasesTheStandbyTeamOnly: a standby team's hand-back, a
// decision of the crisis, releases the team's standby roles at once; the
// envoy's booking stands (refused under the hand-back, naming the rule)
// until closure.
func TestHandBackReleasesTheStandbyTeamOnly(t *testing.T) {
	srv := natstest.ServerIn(t, t.TempDir())
	defer srv.Stop()
	svc, nc := startRoster(t, srv.URL())
	defer svc.Stop()
	defer nc.Close()
	ctx := context.Background()
	release := func(r *demarchev1.ReleaseRequest) error {
		return natsrpc.Call(ctx, nc, natsrpc.RosterRelease, r, &demarchev1.ReleaseResponse{})
	}
	for _, b := range []*demarchev1.ReserveRequest{
		{CrisisId: "MG-handback", Role: "envoy", ExpertId: "env-amara-diallo", ReservedBy: "hod"},
		{CrisisId: "MG-handback", Role: "standby-1", ExpertId: "sb-fatou-sow", ReservedBy: "hod"},
	} {
		if err := natsrpc.Call(ctx, nc, natsrpc.RosterReserve, auth(b), &demarchev1.ReserveResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	crises.mu.Lock()
	c := crises.crises["MG-handback"]
	c.Decisions, c.InFlight = append(c.Decisions, c.InFlight...), []*demarchev1.DecisionRecord{{Kind: "standby-team-handed-back", Principal: "msu", DecisionId: "handback-1",
		Request: &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_StandbyTeamHandedBack{StandbyTeamHandedBack: &demarchev1.StandbyTeamHandedBack{HandedTo: "SADC"}}}}}
	crises.mu.Unlock()
	if err := release(&demarchev1.ReleaseRequest{CrisisId: "MG-handback", Role: "envoy", Decision: ref("MG-handback", "handback-1")}); err == nil ||
		!strings.Contains(err.Error(), "decision-terms") {
		t.Fatalf("the envoy released under a hand-back: %v, want decision-terms", err)
	}
	if err := release(&demarchev1.ReleaseRequest{CrisisId: "MG-handback", Role: "standby-1", Decision: ref("MG-handback", "handback-1")}); err != nil {
		t.Fatalf("hand-back release: %v", err)
	}
	as, _ := svc.Store.Assignments(ctx, "MG-handback", false)
	if len(as) != 1 || as[0].GetRole() != "envoy" {
		t.Fatalf("after the hand-back: %v, want the envoy's booking only", as)
	}
}
