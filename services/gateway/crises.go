package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
)

func (s *Service) whoami(w http.ResponseWriter, _ *http.Request, p *authn.Principal) {
	writeProto(w, http.StatusOK, &demarchev1.Principal{Subject: p.Subject, Name: p.Name, Roles: p.Roles, Clearance: p.Clearance, Partner: p.Partner, Presence: p.Presence})
}

// postSignals takes a person's signals: each is stamped with the
// principal's source (demarchev1.PersonSource: person_<subject>; a partner
// liaison's too, the person who sent it), and a body that claims another
// source is refused whole, 403 naming the rule, before anything is recorded.
// A source's own system publishes on demarche.signals.<source> with its own
// NATS credential; early warning takes only persons' signals from here.
func (s *Service) postSignals(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	var req demarchev1.IngestRequest
	if !readBody(w, r, &req) {
		return
	}
	if req.GetExercise() != nil {
		writeError(w, &demarchev1.FieldError{Field: "exercise", Reason: "an exercise's signals go to POST /v1/exercises/{id}/signals (drill coordinators)"})
		return
	}
	if err := stampSignals(req.GetSignals(), p); err != nil {
		writeError(w, err)
		return
	}
	var resp demarchev1.IngestResponse
	if err := natsrpc.Call(r.Context(), s.nc, natsrpc.EarlyWarningIngest, &req, &resp); err != nil {
		writeError(w, err)
		return
	}
	if err := s.cutToReadable(r, p, &resp); err != nil { // the crises it touched, as the sender may see them
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, &resp)
}

// rulesTimeout bounds an apply (earlywarning.RequestTimeout).
const rulesTimeout = 2 * time.Minute

// postRules puts a rules file into force (early warning validates it; a
// refused file changes nothing), as the principal: applied_by is the
// credential's subject, and a body naming anyone else is refused.
func (s *Service) postRules(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	var req demarchev1.ApplyRulesRequest
	if !readBody(w, r, &req) {
		return
	}
	if by := req.GetAppliedBy(); by != "" && by != p.Subject {
		writeError(w, &demarchev1.FieldError{Field: "applied_by", Reason: fmt.Sprintf("%q is not you: rules are applied as the caller's credential (%s); leave it empty", truncate(by, 40), p.Subject)})
		return
	}
	req.AppliedBy = p.Subject
	// Re-scoring every situation takes longer than a read: early warning's
	// own request timeout, not the default call's.
	ctx, cancel := context.WithTimeout(r.Context(), rulesTimeout)
	defer cancel()
	var resp demarchev1.RulesChanged
	if err := natsrpc.Call(ctx, s.nc, natsrpc.EarlyWarningRules, &req, &resp); err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, &resp)
}

// getRules answers the early-warning rules in force.
func (s *Service) getRules(w http.ResponseWriter, r *http.Request, _ *authn.Principal) {
	var resp demarchev1.ActiveRules
	if err := natsrpc.Call(r.Context(), s.nc, natsrpc.EarlyWarningActiveRules, &demarchev1.ActiveRulesRequest{}, &resp); err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, &resp)
}

// stampSignals sets each signal's source to the principal's, refusing a
// signal that names another.
func stampSignals(signals []*demarchev1.Signal, p *authn.Principal) error {
	for i, sig := range signals {
		if err := app.StampSource(fmt.Sprintf("signals[%d].source", i), &sig.Source, p); err != nil {
			return err
		}
	}
	return nil
}

// postExerciseSignals sends an exercise's signals: scored apart from live
// ones, raising drill crises with the request's drill settings.
func (s *Service) postExerciseSignals(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	var req demarchev1.IngestRequest
	if !readBody(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	switch ex := req.GetExercise(); {
	case ex == nil:
		writeError(w, &demarchev1.FieldError{Field: "exercise", Reason: "is required (id, drill: decision_delay, time_scale)"})
		return
	case ex.GetId() != "" && ex.GetId() != id:
		writeError(w, &demarchev1.FieldError{Field: "exercise.id", Reason: fmt.Sprintf("%q differs from the path's %q", truncate(ex.GetId(), 40), truncate(id, 40))})
		return
	default:
		ex.Id = id
	}
	if err := req.Validate(); err != nil {
		writeError(w, err)
		return
	}
	var resp demarchev1.IngestResponse
	if err := natsrpc.Call(r.Context(), s.nc, natsrpc.EarlyWarningIngest, &req, &resp); err != nil {
		writeError(w, err)
		return
	}
	if err := s.cutToReadable(r, p, &resp); err != nil { // the crises it touched, as the sender may see them
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, &resp)
}

// getScoreHistory answers a situation's score over time (oldest first) with
// its current score, without the contributing signals.
func (s *Service) getScoreHistory(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	resp, err := s.score(r, p)
	if err != nil {
		writeError(w, err)
		return
	}
	resp.Contributions = nil
	writeProto(w, http.StatusOK, resp)
}

// score asks early warning for the situation of the path; the crises it
// names are cut to those p may see (a situation's episodes can be
// restricted or confidential crises), and their reads recorded.
func (s *Service) score(r *http.Request, p *authn.Principal) (*demarchev1.ScoreResponse, error) {
	country, err := countryParam(r.PathValue("country"))
	if err != nil {
		return nil, err
	}
	t, err := demarchev1.ParseCrisisType(r.PathValue("type"))
	if err != nil {
		return nil, err
	}
	var resp demarchev1.ScoreResponse
	if err := natsrpc.Call(r.Context(), s.nc, natsrpc.EarlyWarningScore, &demarchev1.ScoreRequest{CountryCode: country, CrisisType: t}, &resp); err != nil {
		return nil, err
	}
	if err := s.cutToReadable(r, p, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (s *Service) getScore(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	resp, err := s.score(r, p)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, resp)
}

// countryParam is an ISO country code from a path or query ("" stays "").
func countryParam(v string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(v))
	if _, ok := demarchev1.RegionOf(c); c != "" && !ok {
		return "", &demarchev1.FieldError{Field: "country", Reason: fmt.Sprintf("%q is not an ISO 3166-1 alpha-2 country code (e.g. GN, ML, UA)", truncate(v, 20))}
	}
	return c, nil
}

// postCrisis opens a crisis (app.OpenCrisis): 201 with its state, or 202
// with the crisis as opened when its workflow has not answered yet.
func (s *Service) postCrisis(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	var req demarchev1.OpenCrisisRequest
	if !readBody(w, r, &req) {
		return
	}
	opened, err := s.app.OpenCrisis(r.Context(), p, &req)
	if err != nil {
		writeError(w, err)
		return
	}
	if !opened.Settled {
		writeProto(w, http.StatusAccepted, opened.State)
		return
	}
	writeProto(w, http.StatusCreated, opened.State)
}

// listCrises lists what the principal may see: crises up to its clearance,
// or, for a partner, those shared with its organisation. Others are left out
// of the rows and of the count alike. The query string filters (searchParams).
func (s *Service) listCrises(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	q, err := parseSearch(r.URL.Query()) // search.go: every filter, one parser for the API and the console
	if err != nil {
		writeError(w, err)
		return
	}
	q.Via = via(r)
	rows, err := s.app.List(r.Context(), p, q)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, summaries(rows))
}

func (s *Service) getCrisis(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	st, err := s.visibleState(r, p)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, st)
}

// visibleState is the state of the crisis of the path if the principal may
// see it (app.Crisis: the read of a restricted crisis recorded as this
// request's).
func (s *Service) visibleState(r *http.Request, p *authn.Principal) (*demarchev1.CrisisState, error) {
	return s.app.Crisis(r.Context(), p, app.CrisisQuery{ID: r.PathValue("id"), Via: via(r)})
}

// via names a request for the audit trail: "POST /v1/crises/X/decisions".
func via(r *http.Request) string { return r.Method + " " + r.URL.Path }

// update is what a decision or control request names besides its body: the
// crisis of the path, the Idempotency-Key, the request. A usable key is
// answered in the X-Request-Id header (a new UUID v7 when the request has
// none), so a client can retry the same request; an unusable one is left
// to the application layer to refuse, in its turn.
func update(w http.ResponseWriter, r *http.Request) app.Update {
	key := r.Header.Get("Idempotency-Key")
	if k, err := app.Key(key); err == nil {
		key = k
		w.Header().Set("X-Request-Id", key)
	}
	return app.Update{CrisisID: r.PathValue("id"), Key: key, Via: via(r)}
}

func (s *Service) postDecision(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	var req demarchev1.DecisionRequest
	if !readBody(w, r, &req) {
		return
	}
	rec, err := s.app.Decide(r.Context(), p, update(w, r), &req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, rec)
}

// postControl applies an operator control: POST .../controls/escalate is
// the update crisis.escalate and the action of the same name; the body is
// the control's message (app.ControlArg).
func (s *Service) postControl(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	name := r.PathValue("control")
	arg, err := s.app.ControlArg(p, name)
	if err != nil {
		writeError(w, err)
		return
	}
	if !readBody(w, r, arg) {
		return
	}
	st, err := s.app.Control(r.Context(), p, update(w, r), name, arg)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, st)
}

// postSharing changes which partner organisations a crisis is shared with
// (app.Share), answering the crisis's state after the change.
func (s *Service) postSharing(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	var arg demarchev1.SharingControl
	if !readBody(w, r, &arg) {
		return
	}
	st, err := s.app.Share(r.Context(), p, update(w, r), &arg)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, st)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
