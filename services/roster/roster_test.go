package roster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/roster"
)

func startRoster(t *testing.T, url string) (*roster.Service, *nats.Conn) {
	t.Helper()
	svc, err := roster.Start(context.Background(), url, roster.DemoRoster(), crises, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	return svc, nc
}

func TestFiftyConcurrentReservationsOneWinner(t *testing.T) {
	srv := natstest.ServerIn(t, t.TempDir())
	defer srv.Stop()
	svc, nc := startRoster(t, srv.URL())
	defer svc.Stop()
	defer nc.Close()

	var wg sync.WaitGroup
	var mu sync.Mutex
	won, refused := 0, 0
	var other []error
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp demarchev1.ReserveResponse
			err := natsrpc.Call(context.Background(), nc, natsrpc.RosterReserve, auth(&demarchev1.ReserveRequest{
				CrisisId: fmt.Sprintf("ML-2026-%03d", i), Role: "envoy", ExpertId: "env-amara-diallo", ReservedBy: "desk",
			}), &resp)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && !resp.GetReplayed():
				won++
			case errors.Is(err, errs.ErrConflict):
				refused++
			default:
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || refused != 49 || len(other) != 0 {
		t.Fatalf("won %d, refused %d, other %v; want exactly one booking", won, refused, other)
	}
	as, err := svc.Store.Assignments(context.Background(), "", false)
	if err != nil || len(as) != 1 {
		t.Fatalf("assignments after the race: %v, %v", as, err)
	}
}

func TestReserveIsIdempotentPerCrisisAndRole(t *testing.T) {
	srv := natstest.ServerIn(t, t.TempDir())
	defer srv.Stop()
	svc, nc := startRoster(t, srv.URL())
	defer svc.Stop()
	defer nc.Close()
	ctx := context.Background()
	req := auth(&demarchev1.ReserveRequest{CrisisId: "GN-2026-A", Role: "envoy", ExpertId: "env-amara-diallo", ReservedBy: "desk"})
	var first, again demarchev1.ReserveResponse
	if err := natsrpc.Call(ctx, nc, natsrpc.RosterReserve, req, &first); err != nil || first.GetReplayed() {
		t.Fatalf("first reserve: %v replayed=%v", err, first.GetReplayed())
	}
	if err := natsrpc.Call(ctx, nc, natsrpc.RosterReserve, req, &again); err != nil || !again.GetReplayed() {
		t.Fatalf("retried reserve: %v replayed=%v", err, again.GetReplayed())
	}
	if !first.GetAssignment().GetReservedAt().AsTime().Equal(again.GetAssignment().GetReservedAt().AsTime()) {
		t.Fatalf("retry returned another booking: %v vs %v", first.GetAssignment(), again.GetAssignment())
	}
	// The same role asked again with another expert still returns the first booking.
	var other demarchev1.ReserveResponse
	req2 := auth(&demarchev1.ReserveRequest{CrisisId: "GN-2026-A", Role: "envoy", ExpertId: "env-nadia-haddad", ReservedBy: "desk"})
	if err := natsrpc.Call(ctx, nc, natsrpc.RosterReserve, req2, &other); err != nil || other.GetAssignment().GetExpertId() != "env-amara-diallo" {
		t.Fatalf("role re-reserved: %v %v", err, other.GetAssignment())
	}
	// Bad input and unknown or unavailable experts are refused with the reason.
	err := natsrpc.Call(ctx, nc, natsrpc.RosterReserve, auth(&demarchev1.ReserveRequest{CrisisId: "GN-2026-A", Role: "x", ExpertId: "env-amara-diallo", ReservedBy: "desk"}), &other)
	if !errors.Is(err, errs.ErrInvalid) || !contains(err, "role") {
		t.Fatalf("bad role: %v", err)
	}
	err = natsrpc.Call(ctx, nc, natsrpc.RosterReserve, auth(&demarchev1.ReserveRequest{CrisisId: "GN-2026-A", Role: "standby-1", ExpertId: "nobody", ReservedBy: "desk"}), &other)
	if !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("unknown expert: %v", err)
	}
	err = natsrpc.Call(ctx, nc, natsrpc.RosterReserve, auth(&demarchev1.ReserveRequest{CrisisId: "GN-2026-A", Role: "standby-1", ExpertId: "sb-hugo-weber", ReservedBy: "desk"}), &other)
	if !errors.Is(err, errs.ErrConflict) || !contains(err, "not available") {
		t.Fatalf("unavailable expert: %v", err)
	}
	// Release frees the expert for another crisis.
	var rel demarchev1.ReleaseResponse
	if err := natsrpc.Call(ctx, nc, natsrpc.RosterRelease, closing(&demarchev1.ReleaseRequest{CrisisId: "GN-2026-A", Role: "envoy"}), &rel); err != nil || rel.GetReleased().GetExpertId() != "env-amara-diallo" {
		t.Fatalf("release: %v %v", err, rel.GetReleased())
	}
	if err := natsrpc.Call(ctx, nc, natsrpc.RosterReserve, auth(&demarchev1.ReserveRequest{CrisisId: "ML-2026-B", Role: "envoy", ExpertId: "env-amara-diallo", ReservedBy: "desk"}), &other); err != nil {
		t.Fatalf("reserve after release: %v", err)
	}
}

func TestAssignmentsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.ServerIn(t, dir)
	svc, nc := startRoster(t, srv.URL())
	var resp demarchev1.ReserveResponse
	if err := natsrpc.Call(context.Background(), nc, natsrpc.RosterReserve, auth(&demarchev1.ReserveRequest{CrisisId: "NE-2026-R", Role: "envoy", ExpertId: "env-nadia-haddad", ReservedBy: "desk"}), &resp); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	svc.Stop()
	srv.Stop()

	srv2 := natstest.ServerIn(t, dir)
	defer srv2.Stop()
	svc2, nc2 := startRoster(t, srv2.URL())
	defer svc2.Stop()
	defer nc2.Close()
	var list demarchev1.AssignmentsResponse
	if err := natsrpc.Call(context.Background(), nc2, natsrpc.RosterAssignments, &demarchev1.AssignmentsRequest{CrisisId: "NE-2026-R"}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.GetAssignments()) != 1 || list.GetAssignments()[0].GetExpertId() != "env-nadia-haddad" {
		t.Fatalf("after restart: %v", list.GetAssignments())
	}
	err := natsrpc.Call(context.Background(), nc2, natsrpc.RosterReserve, auth(&demarchev1.ReserveRequest{CrisisId: "SD-2026-X", Role: "envoy", ExpertId: "env-nadia-haddad", ReservedBy: "desk"}), &resp)
	if !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("double booking after restart: %v", err)
	}
}

func TestSearchRanksAndSkipsBookedExperts(t *testing.T) {
	srv := natstest.ServerIn(t, t.TempDir())
	defer srv.Stop()
	svc, nc := startRoster(t, srv.URL())
	defer svc.Stop()
	defer nc.Close()
	ctx := context.Background()
	q := &demarchev1.RosterSearchRequest{Kind: demarchev1.ExpertKind_EXPERT_KIND_SENIOR_ENVOY, Region: demarchev1.Region_REGION_AFRICA,
		Expertise: []demarchev1.Expertise{demarchev1.Expertise_EXPERTISE_CONSTITUTION_MAKING}, Languages: []string{"fr"}}
	var res demarchev1.RosterSearchResponse
	if err := natsrpc.Call(ctx, nc, natsrpc.RosterSearch, q, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.GetCandidates()) == 0 || res.GetCandidates()[0].GetExpert().GetId() != "env-amara-diallo" || res.GetCandidates()[0].GetScore() != 6 {
		t.Fatalf("best candidate: %v", res.GetCandidates())
	}
	if err := natsrpc.Call(ctx, nc, natsrpc.RosterReserve, auth(&demarchev1.ReserveRequest{CrisisId: "GN-2026-S", Role: "envoy", ExpertId: "env-amara-diallo", ReservedBy: "desk"}), &demarchev1.ReserveResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := natsrpc.Call(ctx, nc, natsrpc.RosterSearch, q, &res); err != nil {
		t.Fatal(err)
	}
	for _, c := range res.GetCandidates() {
		if c.GetExpert().GetId() == "env-amara-diallo" || c.GetExpert().GetKind() != demarchev1.ExpertKind_EXPERT_KIND_SENIOR_ENVOY {
			t.Fatalf("search offers a booked expert or the wrong kind: %v", c)
		}
	}
}

func TestMicroDiscovery(t *testing.T) {
	srv := natstest.ServerIn(t, t.TempDir())
	defer srv.Stop()
	svc, nc := startRoster(t, srv.URL())
	defer svc.Stop()
	defer nc.Close()
	msg, err := nc.Request("$SRV.INFO.roster", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Name      string `json:"name"`
		Endpoints []struct {
			Subject string `json:"subject"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	subjects := map[string]bool{}
	for _, e := range info.Endpoints {
		subjects[e.Subject] = true
	}
	if info.Name != "roster" || !subjects[natsrpc.RosterReserve] || !subjects[natsrpc.RosterSearch] {
		t.Fatalf("info: %+v", info)
	}
	if err := natsrpc.Call(context.Background(), nc, natsrpc.RosterExperts, &demarchev1.AssignmentsRequest{}, &demarchev1.ExpertsResponse{}); err != nil {
		t.Fatal(err)
	}
	// micro counts a request once its handler has returned, which may be
	// just after the caller has its answer: ask the stats until they count
	// it (or the bound passes with the last count in the failure).
	experts := -1
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		msg, err = nc.Request("$SRV.STATS.roster", nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var stats struct {
			Endpoints []struct {
				Subject  string `json:"subject"`
				Requests int    `json:"num_requests"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal(msg.Data, &stats); err != nil {
			t.Fatal(err)
		}
		for _, e := range stats.Endpoints {
			if e.Subject == natsrpc.RosterExperts {
				experts = e.Requests
			}
		}
		if experts == 1 {
			return
		}
	}
	t.Fatalf("stats count %d requests on experts, want 1", experts)
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// Micro serves one subscription's requests in order; the guarantee must hold
// without that, e.g. with several roster instances: race the store directly.
func TestStoreRaceWithoutTheServiceQueue(t *testing.T) {
	srv := natstest.ServerIn(t, t.TempDir())
	defer srv.Stop()
	var stores []*roster.Service
	for range 3 { // three instances of the service on one bucket
		svc, nc := startRoster(t, srv.URL())
		defer svc.Stop()
		defer nc.Close()
		stores = append(stores, svc)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := stores[i%3].Store.Reserve(context.Background(), auth(&demarchev1.ReserveRequest{
				CrisisId: fmt.Sprintf("SS-2026-%03d", i), Role: "standby-1", ExpertId: "sb-fatou-sow", ReservedBy: "desk"}))
			if err == nil && !resp.GetReplayed() {
				mu.Lock()
				won++
				mu.Unlock()
			} else if err != nil && !errors.Is(err, errs.ErrConflict) {
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d reservations won, want exactly 1", won)
	}
}

// TestDrillsBookInAShadowSpace: a drill books the same experts in a separate
// booking space. It never holds an expert against a real crisis, a real
// booking never stops a drill, each drill books in a world of its own (two
// drills may appoint the same envoy), and within one drill and among real
// crises bookings stay exclusive.
func TestDrillsBookInAShadowSpace(t *testing.T) {
	srv := natstest.ServerIn(t, t.TempDir())
	defer srv.Stop()
	svc, nc := startRoster(t, srv.URL())
	defer svc.Stop()
	defer nc.Close()
	ctx := context.Background()
	reserve := func(crisis, role string, drill bool) error {
		return natsrpc.Call(ctx, nc, natsrpc.RosterReserve, auth(&demarchev1.ReserveRequest{
			CrisisId: crisis, Role: role, ExpertId: "env-amara-diallo", ReservedBy: "desk", Drill: drill}), &demarchev1.ReserveResponse{})
	}
	if err := reserve("DRILL-1", "envoy", true); err != nil {
		t.Fatal(err)
	}
	if err := reserve("DRILL-2", "envoy", true); err != nil {
		t.Fatalf("second drill on the same expert: %v, want booked in its own world", err)
	}
	if err := reserve("DRILL-1", "standby-1", true); !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("the same drill booking its envoy again in another role: %v, want a conflict", err)
	}
	if err := reserve("REAL-1", "envoy", false); err != nil {
		t.Fatalf("real crisis on an expert drills hold: %v", err)
	}
	if err := reserve("REAL-2", "envoy", false); !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("second real crisis on the same expert: %v, want a conflict", err)
	}
	for drill, want := range map[bool]int{false: 1, true: 2} {
		as, err := svc.Store.Assignments(ctx, "", drill)
		if err != nil || len(as) != want {
			t.Fatalf("drill=%v assignments: %v, %v; want %d", drill, as, err, want)
		}
		for _, a := range as {
			if a.GetDrill() != drill {
				t.Fatalf("drill=%v lists %v", drill, a)
			}
		}
	}
	// Search ranks against the request's world: booked for DRILL-1 and for
	// the real crises, free for a third drill.
	offers := func(req *demarchev1.RosterSearchRequest) bool {
		t.Helper()
		var res demarchev1.RosterSearchResponse
		req.Limit = 100
		if err := natsrpc.Call(ctx, nc, natsrpc.RosterSearch, req, &res); err != nil {
			t.Fatal(err)
		}
		for _, c := range res.GetCandidates() {
			if c.GetExpert().GetId() == "env-amara-diallo" {
				return true
			}
		}
		return false
	}
	if offers(&demarchev1.RosterSearchRequest{Drill: true, CrisisId: "DRILL-1"}) {
		t.Fatal("drill search offers DRILL-1 the expert it holds")
	}
	if !offers(&demarchev1.RosterSearchRequest{Drill: true, CrisisId: "DRILL-3"}) {
		t.Fatal("drill search does not offer DRILL-3 an expert only other drills hold")
	}
	if offers(&demarchev1.RosterSearchRequest{}) {
		t.Fatal("real search offers an expert a real crisis holds")
	}
	// Releasing one drill leaves the other drill's and the real booking.
	if err := natsrpc.Call(ctx, nc, natsrpc.RosterRelease, closing(&demarchev1.ReleaseRequest{CrisisId: "DRILL-1", Role: "envoy", Drill: true}), &demarchev1.ReleaseResponse{}); err != nil {
		t.Fatal(err)
	}
	if as, _ := svc.Store.Assignments(ctx, "", false); len(as) != 1 || as[0].GetCrisisId() != "REAL-1" {
		t.Fatalf("real bookings after the drill's release: %v", as)
	}
	if as, _ := svc.Store.Assignments(ctx, "", true); len(as) != 1 || as[0].GetCrisisId() != "DRILL-2" {
		t.Fatalf("drill bookings after DRILL-1's release: %v", as)
	}
}
