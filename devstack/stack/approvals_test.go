package stack_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestFundingQuorumOnTheStack: the demo funds' quorum rule (data in the
// funds file: above USD 500,000 from the flexible financing mechanism, two
// distinct approvers) holds on the real stack. A USD 600,000 request is
// approved once through the CLI and stays pending, "1 of 2 approvals"; the
// same approver again and the requester are refused by rule without a
// trace in the history; the approval card on the console shows the fund's
// balance, the ceiling left for the crisis, the crisis's severity and
// stage, the requester, the rationale, time waiting and "1 of 2", and the
// button names the action and amount. A second approver completes the
// quorum, and the money is paid once.
func TestFundingQuorumOnTheStack(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	cli := mustCLI(t, s)
	var id string
	waitPending := func(kind string) {
		t.Helper()
		waitFor(t, func() bool {
			st, err := crisis.State(ctx, tc, id)
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
	id = openedID(t, cli("crisis", "open", "--title", "Disputed count in Bamako", "--country", "ML",
		"--type", "constitutional-crisis", "--severity", "4", "--first-signal-at", time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339)))
	waitPending("triage")
	cli("crisis", "decide", "triage", id, "--as", "duty-officer", "--rationale", "credible reports", "--assessment", "results contested")
	waitPending("good-offices")
	cli("crisis", "decide", "request-funds", id, "--as", "alice", "--rationale", "national dialogue venue and travel", "--funding-request", "FR-1",
		"--fund", "flexible-financing", "--amount", "600000", "--purpose", "national dialogue")
	waitPending("funding-decision")

	cli("crisis", "decide", "decide-funds", id, "--as", "bob", "--rationale", "within the ceiling", "--funding-request", "FR-1", "--approve")
	st, err := crisis.State(ctx, tc, id)
	if err != nil {
		t.Fatal(err)
	}
	var quorum string
	for _, p := range st.GetPendingDecisions() {
		if p.GetKind() == "funding-decision" {
			quorum = p.GetWho()
			if p.GetRequestId() != "FR-1" || p.GetApprovalsRequired() != 2 || len(p.GetApprovers()) != 1 || p.GetApprovers()[0] != "bob" {
				t.Fatalf("pending funding-decision %v: want FR-1, approved by bob, 2 required", p)
			}
		}
	}
	if !strings.Contains(quorum, "1 of 2 approvals") {
		t.Fatalf("after one approval of a USD 600000 request the crisis waits for %q, want it to say 1 of 2 approvals", quorum)
	}
	if out := cli("fund", "ledger", "--fund", "flexible-financing"); strings.Contains(out, id) {
		t.Fatalf("paid on one approval of two:\n%s", out)
	}

	before := settledHistoryLength(t, tc, id)
	for _, tc := range []struct{ who, rule string }{{"bob", "rule distinct-approvers"}, {"alice", "rule four-eyes"}} {
		_, err := runCLI(t, s, "crisis", "decide", "decide-funds", id, "--as", tc.who, "--rationale", "again", "--funding-request", "FR-1", "--approve")
		if err == nil || !strings.Contains(err.Error(), tc.rule) || !errors.Is(err, errs.ErrRule) {
			t.Fatalf("%s approving FR-1: %v, want %s", tc.who, err, tc.rule)
		}
	}
	if after := settledHistoryLength(t, tc, id); after != before {
		t.Fatalf("refused approvals changed the history: %d -> %d events", before, after)
	}

	// The card, as a funding officer who has not approved yet, and as bob.
	code, page := consoleGet(t, s.APIURL(), testToken(t, s, "carol"), "/console/approvals")
	if code != http.StatusOK {
		t.Fatalf("approvals page: %d\n%s", code, page)
	}
	for _, want := range []string{`data-request="FR-1"`, "USD 600,000", "requested by <strong>alice</strong>", "national dialogue venue and travel",
		`class="balance">USD 5,000,000`, `class="ceiling-left">USD 1,000,000</span> left for this crisis`, `class="severity">4`, `class="stage">`,
		`class="waiting">`, "1 of 2 approvals (by bob)", "Approve USD 600,000 from flexible financing"} {
		if !strings.Contains(page, want) {
			t.Errorf("the approval card lacks %q:\n%s", want, page)
		}
	}
	if _, bobs := consoleGet(t, s.APIURL(), testToken(t, s, "bob"), "/console/approvals"); !strings.Contains(bobs, "Approved by you") || strings.Contains(bobs, `id="approve-FR-1"`) {
		t.Errorf("bob's card offers him a second approval:\n%s", bobs)
	}

	cli("crisis", "decide", "decide-funds", id, "--as", "carol", "--rationale", "second approval", "--funding-request", "FR-1", "--approve")
	// Paid once, from the fund's ledger (the crisis's figures are its
	// closure's): 5,000,000 - 600,000 left.
	waitFor(t, func() bool {
		out, err := runCLI(t, s, "fund", "ledger", "--fund", "flexible-financing")
		return err == nil && strings.Contains(out, id) && strings.Contains(out, "4400000")
	})
	if _, page := consoleGet(t, s.APIURL(), testToken(t, s, "carol"), "/console/approvals"); strings.Contains(page, `data-request="FR-1"`) {
		t.Errorf("FR-1 is still awaiting a decision after the quorum:\n%s", page)
	}
}
