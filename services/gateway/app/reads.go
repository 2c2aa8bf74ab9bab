package app

import (
	"context"
	"fmt"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// CrisisQuery names the crisis a principal reads.
type CrisisQuery struct {
	ID string
	// Via says which request of which transport reads it ("GET
	// /v1/crises/X", "GET /console/crises/X"): the audit trail records it
	// with the read of a restricted or confidential crisis.
	Via string
}

// Crisis is a crisis's state if the principal may see it. A crisis it may
// not see is errs.ErrNotFound, the same answer as for one that does not
// exist. The read of a restricted or confidential crisis is recorded in its
// audit chain first (no record, no read: errs.ErrUnavailable when the audit
// service does not answer). A partner liaison who is nothing else reads the
// partner's view of it (PartnerView: no internal rationale, amounts, roster
// ids or signals), whichever transport asks.
func (a *App) Crisis(ctx context.Context, p *authn.Principal, q CrisisQuery) (*demarchev1.CrisisState, error) {
	st, err := a.crisisState(ctx, q.ID)
	if err != nil {
		return nil, err
	}
	c := st.GetCrisis()
	if !authz.CanSee(p, c.GetConfidentiality(), c.GetSharedWith(), c.GetLeadPresence()) {
		return nil, fmt.Errorf("%w: %s", crisis.ErrNotFound, q.ID)
	}
	if c.GetConfidentiality() != demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC {
		err := natsrpc.Call(ctx, a.nc, natsrpc.AuditRead, &demarchev1.AuditReadRequest{
			Reader: p.Subject, CrisisId: c.GetId(), Detail: q.Via,
		}, &demarchev1.AuditReadResponse{})
		if err != nil {
			return nil, fmt.Errorf("%w: the read of a %s crisis could not be recorded in the audit trail; retry: %v", errs.ErrUnavailable, c.GetConfidentiality().Slug(), err)
		}
	}
	return forPrincipal(st, p), nil
}

// ListQuery selects crises; the principal's clearance (or, for a partner,
// its organisation's sharing) is added by List, never taken from here.
type ListQuery struct {
	Filter crisis.Filter
	Limit  int
	// Text keeps crises whose id or title holds it (any case), and Outcome
	// closed crises with that outcome. Neither is kept where crises are
	// listed from (a title is never stored in clear), so either makes List
	// read each candidate's state as Crisis does (search.go).
	Text    string
	Outcome demarchev1.Outcome
	// Via names the request for the audit trail when the search reads a
	// restricted or confidential crisis ("GET /v1/crises?q=...").
	Via string
}

// List lists the crises the principal may see: those up to its clearance,
// or, for a partner, those shared with its organisation. Others are left out
// of the rows and of the count alike. A text or outcome is matched against
// each candidate's state, read as Crisis reads it (search.go).
func (a *App) List(ctx context.Context, p *authn.Principal, q ListQuery) ([]crisis.Summary, error) {
	if q.Text == "" && q.Outcome == demarchev1.Outcome_OUTCOME_UNSPECIFIED {
		return a.list(ctx, visibleTo(p, q.Filter), q.Limit)
	}
	found, err := a.find(ctx, p, q)
	if err != nil {
		return nil, err
	}
	out := make([]crisis.Summary, len(found))
	for i, f := range found {
		out[i] = f.Summary
	}
	return out, nil
}

// visibleTo is the filter narrowed to what p may see (whatever the filter
// said about it).
func visibleTo(p *authn.Principal, f crisis.Filter) crisis.Filter {
	f.SharedWith, f.Confidentialities, f.LeadPresence = "", nil, ""
	if PartnerOnly(p) {
		f.SharedWith = p.Partner
	} else {
		f.Confidentialities = authz.Clearances(p)
	}
	if authz.FieldOnly(p) {
		f.LeadPresence = p.Presence // a field officer lists its presence's crises
	}
	return f
}

// list asks visibility (or the stand-in) for the rows of a filter already
// narrowed by visibleTo.
func (a *App) list(ctx context.Context, f crisis.Filter, limit int) ([]crisis.Summary, error) {
	if a.listing != nil {
		return a.listing(ctx, f, limit)
	}
	return crisis.List(ctx, a.tc, f, limit)
}

// PartnerOnly reports whether p is a partner liaison who is nothing else:
// such a principal sees crises by sharing, not by clearance.
func PartnerOnly(p *authn.Principal) bool {
	return p.Has(demarchev1.Role_ROLE_PARTNER) && !authz.Allowed(authz.Decide, p.Roles)
}
