package app

// One timeline per crisis (issue 24, item 7): signals attached, decisions
// (and refusals), controls, sharing changes, deadline events, stages,
// money and comments in one feed, rebuilt from the crisis's workflow
// histories by the auditors' own trail (workflows/trail), so the feed and
// the decision trail never disagree. The report is that feed with the
// crisis, its figures and its lessons, for the hand-over to headquarters or
// a partner.
//
// Confidentiality: the report is read like the crisis page. Crisis decides
// whether p may see it at all (and records the read of a restricted or
// confidential one); a partner liaison who is nothing else gets the
// partner's view (PartnerView) and a timeline built from that view alone
// (stages entered and ended, its own organisation's role, the closure):
// never a history, a rationale, an amount, a principal or a comment.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/demarche/demarche/pkg/authn"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/trail"
)

// TimelineEntry is one line of a crisis's timeline: a line of the decision
// trail (its Kind: started, stage, signal, decision, refused, control,
// sharing, comment, deadline, money, closed, outside).
type TimelineEntry = trail.Entry

// Report is a crisis as p may read it, with its timeline, oldest first.
type Report struct {
	State    *demarchev1.CrisisState
	Timeline []TimelineEntry
	// PartnerView: the state and timeline are the partner's view.
	PartnerView bool
	GeneratedAt time.Time
	GeneratedBy string
}

// CrisisReport is a crisis's report as p may read it (errors as Crisis's).
func (a *App) CrisisReport(ctx context.Context, p *authn.Principal, q CrisisQuery) (*Report, error) {
	st, err := a.Crisis(ctx, p, q)
	if err != nil {
		return nil, err
	}
	rep := &Report{State: st, PartnerView: PartnerOnly(p), GeneratedAt: time.Now().UTC(), GeneratedBy: p.Subject}
	if rep.PartnerView || a.tc == nil {
		// A partner's timeline comes from its view, never from a history;
		// without Temporal (a test's stand-in states) so does everyone's.
		rep.Timeline = timelineOfState(st)
		return rep, nil
	}
	hs, err := trail.FetchHistories(ctx, a.tc, q.ID)
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		es, err := trail.FromHistory(h.WorkflowID, h.History)
		if err != nil {
			return nil, fmt.Errorf("timeline of %s: %w", q.ID, err)
		}
		rep.Timeline = append(rep.Timeline, es...)
	}
	// One feed: the crisis's and its stages' workflows interleaved by time
	// (stable: each workflow's own order kept for entries of one instant).
	slices.SortStableFunc(rep.Timeline, func(x, y TimelineEntry) int { return x.Time.Compare(y.Time) })
	return rep, nil
}

// timelineOfState is the timeline a state alone gives: opening, stages
// entered and ended, partners' roles, comments, closure. Built from a
// partner's view it holds nothing that view does not.
func timelineOfState(st *demarchev1.CrisisState) []TimelineEntry {
	var out []TimelineEntry
	c := st.GetCrisis()
	if t := c.GetOpenedAt(); t != nil {
		out = append(out, TimelineEntry{Time: t.AsTime(), Kind: "started", What: fmt.Sprintf("crisis %s opened: %q (%s, %s, severity %d)",
			c.GetId(), c.GetTitle(), c.GetCountryCode(), c.GetCrisisType().Slug(), c.GetSeverity())})
	}
	for _, s := range st.GetTimeline() {
		if t := s.GetEnteredAt(); t != nil {
			out = append(out, TimelineEntry{Time: t.AsTime(), Kind: "stage", What: "entered " + s.GetStage().Slug()})
		}
		if t := s.GetCompletedAt(); t != nil {
			out = append(out, TimelineEntry{Time: t.AsTime(), Kind: "stage", What: fmt.Sprintf("%s %s", s.GetStage().Slug(), s.GetStatus().Slug())})
		}
	}
	for _, p := range st.GetPartners() {
		if t := p.GetAcknowledgedAt(); t != nil {
			out = append(out, TimelineEntry{Time: t.AsTime(), Kind: "control", What: fmt.Sprintf("%s takes the role %s", p.GetPartner(), p.GetRole().Slug())})
		}
	}
	for _, cm := range st.GetComments() { // none in a partner's view
		out = append(out, TimelineEntry{Time: cm.GetAt().AsTime(), Kind: "comment", What: cm.GetText(), Principal: cm.GetPrincipal()})
	}
	if t := st.GetClosedAt(); t != nil {
		out = append(out, TimelineEntry{Time: t.AsTime(), Kind: "closed", What: "closed, outcome " + st.GetOutcome().Slug()})
	}
	slices.SortStableFunc(out, func(x, y TimelineEntry) int { return x.Time.Compare(y.Time) })
	return out
}
