package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/claims"
	"github.com/demarche/demarche/workflows/crisis"
)

// Claims of pending decisions (services/gateway/claims): a person holding
// the role a decision waits for says "I am on it"; the others see it until
// its holder releases it or it lapses. Advisory: the decision route never
// reads them.
//
//	GET    /v1/crises/{id}/claims         {"claims": [Claim...], "ttl_seconds": N}
//	POST   /v1/crises/{id}/claims/{kind}  claim (or renew one's own) -> Claim; 403 without the role, 409 held by another
//	DELETE /v1/crises/{id}/claims/{kind}  release one's own -> 204; 403 someone else's

// claimsResponse is GET /v1/crises/{id}/claims's answer.
type claimsResponse struct {
	Claims     []*claims.Claim `json:"claims"`
	TTLSeconds int64           `json:"ttl_seconds"`
}

// claimStore binds to the claims bucket on first use (a gateway made for a
// test without JetStream serves every other route).
func (s *Service) claimStore(ctx context.Context) (*claims.Store, error) {
	s.claimsMu.Lock()
	defer s.claimsMu.Unlock()
	if s.claims != nil {
		return s.claims, nil
	}
	if s.nc == nil {
		return nil, fmt.Errorf("%w: claims: no NATS connection", errs.ErrUnavailable)
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %w", errs.ErrUnavailable, err)
	}
	st, err := claims.Open(ctx, js, s.claimTTL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errs.ErrUnavailable, err)
	}
	s.claims = st
	return st, nil
}

// crisisClaims is the live claims on the pending decisions of a state the
// principal may see (nil and no error when the bucket does not answer: a
// claim is advisory, and a page still shows without it).
func (s *Service) crisisClaims(ctx context.Context, st *demarchev1.CrisisState) map[string]*claims.Claim {
	if len(st.GetPendingDecisions()) == 0 {
		return nil
	}
	cs, err := s.claimStore(ctx)
	if err != nil {
		s.log.Debug("claims unavailable", zap.Error(err))
		return nil
	}
	out, err := cs.OfCrisis(ctx, st)
	if err != nil {
		s.log.Debug("claims unavailable", zap.Error(err))
		return nil
	}
	return out
}

func (s *Service) getClaims(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	st, err := s.visibleState(r, p)
	if err != nil {
		writeError(w, err)
		return
	}
	cs, err := s.claimStore(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	m, err := cs.OfCrisis(r.Context(), st)
	if err != nil {
		writeError(w, err)
		return
	}
	out := claimsResponse{Claims: []*claims.Claim{}, TTLSeconds: int64(cs.TTL() / time.Second)}
	for _, pd := range st.GetPendingDecisions() {
		if c := m[pd.GetKind()]; c != nil {
			out.Claims = append(out.Claims, c)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// claim claims (or renews) the principal's claim: the state is read as the
// principal may see it, so a crisis they may not see is not found, and a
// partner's view, which lists no pending decision, has nothing to claim.
func (s *Service) claim(ctx context.Context, r *http.Request, p *authn.Principal, kind string) (*claims.Claim, error) {
	st, err := s.visibleState(r, p)
	if err != nil {
		return nil, err
	}
	if err := mayClaim(st, kind, p); err != nil {
		return nil, err
	}
	cs, err := s.claimStore(ctx)
	if err != nil {
		return nil, err
	}
	c, err := cs.Claim(ctx, st, kind, p)
	if err != nil {
		return nil, err
	}
	s.log.Info("claimed", zap.String("crisis", c.Crisis), zap.String("kind", kind), zap.String("principal", p.Subject))
	s.claimChanged(c.Crisis)
	return c, nil
}

func (s *Service) release(ctx context.Context, r *http.Request, p *authn.Principal, kind string) error {
	st, err := s.visibleState(r, p)
	if err != nil {
		return err
	}
	if err := mayClaim(st, kind, p); err != nil {
		return err
	}
	cs, err := s.claimStore(ctx)
	if err != nil {
		return err
	}
	id := st.GetCrisis().GetId()
	if err := cs.Release(ctx, id, kind, p); err != nil {
		return err
	}
	s.log.Info("claim released", zap.String("crisis", id), zap.String("kind", kind), zap.String("principal", p.Subject))
	s.claimChanged(id)
	return nil
}

// mayClaim refuses a person without the role first, whether or not the
// decision waits now: the role the pending decision names, or the decision
// table's for a kind not pending (claims.Check then says it does not wait).
func mayClaim(st *demarchev1.CrisisState, kind string, p *authn.Principal) error {
	role, ok := crisis.DecisionRole(kind)
	if pd := claims.Pending(st, kind); pd != nil {
		role, ok = pd.GetRole(), true
	}
	if ok && !p.Has(role) {
		return fmt.Errorf("%w: only a %s may claim or release the %s decision", errs.ErrForbidden, role.Slug(), kind)
	}
	return nil
}

func (s *Service) postClaim(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	c, err := s.claim(r.Context(), r, p, r.PathValue("kind"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Service) deleteClaim(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	if err := s.release(r.Context(), r, p, r.PathValue("kind")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ClaimsSubject carries a crisis's claim changes between gateways and to
// their consoles' live updates (core NATS, the crisis id as the last token;
// no content: a console reads the claims again, as its principal may).
const ClaimsSubject = "demarche.claims"

// claimChanged tells the consoles watching the crisis that its claims
// changed.
func (s *Service) claimChanged(id string) {
	if s.nc == nil {
		return
	}
	if err := s.nc.Publish(ClaimsSubject+"."+id, nil); err != nil {
		s.log.Debug("claim change not announced", zap.Error(err)) // a console sees it on its next reload
	}
}

// withClaims marks the pending decisions others (or the user) claimed.
func (c *console) withClaims(r *http.Request, st *demarchev1.CrisisState, pend []pendingView, u *user) []pendingView {
	cl := c.s.crisisClaims(r.Context(), st)
	for i := range pend {
		if cm := cl[pend[i].Kind]; cm != nil {
			pend[i].Claim, pend[i].ClaimMine = cm, cm.Holder == u.Subject
			pend[i].ClaimAgo = humanDuration(time.Since(cm.At).Truncate(time.Second))
		}
	}
	return pend
}

// claim is the console's claim and release buttons: op "claim" or
// "release" of the pending decision of kind "pending".
func (c *console) claim(w http.ResponseWriter, r *http.Request, u *user) {
	// "pending", not "kind": the page's decision forms are found by their kind
	kind, op := r.PostFormValue("pending"), r.PostFormValue("op")
	page := "/console/crises/" + url.PathEscape(r.PathValue("id"))
	var err error
	switch op {
	case "claim":
		_, err = c.s.claim(r.Context(), r, u.Principal, kind)
	case "release":
		err = c.s.release(r.Context(), r, u.Principal, kind)
	default:
		err = fmt.Errorf("%w: op: %q is neither claim nor release", errs.ErrInvalid, op)
	}
	if err != nil {
		_, msg := refusal(err)
		what := "Not claimed: "
		if op == "release" {
			what = "Not released: "
		}
		c.refused(w, r, u, page, "claim-"+kind, "", what+msg)
		return
	}
	http.Redirect(w, r, page+"?done="+url.QueryEscape(op)+"#pending", http.StatusSeeOther)
}
