package crisis

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authz"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Sharing changes during a crisis: partners are added and removed, a change
// that changes nothing is refused with its rule, and each change publishes
// SharingChanged (what the partners service and the audit chain act on).
func TestSharingChangesDuringACrisis(t *testing.T) {
	h := newHarness(t)
	var refusals []string
	refused := func(err error) { refusals = append(refusals, fmt.Sprint(err)) }
	var mid *demarchev1.CrisisState
	done := false
	h.drive(6*time.Hour, func(kind string) bool {
		if kind != "good-offices" || done {
			return false
		}
		done = true
		share := func(add, remove []string) *demarchev1.SharingControl {
			return &demarchev1.SharingControl{Principal: "alice", Roles: dutyRoles, Reason: "who leads changed", Share: add, Unshare: remove}
		}
		h.mustControl(UpdateShare, share([]string{"ECOWAS", "AU"}, nil))
		h.control(UpdateShare, share([]string{"AU"}, nil), refused)
		h.control(UpdateShare, share(nil, []string{"EU"}), refused)
		h.control(UpdateShare, share([]string{"EU", "EU"}, nil), refused)
		h.control(UpdateShare, share(nil, nil), refused)
		h.control(UpdateShare, &demarchev1.SharingControl{Principal: "carl", Roles: []demarchev1.Role{demarchev1.Role_ROLE_ANALYST}, Reason: "x", Share: []string{"EU"}}, refused)
		h.mustControl(UpdateShare, share([]string{"EU"}, []string{"ECOWAS"}))
		h.at(time.Minute, func() { mid = h.state() })
		return true
	})
	h.run(mustPlaybook(t, "general"), nil)
	want := []string{
		"rule share-new: the crisis is shared with AU already",
		"rule unshare-shared: the crisis is not shared with EU (shared with: ECOWAS, AU)",
		"share[1]: EU is named twice (also in share[0])",
		"share: name at least one partner organisation",
		"rule role: crisis.share is for a duty-officer, admin; carl holds analyst",
	}
	if len(refusals) != len(want) {
		t.Fatalf("refusals %v, want %d", refusals, len(want))
	}
	for i, w := range want {
		if !strings.Contains(refusals[i], w) {
			t.Errorf("refusal %d: %q does not say %q", i, refusals[i], w)
		}
	}
	if mid == nil || !slices.Equal(mid.GetCrisis().GetSharedWith(), []string{"AU", "EU"}) {
		t.Fatalf("shared with %v, want [AU EU]", mid.GetCrisis().GetSharedWith())
	}
	if n := len(h.bus.kinds("SharingChanged")); n != 2 {
		t.Fatalf("%d SharingChanged published, want 2 (refusals publish nothing)", n)
	}
}

// Comments: kept in the state in their order, each published as
// CommentAdded (for the audit chain); an empty one, or one by a role the
// policy does not let comment (a partner liaison, an auditor), is refused
// with nothing kept or published.
func TestCommentsOnTheTimeline(t *testing.T) {
	h := newHarness(t)
	var refusals []string
	refused := func(err error) { refusals = append(refusals, fmt.Sprint(err)) }
	var mid *demarchev1.CrisisState
	done := false
	h.drive(6*time.Hour, func(kind string) bool {
		if kind != "good-offices" || done {
			return false
		}
		done = true
		h.mustControl(UpdateComment, &demarchev1.CommentControl{Principal: "alice", Roles: dutyRoles, Text: "Called the ECOWAS desk."})
		h.control(UpdateComment, &demarchev1.CommentControl{Principal: "alice", Roles: dutyRoles, Text: "  "}, refused)
		h.control(UpdateComment, &demarchev1.CommentControl{Principal: "pat", Roles: []demarchev1.Role{demarchev1.Role_ROLE_PARTNER}, Text: "hello"}, refused)
		h.control(UpdateComment, &demarchev1.CommentControl{Principal: "aud", Roles: []demarchev1.Role{demarchev1.Role_ROLE_AUDITOR}, Text: "hello"}, refused)
		h.mustControl(UpdateComment, &demarchev1.CommentControl{Principal: "carl", Roles: []demarchev1.Role{demarchev1.Role_ROLE_ANALYST}, Text: "Signals quieter since Monday."})
		h.at(time.Minute, func() { mid = h.state() })
		return true
	})
	h.run(mustPlaybook(t, "general"), nil)
	want := []string{"text: is required", "rule role: crisis.comment is for a", "rule role: crisis.comment is for a"}
	if len(refusals) != len(want) {
		t.Fatalf("refusals %v, want %d", refusals, len(want))
	}
	for i, w := range want {
		if !strings.Contains(refusals[i], w) {
			t.Errorf("refusal %d: %q does not say %q", i, refusals[i], w)
		}
	}
	cs := mid.GetComments()
	if len(cs) != 2 || cs[0].GetPrincipal() != "alice" || cs[0].GetText() != "Called the ECOWAS desk." || cs[1].GetPrincipal() != "carl" || cs[0].GetAt() == nil {
		t.Fatalf("comments %v", cs)
	}
	if n := len(h.bus.kinds("CommentAdded")); n != 2 {
		t.Fatalf("%d CommentAdded published, want 2 (refusals publish nothing)", n)
	}
}

// The workflow checks the role of every control again (defence in depth):
// each control against each role, as a direct update that never went
// through the gateway. A role the policy table allows is never refused for
// its role (it may be for another rule); any other is refused with rule role.
func TestControlRoleMatrix(t *testing.T) {
	controls := map[string]func(demarchev1.Role) any{
		UpdateEscalate: func(r demarchev1.Role) any {
			return &demarchev1.SeverityControl{Principal: "p", Roles: []demarchev1.Role{r}, Reason: "x"}
		},
		UpdateDeEscalate: func(r demarchev1.Role) any {
			return &demarchev1.SeverityControl{Principal: "p", Roles: []demarchev1.Role{r}, Reason: "x"}
		},
		UpdateSkipStage: func(r demarchev1.Role) any {
			return &demarchev1.StageControl{Principal: "p", Roles: []demarchev1.Role{r}, Reason: "x", Stage: demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP}
		},
		UpdateReopenStage: func(r demarchev1.Role) any {
			return &demarchev1.StageControl{Principal: "p", Roles: []demarchev1.Role{r}, Reason: "x", Stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT}
		},
		UpdatePartnerRole: func(r demarchev1.Role) any {
			return &demarchev1.PartnerRoleAck{Principal: "p", Roles: []demarchev1.Role{r}, Partner: "AU", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_SUPPORT}
		},
		UpdateWarn: func(r demarchev1.Role) any {
			return &demarchev1.WarnControl{Principal: "p", Roles: []demarchev1.Role{r}, Warning: &demarchev1.Warning{Source: "x", Summary: "x", Severity: 2, ObservedAt: timestamppb.New(t0)}}
		},
		UpdateShare: func(r demarchev1.Role) any {
			return &demarchev1.SharingControl{Principal: "p", Roles: []demarchev1.Role{r}, Reason: "x", Unshare: []string{"NOBODY"}}
		},
		UpdateComment: func(r demarchev1.Role) any {
			return &demarchev1.CommentControl{Principal: "p", Roles: []demarchev1.Role{r}, Text: "x"}
		},
	}
	var names []string
	for n := range controls {
		names = append(names, n)
	}
	slices.Sort(names)
	var roles []demarchev1.Role
	for n := range demarchev1.Role_name {
		if n != 0 {
			roles = append(roles, demarchev1.Role(n))
		}
	}
	slices.Sort(roles)
	h := newHarness(t)
	type result struct {
		control string
		role    demarchev1.Role
		err     error
	}
	var results []result
	sent := false
	h.drive(6*time.Hour, func(kind string) bool {
		if kind != "good-offices" || sent {
			return false
		}
		sent = true
		for _, n := range names {
			for _, r := range roles {
				n, r := n, r
				h.control(n, controls[n](r), func(err error) { results = append(results, result{n, r, err}) })
			}
		}
		return true
	})
	h.run(mustPlaybook(t, "general"), nil)
	if len(results) != len(names)*len(roles) {
		t.Fatalf("%d answers, want %d", len(results), len(names)*len(roles))
	}
	for _, res := range results {
		byRole := res.err != nil && strings.Contains(res.err.Error(), "rule role:")
		if allowed := authz.Allowed(authz.Action(res.control), []demarchev1.Role{res.role}); allowed == byRole {
			t.Errorf("%s by a %s: %v (the policy allows it: %v)", res.control, res.role.Slug(), res.err, allowed)
		}
	}
}
