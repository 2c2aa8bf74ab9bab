package app

// Search across crises (issue 24 item 6) and lessons across closed crises
// (issue 27 item 8). Visibility answers what its search attributes hold
// (stage, country, region, type, severity, confidentiality, drill, opening
// time); a crisis's title, outcome and lessons are in its state only (the
// title is never stored in clear, docs/security.md), so a search by text or
// outcome, and the lessons, read each candidate's state as Crisis does: only
// crises the principal may see, a restricted or confidential one's read
// recorded in its audit chain first.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// SearchScan bounds how many candidates a search by text or outcome (and
// the lessons) reads: the most recently opened that the other filters
// select. Narrow by country, type or dates to reach older ones.
const SearchScan = 500

// found is a candidate that matched, with the state it was matched on.
type found struct {
	crisis.Summary
	state *demarchev1.CrisisState
}

// find lists the candidates visibility selects for p and keeps those whose
// state matches the text and outcome, newest first, up to q.Limit.
func (a *App) find(ctx context.Context, p *authn.Principal, q ListQuery) ([]found, error) {
	f := q.Filter
	if q.Outcome != demarchev1.Outcome_OUTCOME_UNSPECIFIED {
		switch {
		case f.OpenOnly:
			return nil, &demarchev1.FieldError{Field: "outcome", Reason: "only closed crises have an outcome: leave out open, or the outcome"}
		case f.Stage == demarchev1.Stage_STAGE_UNSPECIFIED:
			f.Stage = demarchev1.Stage_STAGE_CLOSED
		case f.Stage != demarchev1.Stage_STAGE_CLOSED:
			return nil, &demarchev1.FieldError{Field: "outcome", Reason: "only closed crises have an outcome: leave the stage empty or choose closed"}
		}
	}
	rows, err := a.list(ctx, visibleTo(p, f), SearchScan)
	if err != nil {
		return nil, err
	}
	// The audit trail names every read; a caller that did not say which
	// request it serves is named by the use case.
	states, err := a.readAll(ctx, p, rows, cmp.Or(q.Via, "search across crises"))
	if err != nil {
		return nil, err
	}
	text := strings.ToLower(strings.TrimSpace(q.Text))
	var out []found
	for i, st := range states {
		if st == nil {
			continue
		}
		c := st.GetCrisis()
		if text != "" && !strings.Contains(strings.ToLower(c.GetId()), text) && !strings.Contains(strings.ToLower(c.GetTitle()), text) {
			continue
		}
		if q.Outcome != demarchev1.Outcome_OUTCOME_UNSPECIFIED && st.GetOutcome() != q.Outcome {
			continue
		}
		row := rows[i]
		row.Title = c.GetTitle()
		if st.GetOutcome() != demarchev1.Outcome_OUTCOME_UNSPECIFIED {
			row.Outcome = st.GetOutcome().Slug()
		}
		out = append(out, found{Summary: row, state: st})
		if q.Limit > 0 && len(out) >= q.Limit {
			break
		}
	}
	return out, nil
}

// readAll reads each row's state as Crisis does (four at a time). A crisis
// that is not found (or no longer visible) is left out (nil); any other
// error ends the search, an audit trail that cannot record a read among
// them (no record, no read).
func (a *App) readAll(ctx context.Context, p *authn.Principal, rows []crisis.Summary, via string) ([]*demarchev1.CrisisState, error) {
	out := make([]*demarchev1.CrisisState, len(rows))
	errsOf := make([]error, len(rows))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, row := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			st, err := a.Crisis(ctx, p, CrisisQuery{ID: row.CrisisID, Via: via})
			if err != nil && !errors.Is(err, errs.ErrNotFound) {
				errsOf[i] = fmt.Errorf("search: read %s: %w", row.CrisisID, err)
			}
			out[i] = st
		}()
	}
	wg.Wait()
	if err := errors.Join(errsOf...); err != nil {
		return nil, err
	}
	return out, nil
}

// LessonsQuery selects closed crises' lessons; the principal's clearance is
// added by Lessons, as List adds it.
type LessonsQuery struct {
	CrisisType demarchev1.CrisisType
	Region     demarchev1.Region
	Country    string
	Outcome    demarchev1.Outcome
	// Text keeps crises whose lessons, id or title hold it (any case).
	Text string
	// Drills includes drills' lessons (left out by default: a drill's
	// closure is the drill policy's).
	Drills bool
	Limit  int
	// Via names the request for the audit trail, as ListQuery's.
	Via string
}

// Lessons lists the lessons recorded at closure across the closed crises
// the principal may see (List's rule), most recently closed first. Lessons
// are internal: a partner liaison who is nothing else is refused
// (errs.ErrForbidden), whatever the sharing.
func (a *App) Lessons(ctx context.Context, p *authn.Principal, q LessonsQuery) ([]*demarchev1.Lesson, error) {
	if err := a.allow(authz.ReadLessons, p, "lessons"); err != nil {
		return nil, err
	}
	if PartnerOnly(p) {
		return nil, fmt.Errorf("%w: lessons are internal to the operations centre; a partner liaison reads what a crisis shares with its organisation", errs.ErrForbidden)
	}
	f := crisis.Filter{Stage: demarchev1.Stage_STAGE_CLOSED, CrisisType: q.CrisisType, Region: q.Region, Country: q.Country, ExcludeDrills: !q.Drills}
	// Every candidate is read (the lessons are in its state); the text is
	// matched here, against the lessons too.
	rows, err := a.find(ctx, p, ListQuery{Filter: f, Outcome: q.Outcome, Via: cmp.Or(q.Via, "lessons across crises")})
	if err != nil {
		return nil, err
	}
	text := strings.ToLower(strings.TrimSpace(q.Text))
	var out []*demarchev1.Lesson
	for _, r := range rows {
		st := r.state
		if len(st.GetLessons()) == 0 {
			continue
		}
		if text != "" && !strings.Contains(strings.ToLower(strings.Join(append([]string{st.GetCrisis().GetId(), st.GetCrisis().GetTitle()}, st.GetLessons()...), "\n")), text) {
			continue
		}
		c := st.GetCrisis()
		out = append(out, &demarchev1.Lesson{CrisisId: c.GetId(), Title: c.GetTitle(), Country: c.GetCountryCode(), Region: c.GetRegion().Slug(),
			CrisisType: c.GetCrisisType().Slug(), Outcome: r.Outcome, ClosedAt: st.GetClosedAt(), Lessons: st.GetLessons(), Drill: c.GetDrill()})
	}
	slices.SortStableFunc(out, func(x, y *demarchev1.Lesson) int {
		return cmp.Compare(y.GetClosedAt().AsTime().UnixNano(), x.GetClosedAt().AsTime().UnixNano())
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}
