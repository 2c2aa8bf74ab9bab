package roster_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// fakeCrises stands for the crises' workflows (the crisis.authority query).
type fakeCrises struct {
	mu     sync.Mutex
	crises map[string]*demarchev1.CrisisAuthority
}

var crises = &fakeCrises{crises: map[string]*demarchev1.CrisisAuthority{}}

func (f *fakeCrises) Authority(_ context.Context, id string) (*demarchev1.CrisisAuthority, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.crises[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", crisis.ErrNotFound, id)
	}
	return proto.Clone(c).(*demarchev1.CrisisAuthority), nil
}

func (f *fakeCrises) get(id string, drill bool) *demarchev1.CrisisAuthority {
	c, ok := f.crises[id]
	if !ok {
		c = &demarchev1.CrisisAuthority{CrisisId: id, Drill: drill}
		f.crises[id] = c
	}
	return c
}

func ref(crisisID, decisionID string) *demarchev1.DecisionRef {
	return &demarchev1.DecisionRef{CrisisId: crisisID, WorkflowId: crisis.WorkflowID(crisisID), RunId: "run-1", DecisionId: decisionID}
}

// appointment records (in flight) an envoy-appointment by principal booking
// expert for role, and returns its ref.
func (f *fakeCrises) appointment(crisisID string, drill bool, principal, role, expert string) *demarchev1.DecisionRef {
	a := &demarchev1.EnvoyAppointment{Envoy: "env-amara-diallo"}
	if role == "envoy" {
		a.Envoy = expert
	} else if n, err := strconv.Atoi(strings.TrimPrefix(role, "standby-")); err == nil && n > 0 {
		a.StandbyTeam = make([]string, n)
		for i := range a.StandbyTeam {
			a.StandbyTeam[i] = "sb-other"
		}
		a.StandbyTeam[n-1] = expert
	}
	id := "appt-" + role + "-" + expert
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.get(crisisID, drill)
	c.InFlight = append(c.InFlight, &demarchev1.DecisionRecord{Kind: "envoy-appointment", Principal: principal, DecisionId: id,
		Request: &demarchev1.DecisionRequest{Principal: principal, Decision: &demarchev1.DecisionRequest_EnvoyAppointment{EnvoyAppointment: a}}})
	return ref(crisisID, id)
}

// auth records the envoy-appointment a reservation carries out and names it.
func auth(req *demarchev1.ReserveRequest) *demarchev1.ReserveRequest {
	req.Decision = crises.appointment(req.GetCrisisId(), req.GetDrill(), req.GetReservedBy(), req.GetRole(), req.GetExpertId())
	return req
}

// closing records the crisis's closure and names it in the release.
func closing(req *demarchev1.ReleaseRequest) *demarchev1.ReleaseRequest {
	crises.mu.Lock()
	defer crises.mu.Unlock()
	c := crises.get(req.GetCrisisId(), req.GetDrill())
	c.Closed = true
	c.Decisions = append(c.Decisions, &demarchev1.DecisionRecord{Kind: "closure", Principal: "hod", DecisionId: "close-" + req.GetCrisisId(),
		Request: &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_Closure{Closure: &demarchev1.ClosureDecision{}}}})
	req.Decision = ref(req.GetCrisisId(), "close-"+req.GetCrisisId())
	return req
}
