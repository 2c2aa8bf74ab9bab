package attack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/cli"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/workflows/crisis"
)

const authorityWall = "authority"

// TestAuthorityFundingAndRosterActOnlyOnRecordedDecisions: with the worker's
// own NATS credential (the only one NATS lets call the mutating funding and
// roster subjects), money moves and experts are booked only on a decision of
// the crisis's workflow, with the workflow's terms: for a crisis that does
// not exist, for a real open crisis with no such decision, and with a
// requester, approver, expert, booker, role, key or drill flag other than the
// workflow's, each call is refused naming its rule and nothing is written
// (balance, ledger and bookings unchanged). A genuine crisis walked through
// the gateway (envoy appointed, funds requested and approved) books its
// experts and pays exactly once, each naming its decision, and audit
// reconcile finds it clean, then names a forged ledger line as a
// disbursement without decision.
func TestAuthorityFundingAndRosterActOnlyOnRecordedDecisions(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	worker := natsAs(t, s, natsauth.Worker)
	reader := natsAs(t, s, natsauth.Gateway) // reads balances, ledgers and bookings, as the gateway does
	duty, approver := demo(t, s, "duty"), demo(t, s, "approver")
	const fund = "flexible-financing"

	// A real crisis, opened and walked to funding through the gateway.
	code, body := duty.do("POST", "/v1/crises", `{"crisis": {"title": "Authority test", "countryCode": "GN", "crisisType": "CRISIS_TYPE_GENERAL", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}}`)
	if code != http.StatusCreated {
		t.Fatalf("open: %d %s", code, body)
	}
	var opened struct {
		Crisis struct{ ID string } `json:"crisis"`
	}
	if err := json.Unmarshal([]byte(body), &opened); err != nil || opened.Crisis.ID == "" {
		t.Fatalf("open: %v %s", err, body)
	}
	id := opened.Crisis.ID
	for _, stage := range []string{"STAGE_WARNING", "STAGE_GOOD_OFFICES", "STAGE_FACT_FINDING"} {
		if code, body := duty.do("POST", "/v1/crises/"+id+"/controls/skip-stage", fmt.Sprintf(`{"reason": "straight to the envoy", "stage": %q}`, stage)); code != http.StatusOK {
			t.Fatalf("skip %s: %d %s", stage, code, body)
		}
	}
	waitPendingHTTP(t, duty, id, "envoy-appointment")

	balance := func() int64 {
		t.Helper()
		var b demarchev1.BalanceResponse
		if err := natsrpc.Call(ctx, reader, natsrpc.FundingBalance, &demarchev1.FundQuery{Fund: fund}, &b); err != nil {
			t.Fatal(err)
		}
		return b.GetFunds()[0].GetBalanceUsd()
	}
	ledger := func() []*demarchev1.LedgerEntry {
		t.Helper()
		var l demarchev1.LedgerResponse
		if err := natsrpc.Call(ctx, reader, natsrpc.FundingLedger, &demarchev1.FundQuery{Fund: fund}, &l); err != nil {
			t.Fatal(err)
		}
		return l.GetEntries()
	}
	paidTo := func(crisisID string) (out []*demarchev1.LedgerEntry) {
		for _, e := range ledger() {
			if e.GetCrisisId() == crisisID {
				out = append(out, e)
			}
		}
		return out
	}
	bookings := func(crisisID string) int {
		n := 0
		for _, drill := range []bool{false, true} {
			var as demarchev1.AssignmentsResponse
			if err := natsrpc.Call(ctx, reader, natsrpc.RosterAssignments, &demarchev1.AssignmentsRequest{CrisisId: crisisID, Drill: drill}, &as); err != nil {
				t.Fatal(err)
			}
			n += len(as.GetAssignments())
		}
		return n
	}
	before := balance()
	booked := map[string]int{} // bookings each crisis holds by its own decisions
	ref := func(crisisID, decision string) *demarchev1.DecisionRef {
		return &demarchev1.DecisionRef{CrisisId: crisisID, WorkflowId: crisis.WorkflowID(crisisID), RunId: "forged", DecisionId: decision}
	}
	// refused asserts a refusal naming rule, that nothing was written, and records the attempt.
	refused := func(what, rule string, err error, crisisID string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), rule) {
			t.Fatalf("%s: %v, want a refusal naming %s", what, err, rule)
		}
		if b := balance(); b != before {
			t.Fatalf("%s: the balance moved from %d to %d", what, before, b)
		}
		if l := paidTo(crisisID); len(l) != 0 {
			t.Fatalf("%s: ledger lines for %s: %v", what, crisisID, l)
		}
		if n := bookings(crisisID); n != booked[crisisID] {
			t.Fatalf("%s: %d bookings for %s, want %d", what, n, crisisID, booked[crisisID])
		}
		attempt(t, authorityWall, what, "worker (NATS)", "refused: "+err.Error())
	}
	call := func(subject string, req, resp proto.Message) error {
		return natsrpc.Call(ctx, worker, subject, req, resp)
	}
	mallory := func(crisisID string, r *demarchev1.DecisionRef, amount int64) *demarchev1.FundingRequestCall {
		return &demarchev1.FundingRequestCall{CrisisId: crisisID, RequestedBy: "mallory", Decision: r,
			Request: &demarchev1.FundingRequest{RequestId: "FR-1", Fund: fund, AmountUsd: amount, Purpose: "dialogue venue"}}
	}

	// The three calls, for a crisis that does not exist.
	const ghost = "GN-20261207-GHOST"
	err := call(natsrpc.FundingRequest, mallory(ghost, nil, 900_000), &demarchev1.FundingRecord{})
	refused("funding.request naming no decision", "decision-named", err, ghost)
	err = call(natsrpc.FundingRequest, mallory(ghost, ref(ghost, "upd-1"), 900_000), &demarchev1.FundingRecord{})
	refused("funding.request for a crisis that does not exist", "crisis-exists", err, ghost)
	if !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("no crisis: %v, want not found", err)
	}
	err = call(natsrpc.FundingDecide, &demarchev1.FundingDecideCall{CrisisId: ghost, RequestId: "FR-1", Approve: true, DecidedBy: "mallory2", Decision: ref(ghost, "upd-2")}, &demarchev1.FundingRecord{})
	refused("funding.decide for a crisis that does not exist", "crisis-exists", err, ghost)
	err = call(natsrpc.FundingDisburse, &demarchev1.DisburseCall{CrisisId: ghost, RequestId: "FR-1", Key: "ghost-FR-1", Decision: ref(ghost, "upd-2")}, &demarchev1.DisburseResult{})
	refused("funding.disburse for a crisis that does not exist", "crisis-exists", err, ghost)
	err = call(natsrpc.RosterReserve, &demarchev1.ReserveRequest{CrisisId: ghost, Role: "envoy", ExpertId: "env-amara-diallo", ReservedBy: "mallory", Decision: ref(ghost, "upd-3")}, &demarchev1.ReserveResponse{})
	refused("roster.reserve for a crisis that does not exist", "crisis-exists", err, ghost)
	err = call(natsrpc.RosterRelease, &demarchev1.ReleaseRequest{CrisisId: ghost, Role: "envoy", Decision: ref(ghost, "upd-4")}, &demarchev1.ReleaseResponse{})
	refused("roster.release for a crisis that does not exist", "crisis-exists", err, ghost)

	// A real open crisis, with no such decision.
	err = call(natsrpc.FundingRequest, mallory(id, ref(id, "forged-1"), 900_000), &demarchev1.FundingRecord{})
	refused("funding.request for a real crisis without such a decision", "decision-recorded", err, id)
	err = call(natsrpc.FundingDecide, &demarchev1.FundingDecideCall{CrisisId: id, RequestId: "FR-1", Approve: true, DecidedBy: "mallory2", Decision: ref(id, "forged-2")}, &demarchev1.FundingRecord{})
	refused("funding.decide for a real crisis without such a decision", "decision-recorded", err, id)
	err = call(natsrpc.FundingDisburse, &demarchev1.DisburseCall{CrisisId: id, RequestId: "FR-1", Key: "forged-FR-1", Decision: ref(id, "forged-2")}, &demarchev1.DisburseResult{})
	refused("funding.disburse for a real crisis without such a decision", "decision-recorded", err, id)
	err = call(natsrpc.RosterReserve, &demarchev1.ReserveRequest{CrisisId: id, Role: "envoy", ExpertId: "env-amara-diallo", ReservedBy: "mallory", Decision: ref(id, "forged-3")}, &demarchev1.ReserveResponse{})
	refused("roster.reserve for a real crisis without such a decision", "decision-recorded", err, id)
	err = call(natsrpc.RosterRelease, &demarchev1.ReleaseRequest{CrisisId: id, Role: "envoy", Decision: ref(id, "forged-4")}, &demarchev1.ReleaseResponse{})
	refused("roster.release for a real crisis without such a decision", "decision-recorded", err, id)

	// The head appoints the envoy through the gateway: the crisis's decision
	// books her and the standby expert, each booking naming it.
	appointment := decideHTTP(t, duty, id, `{"rationale": "regional standing", "envoyAppointment": {"envoy": "env-amara-diallo", "standbyTeam": ["sb-fatou-sow"]}}`)
	var as demarchev1.AssignmentsResponse
	if err := natsrpc.Call(ctx, reader, natsrpc.RosterAssignments, &demarchev1.AssignmentsRequest{CrisisId: id}, &as); err != nil {
		t.Fatal(err)
	}
	if len(as.GetAssignments()) != 2 || as.GetAssignments()[0].GetDecision().GetDecisionId() != appointment || as.GetAssignments()[1].GetDecision().GetDecisionId() != appointment {
		t.Fatalf("the appointment's bookings %v do not name decision %s", as.GetAssignments(), appointment)
	}
	booked[id] = 2
	attempt(t, authorityWall, "genuine envoy appointment through the gateway", "duty (HTTP)", "booked: envoy and standby-1, each naming decision "+appointment)
	appointed := func(role, expert, by string) *demarchev1.ReserveRequest {
		return &demarchev1.ReserveRequest{CrisisId: id, Role: role, ExpertId: expert, ReservedBy: by, Decision: ref(id, appointment)}
	}
	err = call(natsrpc.RosterReserve, appointed("standby-2", "sb-omar-farouk", "duty"), &demarchev1.ReserveResponse{})
	refused("roster.reserve under the crisis's appointment, a role it does not book", "decision-terms", err, id)
	err = call(natsrpc.RosterReserve, appointed("envoy", "env-nadia-haddad", "duty"), &demarchev1.ReserveResponse{})
	refused("roster.reserve under the crisis's appointment, another expert", `decision-terms: the call says expert_id "env-nadia-haddad"`, err, id)
	err = call(natsrpc.RosterReserve, appointed("envoy", "env-amara-diallo", "mallory"), &demarchev1.ReserveResponse{})
	refused("roster.reserve under the crisis's appointment, reserved_by mallory", `decision-terms: the call says reserved_by "mallory"`, err, id)
	drillBooking := appointed("envoy", "env-amara-diallo", "duty")
	drillBooking.Drill = true
	err = call(natsrpc.RosterReserve, drillBooking, &demarchev1.ReserveResponse{})
	refused("roster.reserve under the crisis's appointment, drill flag set", "drill-flag", err, id)
	err = call(natsrpc.RosterRelease, &demarchev1.ReleaseRequest{CrisisId: id, Role: "envoy", Decision: ref(id, appointment)}, &demarchev1.ReleaseResponse{})
	refused("roster.release of the envoy under her recorded appointment (no closure)", "decision-terms", err, id)
	decideHTTP(t, duty, id, `{"rationale": "team on the ground", "standbyTeamDeployed": {"location": "Conakry"}}`)
	waitPendingHTTP(t, duty, id, "funding-request")

	// The desk files a request through the gateway: a decision of the crisis.
	requestID := decideHTTP(t, duty, id, `{"rationale": "mediation costs", "fundingRequest": {"requestId": "FR-1", "fund": "flexible-financing", "amountUsd": 100000, "purpose": "dialogue venue"}}`)
	waitPendingHTTP(t, duty, id, "funding-decision")
	// Its decision, with the body's terms changed.
	err = call(natsrpc.FundingRequest, mallory(id, ref(id, requestID), 100_000), &demarchev1.FundingRecord{})
	refused("funding.request under the crisis's decision, requested_by mallory", `decision-terms: the call says requested_by "mallory"`, err, id)
	forged := mallory(id, ref(id, requestID), 2_900_000)
	forged.RequestedBy = "duty"
	err = call(natsrpc.FundingRequest, forged, &demarchev1.FundingRecord{})
	refused("funding.request under the crisis's decision, USD 2,900,000", "decision-terms", err, id)
	forged.Request.AmountUsd, forged.Drill = 100_000, true
	err = call(natsrpc.FundingRequest, forged, &demarchev1.FundingRecord{})
	refused("funding.request under the crisis's decision, drill flag set", "drill-flag", err, id)
	err = call(natsrpc.FundingDecide, &demarchev1.FundingDecideCall{CrisisId: id, RequestId: "FR-1", Approve: true, DecidedBy: "mallory2", Decision: ref(id, requestID)}, &demarchev1.FundingRecord{})
	refused("funding.decide under the request's decision (not an approval)", "decision-recorded", err, id)
	err = call(natsrpc.FundingDisburse, &demarchev1.DisburseCall{CrisisId: id, RequestId: "FR-1", Key: "forged-FR-1", Decision: ref(id, requestID)}, &demarchev1.DisburseResult{})
	refused("funding.disburse under the request's decision (not an approval)", "decision-recorded", err, id)
	err = call(natsrpc.RosterRelease, &demarchev1.ReleaseRequest{CrisisId: id, Role: "envoy", Decision: ref(id, requestID)}, &demarchev1.ReleaseResponse{})
	refused("roster.release under a funding decision (not a closure)", "decision-recorded", err, id)

	// The approver approves through the gateway: paid exactly once, the line
	// naming the approval.
	approvalID := decideHTTP(t, approver, id, `{"rationale": "within ceiling", "fundingDecision": {"requestId": "FR-1", "approve": true}}`)
	var lines []*demarchev1.LedgerEntry
	waitUntil(t, "the approved request is paid", func() bool { lines = paidTo(id); return len(lines) > 0 })
	if len(lines) != 1 || lines[0].GetAmountUsd() != 100_000 || lines[0].GetDecision().GetDecisionId() != approvalID || balance() != before-100_000 {
		t.Fatalf("genuine payment: lines %v (want one of USD 100000 naming %s), balance %d (was %d)", lines, approvalID, balance(), before)
	}
	attempt(t, authorityWall, "genuine crisis through the gateway: request by duty, approval by approver", "duty, approver (HTTP)", "paid once: USD 100000, ledger line names decision "+approvalID)
	before = balance()
	afterPaid := func(what, rule string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), rule) {
			t.Fatalf("%s: %v, want a refusal naming %s", what, err, rule)
		}
		if b, l := balance(), paidTo(id); b != before || len(l) != 1 {
			t.Fatalf("%s: balance %d (was %d), %d lines for the crisis", what, b, before, len(l))
		}
		attempt(t, authorityWall, what, "worker (NATS)", "refused: "+err.Error())
	}
	err = call(natsrpc.FundingDecide, &demarchev1.FundingDecideCall{CrisisId: id, RequestId: "FR-1", Approve: true, DecidedBy: "mallory2", Decision: ref(id, approvalID)}, &demarchev1.FundingRecord{})
	afterPaid("funding.decide under the crisis's approval, decided_by mallory2", "decision-terms", err)
	err = call(natsrpc.FundingDisburse, &demarchev1.DisburseCall{CrisisId: id, RequestId: "FR-1", Key: crisis.DisbursementKey(id, "FR-1"), Drill: true, Decision: ref(id, approvalID)}, &demarchev1.DisburseResult{})
	afterPaid("funding.disburse under the crisis's approval, drill flag set", "drill-flag", err)
	err = call(natsrpc.FundingDisburse, &demarchev1.DisburseCall{CrisisId: id, RequestId: "FR-1", Key: "again-FR-1", Decision: ref(id, approvalID)}, &demarchev1.DisburseResult{})
	afterPaid("funding.disburse under the crisis's approval, a second key", `decision-terms: the call says key "again-FR-1"`, err)
	err = call(natsrpc.RosterReserve, &demarchev1.ReserveRequest{CrisisId: id, Role: "envoy", ExpertId: "env-amara-diallo", ReservedBy: "approver", Decision: ref(id, approvalID)}, &demarchev1.ReserveResponse{})
	refused("roster.reserve under a funding approval (not an appointment)", "decision-recorded", err, "none-booked")
	if n := bookings(id); n != booked[id] {
		t.Fatalf("%d bookings for %s, want its appointment's %d", n, id, booked[id])
	}

	// Reconcile: clean for the genuine payment; a forged, perfectly linked
	// ledger line written with the funding identity's own credential is
	// named as a disbursement without decision.
	out, rerr := reconcile(t, s, id)
	if strings.Contains(out, "without decision") || strings.Contains(out, "not exactly one") || !strings.Contains(out, "1 disbursement line(s), 2 booking(s), 1 approval(s)") {
		t.Fatalf("reconcile of the genuine payment: %v\n%s", rerr, out)
	}
	forgeLedgerLine(t, s, ledger(), id)
	out, rerr = reconcile(t, s, id)
	if rerr == nil || !strings.Contains(out+rerr.Error(), "disbursement without decision") || !strings.Contains(out+rerr.Error(), "request FR-FORGED") {
		t.Fatalf("reconcile after a forged ledger line: %v\n%s", rerr, out)
	}
	attempt(t, authorityWall, "a perfectly linked ledger line written on the ledger stream", "funding (NATS)", "detected: audit reconcile reports a disbursement without decision")
}

// decideHTTP takes a decision through the gateway and returns its decision id.
func decideHTTP(t *testing.T, c caller, id, body string) string {
	t.Helper()
	code, out := c.do("POST", "/v1/crises/"+id+"/decisions", body)
	if code != http.StatusOK {
		t.Fatalf("decide %s: %d %s", body, code, out)
	}
	var rec struct {
		DecisionID string `json:"decisionId"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.DecisionID == "" {
		t.Fatalf("decision without id: %v %s", err, out)
	}
	return rec.DecisionID
}

// waitPendingHTTP waits until the crisis waits for a decision of kind.
func waitPendingHTTP(t *testing.T, c caller, id, kind string) {
	t.Helper()
	waitUntil(t, id+" waits for "+kind, func() bool {
		code, out := c.do("GET", "/v1/crises/"+id, "")
		var st struct {
			PendingDecisions []struct{ Kind string } `json:"pendingDecisions"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(out), &st) != nil {
			return false
		}
		for _, p := range st.PendingDecisions {
			if p.Kind == kind {
				return true
			}
		}
		return false
	})
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// reconcile runs `demarche audit reconcile` as the auditor.
func reconcile(t *testing.T, s *stack.Stack, id string) (string, error) {
	t.Helper()
	token, err := os.ReadFile(s.TokenFile("auditor"))
	if err != nil {
		t.Fatal(err)
	}
	root := cli.NewRoot(stack.NewDevCmd)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"audit", "reconcile", "--crisis", id, "--server", s.APIURL(), "--token", strings.TrimSpace(string(token)), "--log-level", "error"})
	err = root.ExecuteContext(context.Background())
	return out.String(), err
}

// forgeLedgerLine appends, with the funding identity's NATS credential, a
// disbursement line to the fund's ledger that links and balances (the
// ledger's own checks pass) but carries out no decision.
func forgeLedgerLine(t *testing.T, s *stack.Stack, lines []*demarchev1.LedgerEntry, crisisID string) {
	t.Helper()
	last := lines[len(lines)-1]
	totals := map[string]int64{}
	for k, v := range last.GetCrisisTotalsUsd() {
		totals[k] = v
	}
	totals[crisisID] += 5_000
	e := &demarchev1.LedgerEntry{Fund: last.GetFund(), Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT, AmountUsd: 5_000,
		BalanceAfterUsd: last.GetBalanceAfterUsd() - 5_000, CrisisId: crisisID, RequestId: "FR-FORGED", Key: "forged-line-1",
		At: timestamppb.Now(), CrisisTotalsUsd: totals, Line: last.GetLine() + 1, PrevHash: last.GetHash()}
	h, err := funding.LineHash(e)
	if err != nil {
		t.Fatal(err)
	}
	e.Hash = h
	b, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	nc := natsAs(t, s, natsauth.Funding)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), "demarche.ledger."+e.GetFund(), b); err != nil {
		t.Fatalf("forge a ledger line as funding: %v", err)
	}
}
