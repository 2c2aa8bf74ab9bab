package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/ids"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/playbook"
)

func (s *Service) whoami(w http.ResponseWriter, _ *http.Request, p *authn.Principal) {
	writeProto(w, http.StatusOK, &demarchev1.Principal{Subject: p.Subject, Name: p.Name, Roles: p.Roles, Clearance: p.Clearance, Partner: p.Partner})
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

// stampSignals sets each signal's source to the principal's, refusing a
// signal that names another.
func stampSignals(signals []*demarchev1.Signal, p *authn.Principal) error {
	for i, sig := range signals {
		if err := stampSource(fmt.Sprintf("signals[%d].source", i), &sig.Source, p); err != nil {
			return err
		}
	}
	return nil
}

// stampSource sets a source to the principal's (demarchev1.PersonSource),
// refusing (403, naming the rule) one that names another.
func stampSource(field string, source *string, p *authn.Principal) error {
	own := demarchev1.PersonSource(p.Subject)
	switch claimed := *source; claimed {
	case "":
		*source = own
	case own:
	default:
		return &errs.Error{Sentinel: errs.ErrForbidden, Msg: fmt.Sprintf(
			"%s: %q refused: a signal's source is who sends it, never its body: yours is %q (leave source out, or send that); a source's own system publishes on demarche.signals.<source> with its own credential",
			field, truncate(claimed, 40), own)}
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

// postCrisis opens a crisis. The playbook comes from the registry (by type,
// or by name for a head of department), a drill needs the drill-coordinator
// role, and the opener is the authenticated principal.
func (s *Service) postCrisis(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	var req demarchev1.OpenCrisisRequest
	if !readBody(w, r, &req) {
		return
	}
	c := req.GetCrisis()
	drill := req.GetDrill() != nil || c.GetDrill()
	action := authz.OpenCrisis
	if drill {
		action = authz.OpenDrill
	}
	if err := authz.Check(action, p); err != nil {
		writeError(w, err)
		return
	}
	if c == nil {
		writeError(w, &demarchev1.ValidationError{Message: "crisis", Fields: []*demarchev1.FieldError{{Field: "crisis", Reason: "is required"}}})
		return
	}
	if c.GetOpenedBy() != "" && c.GetOpenedBy() != p.Subject {
		writeError(w, &demarchev1.FieldError{Field: "crisis.opened_by", Reason: "comes from your credential; leave it empty"})
		return
	}
	if drill && req.GetDrill() == nil {
		writeError(w, &demarchev1.FieldError{Field: "drill", Reason: "is required for a drill (decision_delay, time_scale)"})
		return
	}
	if err := s.checkPartners(r.Context(), c.GetSharedWith()); err != nil {
		writeError(w, err)
		return
	}
	// Crisis ids are the platform's: a real crisis's is minted here; a
	// drill may be given a name, and its id is then the drill form
	// DRILL-<opener's tag>-<name>, which no real id can take and which
	// lives in the opener's own namespace (so no answer here can tell
	// whether a crisis someone else opened exists).
	chosen := strings.TrimSpace(c.GetId())
	id := ""
	if chosen != "" {
		if !drill {
			writeError(w, &demarchev1.FieldError{Field: "crisis.id", Reason: "is minted by the platform for a real crisis (e.g. GN-20261127-K7Q3P): leave it empty; a chosen name is for drills only (their ids are " + crisis.DrillIDPrefix + "<your tag>-<name>)"})
			return
		}
		var err error
		if id, err = crisis.DrillID(p.Subject, chosen); err != nil {
			writeError(w, &demarchev1.FieldError{Field: "crisis.id", Reason: err.Error()})
			return
		}
	}
	params := crisis.NewCrisisParams{
		ID: id, Title: c.GetTitle(), CountryCode: c.GetCountryCode(), CrisisType: c.GetCrisisType(),
		Severity: c.GetSeverity(), Confidentiality: c.GetConfidentiality(), OpenedBy: p.Subject,
		Drill: drill, SharedWith: c.GetSharedWith(),
	}
	if c.FirstSignalAt != nil {
		params.FirstSignalAt = c.GetFirstSignalAt().AsTime()
	}
	req.Crisis = crisis.NewCrisis(params, time.Now())
	if err := req.Validate(); err != nil {
		writeError(w, err)
		return
	}
	if !authz.CanSee(p, req.Crisis.GetConfidentiality(), req.Crisis.GetSharedWith()) {
		writeError(w, fmt.Errorf("%w: your clearance (%s) does not cover a %s crisis", errs.ErrForbidden, p.Clearance.Slug(), req.Crisis.GetConfidentiality().Slug()))
		return
	}
	in := &demarchev1.CrisisWorkflowInput{Crisis: req.Crisis}
	var err error
	if name := req.GetPlaybook(); name != "" {
		if err := authz.Check(authz.ChoosePlaybook, p); err != nil {
			writeError(w, err)
			return
		}
		if in.Playbook, err = playbook.Get(name); err != nil {
			writeError(w, &demarchev1.FieldError{Field: "playbook", Reason: err.Error()})
			return
		}
	}
	if d := req.GetDrill(); d != nil {
		in.DrillPolicy = &demarchev1.DrillPolicy{StageDuration: d.GetDecisionDelay(), TimeScale: d.GetTimeScale()}
	}
	for attempt := 1; ; attempt++ {
		_, err := crisis.Open(r.Context(), s.tc, in)
		if errors.Is(err, crisis.ErrAlreadyOpen) && id == "" && attempt < 3 {
			// A minted id met one minted before (five random characters
			// per country and day): mint another.
			in.Crisis.Id = crisis.NewCrisisID(in.GetCrisis().GetCountryCode(), time.Now())
			continue
		}
		if errors.Is(err, crisis.ErrAlreadyOpen) {
			// The same answer whoever holds the id, open or closed,
			// visible to the caller or not: an id names one crisis, ever.
			err = fmt.Errorf("%w: crisis id %s is taken (ids are never reused, a closed crisis's included); choose another name", errs.ErrConflict, in.GetCrisis().GetId())
		}
		if err != nil {
			writeError(w, err)
			return
		}
		break
	}
	st, err := s.waitState(r.Context(), in.GetCrisis().GetId())
	if err != nil {
		writeProto(w, http.StatusAccepted, &demarchev1.CrisisState{Crisis: in.GetCrisis()})
		return
	}
	writeProto(w, http.StatusCreated, st)
}

// checkPartners refuses a sharing list naming an organisation the registry
// does not know.
func (s *Service) checkPartners(ctx context.Context, shared []string) error {
	return s.checkPartnerNames(ctx, "crisis.shared_with", shared)
}

// checkPartnerNames refuses a list (the field named field) naming an
// organisation the partners registry does not know.
func (s *Service) checkPartnerNames(ctx context.Context, field string, shared []string) error {
	if len(shared) == 0 {
		return nil
	}
	var reg demarchev1.ListPartnersResponse
	if err := natsrpc.Call(ctx, s.nc, natsrpc.PartnersList, &demarchev1.ListPartnersRequest{}, &reg); err != nil {
		return err
	}
	var known []string
	for _, pi := range reg.GetPartners() {
		known = append(known, pi.GetName())
	}
	for i, name := range shared {
		if !slices.Contains(known, name) {
			return &demarchev1.FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: fmt.Sprintf("%q is not a registered partner (known: %s)", truncate(name, 40), strings.Join(known, ", "))}
		}
	}
	return nil
}

// waitState asks a just-started crisis for its state, briefly.
func (s *Service) waitState(ctx context.Context, id string) (*demarchev1.CrisisState, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		st, err := s.crisisState(ctx, id)
		if err == nil {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// listCrises lists what the principal may see: crises up to its clearance,
// or, for a partner, those shared with its organisation. Others are left out
// of the rows and of the count alike.
func (s *Service) listCrises(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	q := r.URL.Query()
	f := crisis.Filter{OpenOnly: q.Get("open") == "true", ExcludeDrills: q.Get("drills") == "false"}
	var err error
	if f.Country, err = countryParam(q.Get("country")); err != nil {
		writeError(w, err)
		return
	}
	if v := q.Get("stage"); v != "" {
		if f.Stage, err = demarchev1.ParseStage(v); err != nil {
			writeError(w, err)
			return
		}
	}
	if v := q.Get("type"); v != "" {
		if f.CrisisType, err = demarchev1.ParseCrisisType(v); err != nil {
			writeError(w, err)
			return
		}
	}
	limit := 500
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 5000 {
			writeError(w, &demarchev1.FieldError{Field: "limit", Reason: "must be a number from 1 to 5000"})
			return
		}
	}
	if partnerOnly(p) {
		f.SharedWith = p.Partner
	} else {
		f.Confidentialities = authz.Clearances(p)
	}
	rows, err := crisis.List(r.Context(), s.tc, f, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	resp := &demarchev1.ListCrisesResponse{}
	for _, row := range rows {
		resp.Crises = append(resp.Crises, row.Proto())
	}
	writeProto(w, http.StatusOK, resp)
}

// partnerOnly: a partner liaison who is nothing else sees by sharing.
func partnerOnly(p *authn.Principal) bool {
	return p.Has(demarchev1.Role_ROLE_PARTNER) && !authz.Allowed(authz.Decide, p.Roles)
}

func (s *Service) getCrisis(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	st, err := s.visibleState(r, p)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, st)
}

// crisisState asks the crisis's workflow for its state (or the stand-in a
// test gave: WithCrisisStates).
func (s *Service) crisisState(ctx context.Context, id string) (*demarchev1.CrisisState, error) {
	if s.states != nil {
		return s.states(ctx, id)
	}
	return crisis.State(ctx, s.tc, id)
}

// visibleState is a crisis's state if the principal may see it; otherwise
// the same not-found as for a crisis that does not exist. A read of a
// restricted or confidential crisis is recorded in the audit chain first (no
// record, no read).
func (s *Service) visibleState(r *http.Request, p *authn.Principal) (*demarchev1.CrisisState, error) {
	id := r.PathValue("id")
	st, err := s.crisisState(r.Context(), id)
	if err != nil {
		return nil, err
	}
	c := st.GetCrisis()
	if !authz.CanSee(p, c.GetConfidentiality(), c.GetSharedWith()) {
		return nil, fmt.Errorf("%w: %s", crisis.ErrNotFound, id)
	}
	if c.GetConfidentiality() != demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC {
		err := natsrpc.Call(r.Context(), s.nc, natsrpc.AuditRead, &demarchev1.AuditReadRequest{
			Reader: p.Subject, CrisisId: c.GetId(), Detail: r.Method + " " + r.URL.Path,
		}, &demarchev1.AuditReadResponse{})
		if err != nil {
			return nil, fmt.Errorf("%w: the read of a %s crisis could not be recorded in the audit trail; retry: %v", errs.ErrUnavailable, c.GetConfidentiality().Slug(), err)
		}
	}
	return st, nil
}

func (s *Service) postDecision(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	var req demarchev1.DecisionRequest
	if !readBody(w, r, &req) {
		return
	}
	if err := stamp(&req, p); err != nil {
		writeError(w, err)
		return
	}
	kind := req.DecisionKind()
	if role, ok := crisis.DecisionRole(kind); ok && !p.Has(role) {
		writeError(w, fmt.Errorf("%w: a %s decision is taken by a %s", errs.ErrForbidden, kind, role.Slug()))
		return
	}
	if err := s.checkRosterIDs(r.Context(), &req); err != nil { // rosterids.go
		writeError(w, err)
		return
	}
	req.FillGenerated(ids.New) // ids the client may leave out (a funding request's): UUID v7
	key, ok := s.updateOf(w, r, p)
	if !ok {
		return
	}
	decide := func(ctx context.Context, id, key string, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error) {
		return crisis.Decide(ctx, s.tc, id, key, req)
	}
	if s.decisions != nil {
		decide = s.decisions // a test's stand-in: WithDecisions
	}
	rec, err := decide(r.Context(), r.PathValue("id"), key, &req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, rec)
}

// updateOf checks what every decision and control needs before it reaches
// the crisis: a usable request id, and a crisis the principal may see (the
// same 404 as a missing one otherwise). It answers the refusal itself.
func (s *Service) updateOf(w http.ResponseWriter, r *http.Request, p *authn.Principal) (key string, ok bool) {
	key, err := requestID(w, r)
	if err == nil {
		_, err = s.visibleState(r, p)
	}
	if err != nil {
		writeError(w, err)
		return "", false
	}
	return key, true
}

// controlArgs are the operator controls over HTTP, named as their updates
// (crisis.UpdateEscalate is "crisis.escalate": POST .../controls/escalate)
// and as their actions in the policy table.
var controlArgs = map[string]func() proto.Message{
	crisis.UpdateEscalate:    func() proto.Message { return &demarchev1.SeverityControl{} },
	crisis.UpdateDeEscalate:  func() proto.Message { return &demarchev1.SeverityControl{} },
	crisis.UpdateSkipStage:   func() proto.Message { return &demarchev1.StageControl{} },
	crisis.UpdateReopenStage: func() proto.Message { return &demarchev1.StageControl{} },
	crisis.UpdatePartnerRole: func() proto.Message { return &demarchev1.PartnerRoleAck{} },
	crisis.UpdateWarn:        func() proto.Message { return &demarchev1.WarnControl{} },
}

func (s *Service) postControl(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	update := "crisis." + r.PathValue("control")
	newArg, ok := controlArgs[update]
	if !ok && authz.Check(authz.ReadCrises, p) == nil {
		var known []string
		for name := range controlArgs {
			known = append(known, strings.TrimPrefix(name, "crisis."))
		}
		sort.Strings(known)
		writeError(w, fmt.Errorf("%w: no control %q (controls: %s)", errs.ErrNotFound, truncate(r.PathValue("control"), 40), strings.Join(known, ", ")))
		return
	}
	if !ok {
		writeError(w, fmt.Errorf("%w: no such control", errs.ErrNotFound))
		return
	}
	if err := authz.Check(authz.Action(update), p); err != nil {
		writeError(w, err)
		return
	}
	arg := newArg()
	if !readBody(w, r, arg) {
		return
	}
	if err := stamp(arg, p); err != nil {
		writeError(w, err)
		return
	}
	if wc, ok := arg.(*demarchev1.WarnControl); ok && wc.GetWarning() != nil {
		// A warning attached by hand is a signal too: the sender's.
		if err := stampSource("warning.source", &wc.Warning.Source, p); err != nil {
			writeError(w, err)
			return
		}
	}
	if ack, ok := arg.(*demarchev1.PartnerRoleAck); ok && partnerOnly(p) && ack.GetPartner() != p.Partner {
		writeError(w, fmt.Errorf("%w: %s may record the role of %s only", errs.ErrForbidden, p.Subject, p.Partner))
		return
	}
	key, ok := s.updateOf(w, r, p)
	if !ok {
		return
	}
	st, err := crisis.Control(r.Context(), s.tc, r.PathValue("id"), key, update, arg.(demarchev1.Validator))
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, st)
}

// postSharing changes which partner organisations a crisis is shared with:
// every organisation named must be in the partners registry (a 400 naming
// the field otherwise); the crisis refuses a change that changes nothing
// (422 with its rule). It answers the crisis's state after the change.
func (s *Service) postSharing(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	var arg demarchev1.SharingControl
	if !readBody(w, r, &arg) {
		return
	}
	if err := stamp(&arg, p); err != nil {
		writeError(w, err)
		return
	}
	for i, v := range arg.Share { // as crisis open takes them: any case
		arg.Share[i] = strings.ToUpper(strings.TrimSpace(v))
	}
	for i, v := range arg.Unshare {
		arg.Unshare[i] = strings.ToUpper(strings.TrimSpace(v))
	}
	if err := arg.Validate(); err != nil {
		writeError(w, err)
		return
	}
	if err := s.checkPartnerNames(r.Context(), "share", arg.GetShare()); err != nil {
		writeError(w, err)
		return
	}
	key, ok := s.updateOf(w, r, p)
	if !ok {
		return
	}
	st, err := crisis.Control(r.Context(), s.tc, r.PathValue("id"), key, crisis.UpdateShare, &arg)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, st)
}

// stamp puts the authenticated principal and its roles in a request: a
// principal named in the body must be the credential's own.
func stamp(m proto.Message, p *authn.Principal) error {
	msg := m.ProtoReflect()
	fields := msg.Descriptor().Fields()
	if f := fields.ByName("principal"); f != nil {
		if named := msg.Get(f).String(); named != "" && named != p.Subject {
			return &demarchev1.FieldError{Field: "principal", Reason: "comes from your credential; leave it empty"}
		}
		msg.Set(f, protoreflect.ValueOfString(p.Subject))
	}
	if f := fields.ByName("roles"); f != nil {
		list := msg.NewField(f).List()
		for _, r := range p.Roles {
			list.Append(protoreflect.ValueOfEnum(r.Number()))
		}
		msg.Set(f, protoreflect.ValueOfList(list))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
