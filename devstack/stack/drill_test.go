package stack_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestDrillsLiveInTheirOwnWorld runs drills beside a real crisis on the real
// stack: drills go through the same requests, approvals, disbursements and
// bookings, but pay from the drill fund and book in the roster's shadow space.
// Real fund balances and the real roster's bookings are untouched by them, a
// real crisis appoints an envoy a running drill holds, and a real crisis may
// not draw from the drill fund.
func TestDrillsLiveInTheirOwnWorld(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	nc := natsConn(t, s)
	cli := mustCLI(t, s)
	balances := func() map[string]int64 {
		t.Helper()
		var b demarchev1.BalanceResponse
		if err := natsrpc.Call(ctx, nc, natsrpc.FundingBalance, &demarchev1.FundQuery{}, &b); err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, f := range b.GetFunds() {
			out[f.GetFund().GetId()] = f.GetBalanceUsd()
		}
		return out
	}
	assignments := func(drill bool) []*demarchev1.Assignment {
		t.Helper()
		var a demarchev1.AssignmentsResponse
		if err := natsrpc.Call(ctx, nc, natsrpc.RosterAssignments, &demarchev1.AssignmentsRequest{Drill: drill}, &a); err != nil {
			t.Fatal(err)
		}
		return a.GetAssignments()
	}
	before := balances()
	if before[demarchev1.DrillFundID] == 0 {
		t.Fatalf("the drill fund is not seeded: %v", before)
	}

	// A real crisis waits for its envoy appointment.
	real := openedID(t, cli("crisis", "open", "--title", "Constitutional standoff", "--country", "NE",
		"--type", "constitutional-crisis", "--severity", "3"))
	waitPendingKind(t, tc, real, "triage")
	cli("crisis", "decide", "triage", real, "--as", "duty-officer", "--rationale", "credible", "--assessment", "parliament dissolved")
	waitPendingKind(t, tc, real, "good-offices")
	cli("crisis", "decide", "good-offices", real, "--as", "head", "--rationale", "quiet channel", "--option", "quiet-diplomacy")
	waitPendingKind(t, tc, real, "envoy-appointment")

	// Six drills, more than the five senior envoys, at once: one slow enough
	// to hold its envoy while the real crisis appoints the same person.
	// Drills are named by their opener (duty): ids DRILL-<tag>-<name>.
	names, countries := []string{"DRHLD"}, []string{"GN"}
	for i := range 5 {
		names, countries = append(names, fmt.Sprintf("DR%03d", i)), append(countries, "ML")
	}
	var drills []string
	for _, n := range names {
		drills = append(drills, drillID(t, "duty", n))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(drills))
	for i, id := range drills {
		name, country := names[i], countries[i]
		delay := "1s"
		if i == 0 {
			delay = "3s"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := runCLI(t, s, "crisis", "open", "--id", name, "--title", "Drill "+name, "--country", country,
				"--type", "constitutional-crisis", "--severity", "3", "--drill", "--drill-delay", delay, "--drill-time-scale", "0.000001")
			if err != nil {
				errs <- fmt.Errorf("open drill %s: %v\n%s", id, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// The slow drill books its envoy in the shadow space...
	var held string
	waitFor(t, func() bool {
		for _, a := range assignments(true) {
			if a.GetCrisisId() == drills[0] && a.GetRole() == "envoy" {
				held = a.GetExpertId()
				return true
			}
		}
		return false
	})
	// ... and the real crisis appoints that very envoy while the drill holds it.
	cli("crisis", "decide", "envoy-appointment", real, "--as", "head", "--rationale", "best placed",
		"--envoy", held, "--standby-team", "sb-fatou-sow")
	stillHeld := false
	for _, a := range assignments(true) {
		stillHeld = stillHeld || (a.GetCrisisId() == drills[0] && a.GetExpertId() == held)
	}
	if !stillHeld {
		t.Fatalf("the drill released %s before the real appointment: the test proves nothing; slow the drill down", held)
	}

	// The real crisis may not draw from the drill fund.
	cli("crisis", "decide", "standby-team-deployed", real, "--as", "msu", "--rationale", "on the ground", "--location", "Niamey")
	waitPendingKind(t, tc, real, "funding-request")
	if _, err := runCLI(t, s, "crisis", "decide", "funding-request", real, "--as", "alice", "--rationale", "costs",
		"--funding-request", "FR-1", "--fund", demarchev1.DrillFundID, "--amount", "1000", "--purpose", "venue"); err == nil ||
		!strings.Contains(err.Error(), "drill-fund") {
		t.Fatalf("a real crisis drew from the drill fund: %v", err)
	}

	// Every drill runs to closure, through funding and the roster.
	for _, id := range drills {
		var final demarchev1.CrisisState
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		err := tc.GetWorkflow(wctx, crisis.WorkflowID(id), "").Get(wctx, &final)
		cancel()
		if err != nil {
			t.Fatalf("drill %s: %v", id, err)
		}
		if final.GetFigures().GetFundingDisbursedUsd() != 50_000 {
			t.Fatalf("drill %s disbursed %d, want 50000 from the drill fund", id, final.GetFigures().GetFundingDisbursedUsd())
		}
	}

	after := balances()
	for fund, b := range before {
		want := b
		if fund == demarchev1.DrillFundID {
			want = b - int64(len(drills))*50_000
		}
		if after[fund] != want {
			t.Fatalf("fund %s: balance %d after the drills, want %d (before %d)", fund, after[fund], want, b)
		}
	}
	var ledger demarchev1.LedgerResponse
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingLedger, &demarchev1.FundQuery{Fund: demarchev1.DrillFundID}, &ledger); err != nil {
		t.Fatal(err)
	}
	if n := len(ledger.GetEntries()); n != 1+len(drills) {
		t.Fatalf("drill fund ledger has %d lines, want opening + %d drills", n, len(drills))
	}
	// The real roster holds the real crisis's bookings only; the drills
	// released their shadow bookings at closure.
	realBooked := assignments(false)
	if len(realBooked) != 2 {
		t.Fatalf("real bookings: %v, want the real crisis's envoy and standby expert", realBooked)
	}
	for _, a := range realBooked {
		if a.GetCrisisId() != real || a.GetDrill() {
			t.Fatalf("a drill booking in the real roster: %v", a)
		}
	}
	if left := assignments(true); len(left) != 0 {
		t.Fatalf("drill bookings left after closure: %v", left)
	}
}

// waitPendingKind waits until a crisis awaits a decision of kind.
func waitPendingKind(t *testing.T, tc client.Client, id, kind string) {
	t.Helper()
	waitFor(t, func() bool {
		st, err := crisis.State(context.Background(), tc, id)
		if err != nil {
			return false
		}
		for _, p := range st.GetPendingDecisions() {
			if p.GetKind() == kind {
				return true
			}
		}
		return false
	})
}
