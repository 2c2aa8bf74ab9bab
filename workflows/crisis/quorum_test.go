package crisis

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestFundingQuorum: the funding service answers a filed request with the
// approvals it needs (the fund's quorum rules; the harness's funding service
// asks two above USD 500,000). Below the threshold one approval completes and
// pays; above, an approval that does not complete the quorum is recorded, the
// request stays pending ("1 of 2 approvals") and nothing is decided or paid
// until a second, distinct approver; the same approver twice and the
// requester are refused by rule.
func TestFundingQuorum(t *testing.T) {
	type step struct {
		who    string
		refuse string // the rule that refuses it; "" when recorded
	}
	for _, tc := range []struct {
		name   string
		amount int64
		steps  []step
		// pendingAfterFirst is what the pending decision says after the
		// first recorded approval ("" when the first completes).
		pendingAfterFirst string
		decidedBy         []string
	}{
		{"below the threshold one approval completes", 250_000, []step{{"bob", ""}}, "", []string{"bob"}},
		{"above it two distinct approvers", 600_000, []step{{"bob", ""}, {"carol", ""}}, "1 of 2 approvals", []string{"carol"}},
		{"the same approver twice is refused", 600_000, []step{{"bob", ""}, {"bob", "rule distinct-approvers"}, {"carol", ""}}, "1 of 2 approvals", []string{"carol"}},
		{"the requester never approves", 600_000, []step{{"alice", "rule four-eyes"}, {"bob", ""}, {"alice", "rule four-eyes"}, {"carol", ""}}, "1 of 2 approvals", []string{"carol"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			next, recorded := 0, 0
			var pendingSeen string
			var paidEarly bool
			h.drive(6*time.Hour, func(kind string) bool {
				switch kind {
				case "funding-request":
					r := req("alice", &demarchev1.FundingRequest{RequestId: "FR-1", Fund: "flexible-financing", AmountUsd: tc.amount, Purpose: "mediation"})
					r.Roles = allRoles
					h.decide(r, func(err error) {
						if err != nil {
							t.Errorf("funding-request refused: %v", err)
						}
					})
					return true
				case "funding-decision":
					if next >= len(tc.steps) {
						t.Errorf("still pending after every step")
						return true
					}
					s := tc.steps[next]
					next++
					r := req(s.who, &demarchev1.FundingDecision{RequestId: "FR-1", Approve: true})
					r.Roles = allRoles
					h.decide(r, func(err error) {
						switch {
						case s.refuse == "" && err != nil:
							t.Errorf("step %d: %s's approval refused: %v", next, s.who, err)
						case s.refuse != "" && (err == nil || !strings.Contains(err.Error(), s.refuse)):
							t.Errorf("step %d: %s's approval: %v, want %s", next, s.who, err, s.refuse)
						case err == nil:
							recorded++
						}
					})
					if recorded == 1 && pendingSeen == "" && tc.pendingAfterFirst != "" {
						for _, p := range h.state().GetPendingDecisions() {
							if p.GetKind() == "funding-decision" {
								pendingSeen = p.GetWho()
								if p.GetRequestId() != "FR-1" || p.GetApprovalsRequired() != 2 || len(p.GetApprovers()) != 1 {
									t.Errorf("pending %v: want request FR-1, 1 approver of 2", p)
								}
							}
						}
						paidEarly = len(h.bus.kinds("StageCompleted:rapid-response-funding")) > 0
					}
					return true
				}
				return false
			})
			final := h.run(mustPlaybook(t, "general"), nil)
			if next != len(tc.steps) {
				t.Fatalf("%d of %d steps taken", next, len(tc.steps))
			}
			if tc.pendingAfterFirst != "" && !strings.Contains(pendingSeen, tc.pendingAfterFirst) {
				t.Errorf("pending after the first approval: %q, want it to say %q", pendingSeen, tc.pendingAfterFirst)
			}
			if paidEarly {
				t.Error("the stage completed on an approval that did not complete the quorum")
			}
			if fmt.Sprint(h.bus.decidedBy) != fmt.Sprint(tc.decidedBy) {
				t.Errorf("the funding service heard decide from %v, want %v (only the approval completing the quorum)", h.bus.decidedBy, tc.decidedBy)
			}
			if got := final.GetFigures().GetFundingDisbursedUsd(); got != tc.amount {
				t.Errorf("disbursed %d, want %d", got, tc.amount)
			}
			var approvals []string
			for _, d := range final.GetDecisions() {
				if d.GetKind() == "funding-decision" {
					approvals = append(approvals, d.GetPrincipal())
				}
			}
			want := []string{}
			for _, s := range tc.steps {
				if s.refuse == "" {
					want = append(want, s.who)
				}
			}
			if !slices.Equal(approvals, want) {
				t.Errorf("recorded approvals %v, want %v", approvals, want)
			}
		})
	}
}
