package app

// Roster ids in decisions. A decision field whose values come from the
// roster (an envoy, a standby team, a fact-finding team) takes roster ids
// only: an id the roster does not know, or an expert of another kind than the
// field asks for, is refused here, in Decide, so the API (and through it the CLI),
// the console and any other client meet the same rule before the crisis
// sees the decision. (The envoy appointment's booking would refuse an
// unknown envoy later, in the roster service; a fact-finding team is never
// booked, so without this rule made-up names went through.)

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// checkRosterIDs refuses a decision naming someone not on the roster in a
// roster field (errs.ErrInvalid, naming the field's path and the id), and
// answers errs.ErrUnavailable when the roster cannot be asked. A gateway
// without NATS (a test's stand-in) checks nothing.
func (a *App) checkRosterIDs(ctx context.Context, req *demarchev1.DecisionRequest) error {
	f := demarchev1.DecisionFormOf(req.DecisionKind())
	if f == nil || a.nc == nil {
		return nil
	}
	type given struct {
		in  *demarchev1.DecisionInput
		ids []string
	}
	var check []given
	for _, in := range f.Inputs {
		if in.Source != demarchev1.DecisionInputSource_DECISION_INPUT_SOURCE_ROSTER {
			continue
		}
		if ids := f.Values(req, in); len(ids) > 0 {
			check = append(check, given{in, ids})
		}
	}
	if len(check) == 0 {
		return nil
	}
	var resp demarchev1.ExpertsResponse
	if err := natsrpc.Call(ctx, a.nc, natsrpc.RosterExperts, &demarchev1.AssignmentsRequest{}, &resp, natsrpc.Timeout(5*time.Second)); err != nil {
		return fmt.Errorf("%w: %s: the roster could not be asked whether the experts named are on it; try again: %v", errs.ErrUnavailable, check[0].in.Path, err)
	}
	experts := map[string]*demarchev1.Expert{}
	for _, e := range resp.GetExperts() {
		experts[e.GetId()] = e
	}
	for _, g := range check {
		want := demarchev1.ExpertKind_EXPERT_KIND_UNSPECIFIED
		if g.in.ExpertKind != "" {
			want, _ = demarchev1.ParseExpertKind(g.in.ExpertKind) // the schema's test checks it parses
		}
		for _, id := range g.ids {
			e, ok := experts[id]
			switch {
			case !ok:
				return fmt.Errorf("%w: %s: %q is not a roster id: pick experts from the roster (their ids, such as %s)", errs.ErrInvalid, g.in.Path, id, rosterExample(resp.GetExperts(), want))
			case want != demarchev1.ExpertKind_EXPERT_KIND_UNSPECIFIED && e.GetKind() != want:
				return fmt.Errorf("%w: %s: %s (%s) is a %s, not a %s", errs.ErrInvalid, g.in.Path, e.GetName(), id, ExpertKindWords(e.GetKind()), ExpertKindWords(want))
			}
		}
	}
	return nil
}

// rosterExample names one roster id of the kind asked for, for the refusal.
func rosterExample(experts []*demarchev1.Expert, kind demarchev1.ExpertKind) string {
	for _, e := range experts {
		if kind == demarchev1.ExpertKind_EXPERT_KIND_UNSPECIFIED || e.GetKind() == kind {
			return e.GetId()
		}
	}
	return "env-…"
}

// ExpertKindWords: EXPERT_KIND_SENIOR_ENVOY -> "senior envoy".
func ExpertKindWords(k demarchev1.ExpertKind) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k.String(), "EXPERT_KIND_"), "_", " "))
}
