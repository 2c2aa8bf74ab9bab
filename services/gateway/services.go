package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
	"github.com/demarche/demarche/workflows/trail"
)

// serviceCall is a domain service's request endpoint as people reach it:
// POST /v1/<service>/<endpoint> (ServicePath) with the request message in
// its JSON form, answered with the service's response; the action it needs
// comes from the policy table. A request naming a crisis is refused like a
// read of that crisis when the caller may not see it.
type serviceCall struct {
	subject string
	action  authz.Action
	newReq  func() proto.Message
	newResp func() proto.Message
}

// ServicePath is the HTTP path of a request subject:
// demarche.roster.search is /v1/roster/search.
func ServicePath(subject string) string {
	return "/v1/" + strings.ReplaceAll(strings.TrimPrefix(subject, "demarche."), ".", "/")
}

// No route reserves or releases roster experts, or pays money out: bookings
// come only from a crisis's envoy-appointment and its closure, payments only
// from its funding decisions, carried out by the worker (services/roster,
// funding). Money comes in by one route: a voluntary contribution credited
// by a funding officer or fund manager, stamped with who from the credential.
var serviceCalls = []serviceCall{
	{natsrpc.RosterSearch, authz.ReadRoster, func() proto.Message { return &demarchev1.RosterSearchRequest{} }, func() proto.Message { return &demarchev1.RosterSearchResponse{} }},
	{natsrpc.RosterExperts, authz.ReadRoster, func() proto.Message { return &demarchev1.AssignmentsRequest{} }, func() proto.Message { return &demarchev1.ExpertsResponse{} }},
	{natsrpc.RosterAssignments, authz.ReadRoster, func() proto.Message { return &demarchev1.AssignmentsRequest{} }, func() proto.Message { return &demarchev1.AssignmentsResponse{} }},
	{natsrpc.FundingBalance, authz.ReadFunds, func() proto.Message { return &demarchev1.FundQuery{} }, func() proto.Message { return &demarchev1.BalanceResponse{} }},
	{natsrpc.FundingContribute, authz.ContributeFunds, func() proto.Message { return &demarchev1.ContributeCall{} }, func() proto.Message { return &demarchev1.ContributeResult{} }},
	{natsrpc.FundingLedger, authz.ReadFunds, func() proto.Message { return &demarchev1.FundQuery{} }, func() proto.Message { return &demarchev1.LedgerResponse{} }},
	{natsrpc.PartnersList, authz.ReadPartners, func() proto.Message { return &demarchev1.ListPartnersRequest{} }, func() proto.Message { return &demarchev1.ListPartnersResponse{} }},
	{natsrpc.PartnersAckRole, authz.PartnerRole, func() proto.Message { return &demarchev1.AckRoleRequest{} }, func() proto.Message { return &demarchev1.AckRoleResponse{} }},
	{natsrpc.EarlyWarningDialogue, authz.RecordDialogue, func() proto.Message { return &demarchev1.RecordDialogueRequest{} }, func() proto.Message { return &demarchev1.RecordDialogueResponse{} }},
	{natsrpc.AuditChain, authz.Audit, func() proto.Message { return &demarchev1.AuditChainRequest{} }, func() proto.Message { return &demarchev1.AuditChain{} }},
	{natsrpc.AuditHeads, authz.Audit, func() proto.Message { return &demarchev1.AuditHeadsRequest{} }, func() proto.Message { return &demarchev1.AuditHeads{} }},
}

// serviceRoutes are the rows of the route table for the service calls.
func serviceRoutes() []Route {
	out := make([]Route, len(serviceCalls))
	for i, sc := range serviceCalls {
		sc := sc
		out[i] = Route{"POST", ServicePath(sc.subject), sc.action, func(s *Service, w http.ResponseWriter, r *http.Request, p *authn.Principal) {
			s.callService(w, r, p, sc)
		}, sc.newReq(), sc.newResp()}
	}
	return out
}

func (s *Service) callService(w http.ResponseWriter, r *http.Request, p *authn.Principal, sc serviceCall) {
	req := sc.newReq()
	if !readBody(w, r, req) {
		return
	}
	// Who acts comes from the credential.
	switch m := req.(type) {
	case *demarchev1.AuditChainRequest:
		m.Reader = p.Subject // the read is recorded as the credential's
	case *demarchev1.AuditHeadsRequest:
		m.Reader = p.Subject
	case *demarchev1.RecordDialogueRequest:
		if m.GetDialogue() == nil {
			m.Dialogue = &demarchev1.WarningDialogue{}
		}
		m.Dialogue.RecordedBy = p.Subject // who records it is the credential's, never the body's
	case *demarchev1.ContributeCall:
		if m.GetContribution() == nil {
			m.Contribution = &demarchev1.VoluntaryContribution{}
		}
		m.Contribution.ContributedBy = p.Subject // who credits it is the credential's, never the body's
	case *demarchev1.AckRoleRequest:
		if m.GetAck() == nil {
			m.Ack = &demarchev1.PartnerRoleAck{}
		}
		if err := app.Stamp(m.GetAck(), p); err != nil {
			writeError(w, err)
			return
		}
		if app.PartnerOnly(p) && m.GetAck().GetPartner() != p.Partner {
			writeError(w, fmt.Errorf("%w: %s may acknowledge the role of %s only", errs.ErrForbidden, p.Subject, p.Partner))
			return
		}
	}
	// A request about a crisis is answered only for crises the caller may see.
	if f := req.ProtoReflect().Descriptor().Fields().ByName("crisis_id"); f != nil && f.Kind() == protoreflect.StringKind {
		if id := req.ProtoReflect().Get(f).String(); id != "" {
			r.SetPathValue("id", id)
			if _, err := s.visibleState(r, p); err != nil {
				writeError(w, err)
				return
			}
		}
	}
	// The global audit chain records reads of every crisis: it is for
	// principals cleared for every crisis (a crisis's own chain is read
	// like the crisis, above).
	if m, ok := req.(*demarchev1.AuditChainRequest); ok && m.GetCrisisId() == "" && !authz.CanSee(p, demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL, nil, "") {
		writeError(w, fmt.Errorf("%w: the global audit chain names every crisis, confidential ones included: it needs confidential clearance (yours: %s)", errs.ErrForbidden, p.Clearance.Slug()))
		return
	}
	resp := sc.newResp()
	if err := natsrpc.Call(r.Context(), s.nc, sc.subject, req, resp); err != nil {
		writeError(w, err)
		return
	}
	// What names a crisis the caller may not see is cut out, and each
	// restricted or confidential crisis left is recorded as read
	// (sideroutes.go).
	if err := s.cutToReadable(r, p, resp); err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, resp)
}

// getHistories answers an auditor with a crisis's workflow histories (the
// crisis's and its stages', every run), for replay, reconciliation and
// evidence bundles: {"histories": [{"workflowId", "runId", "history"}]},
// each history in the JSON of "temporal workflow show --output json".
func (s *Service) getHistories(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	if _, err := s.visibleState(r, p); err != nil {
		writeError(w, err)
		return
	}
	hs, err := trail.FetchHistories(r.Context(), s.tc, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	type history struct {
		WorkflowID string          `json:"workflowId"`
		RunID      string          `json:"runId,omitempty"`
		History    json.RawMessage `json:"history"`
	}
	out := make([]history, 0, len(hs))
	for _, h := range hs {
		b, err := protojson.Marshal(h.History)
		if err != nil {
			writeError(w, err)
			return
		}
		out = append(out, history{WorkflowID: h.WorkflowID, RunID: h.RunID, History: b})
	}
	writeJSON(w, http.StatusOK, map[string]any{"histories": out})
}
