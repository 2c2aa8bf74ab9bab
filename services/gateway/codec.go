package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/payloadcodec"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// The codec endpoint speaks Temporal's remote codec protocol, so the Temporal
// UI (and `temporal --codec-endpoint`) can show the encrypted payloads of the
// cluster in clear, to an auditor:
//
//	POST /v1/codec/{namespace}/decode   {"payloads": [...]} -> {"payloads": [...]}
//	POST /v1/codec/{namespace}/encode
//
// The UI is configured with the endpoint https://GATEWAY/v1/codec/NAMESPACE.
// A request is authenticated like any other (bearer token), or by the
// console's session cookie when it comes from an origin allowed to use the
// codec (the Temporal UI in the browser of someone signed in to the console:
// the UI has no token of its own to pass); the route needs audit.read.

const codecPrefix = "/v1/codec/"

func isCodecRoute(pattern string) bool { return strings.HasPrefix(pattern, codecPrefix) }

// postCodecDecode and postCodecEncode are the two routes.
func (s *Service) postCodecDecode(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	s.codecOp(w, r, p, "decode")
}

func (s *Service) postCodecEncode(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	s.codecOp(w, r, p, "encode")
}

func (s *Service) codecOp(w http.ResponseWriter, r *http.Request, p *authn.Principal, op string) {
	ns := r.PathValue("namespace")
	if h := r.Header.Get("X-Namespace"); h != "" && h != ns {
		writeError(w, fmt.Errorf("%w: X-Namespace %q and the path's namespace %q differ", errs.ErrInvalid, h, ns))
		return
	}
	if s.codec == nil {
		writeError(w, fmt.Errorf("%w: this gateway has no payload codec key: its Temporal payloads are not encrypted (start it with %s)", errs.ErrNotFound, payloadcodec.FlagKey))
		return
	}
	// A payload does not say which crisis it belongs to, and the UI shows
	// every crisis: reading them in clear needs the highest clearance.
	if op == "decode" && !authz.CanSee(p, demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL, nil, "") {
		writeError(w, fmt.Errorf("%w: decrypting Temporal payloads shows every crisis, confidential ones included: it needs confidential clearance (yours: %s)", errs.ErrForbidden, p.Clearance.Slug()))
		return
	}
	if ns != s.namespace {
		writeError(w, fmt.Errorf("%w: namespace %q: this gateway's codec serves namespace %q", errs.ErrNotFound, ns, s.namespace))
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, fmt.Errorf("%w: body: %v", errs.ErrInvalid, err))
		return
	}
	var in commonpb.Payloads
	if err := protojson.Unmarshal(b, &in); err != nil {
		writeError(w, fmt.Errorf("%w: body: want {\"payloads\": [...]} (Temporal's remote codec format): %v", errs.ErrInvalid, err))
		return
	}
	var out []*commonpb.Payload
	if op == "decode" {
		out, err = s.codec.Decode(in.GetPayloads())
	} else {
		out, err = s.codec.Encode(in.GetPayloads())
	}
	if err != nil {
		if errors.Is(err, payloadcodec.ErrMissingKey) || errors.Is(err, payloadcodec.ErrCorrupt) {
			err = fmt.Errorf("%w: %v", errs.ErrInvalid, err)
		}
		writeError(w, err)
		return
	}
	// Who read what, never the payloads themselves.
	s.log.Info("codec", zap.String("op", op), zap.String("principal", p.Subject), zap.String("namespace", ns), zap.Int("payloads", len(out)))
	if op == "decode" {
		// A decryption is a read of whatever the payloads hold: recorded in
		// the audit chain before the clear text leaves (no record, no read).
		if err := s.recordDecode(r, p, ns, out); err != nil {
			writeError(w, err)
			return
		}
	}
	resp, err := protojson.Marshal(&commonpb.Payloads{Payloads: out})
	if err != nil {
		writeError(w, fmt.Errorf("%w: %v", errs.ErrInternal, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(resp) // the client went away: no one to tell
}

// codecToken is a codec request's credential: the bearer token, else the
// console session's, if the request comes from this gateway's own origin
// or one allowed to use the codec (a cookie alone never authorises a
// request another site forged).
func (s *Service) codecToken(r *http.Request) string {
	if tok := bearer(r); tok != "" {
		return tok
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return ""
	}
	if s.codecOriginAllowed(r.Header.Get("Origin")) || s.sameOrigin(r) {
		return ck.Value
	}
	return ""
}

func (s *Service) codecOriginAllowed(origin string) bool {
	return origin != "" && slices.Contains(s.codecOrigins, origin)
}

// codecCORS lets the allowed origins (the Temporal UI's) read the codec's
// answers, with credentials; other origins get no CORS headers, so their
// pages cannot read what they may have sent.
func (s *Service) codecCORS(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		if o := r.Header.Get("Origin"); s.codecOriginAllowed(o) {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
		}
		h(w, r)
	}
}

// codecPreflight answers the browser's CORS preflight of a codec request
// (it carries no credentials, by the CORS rules): allowed origins only.
func (s *Service) codecPreflight(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	o := r.Header.Get("Origin")
	if !s.codecOriginAllowed(o) {
		http.Error(w, "origin not allowed to use the codec endpoint", http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", o)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Authorization-Extras, Content-Type, X-Namespace, "+WorkflowHeader)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// WorkflowHeader may name the workflow whose payloads a codec request
// decodes (a client that knows it says so; the Temporal UI sends only
// X-Namespace, and its page's address as Referer when the browser's
// referrer policy allows).
const WorkflowHeader = "X-Demarche-Workflow-Id"

// recordDecode records a decryption in the audit trail: who, how many
// payloads, and the crisis each belongs to, from the request (WorkflowHeader,
// or the Temporal UI page in Referer: /namespaces/NS/workflows/WID/...) and
// from the clear payloads themselves (a crisis id at their top level, or
// their crisis's). Each crisis found gets the record in its chain (and the
// global chain); a decryption whose crisis cannot be told is recorded in the
// global chain.
func (s *Service) recordDecode(r *http.Request, p *authn.Principal, ns string, clear []*commonpb.Payload) error {
	wid := r.Header.Get(WorkflowHeader)
	if wid == "" {
		if ref, err := url.Parse(r.Header.Get("Referer")); err == nil {
			parts := strings.Split(strings.Trim(ref.Path, "/"), "/")
			for i := 0; i+3 < len(parts); i++ {
				if parts[i] == "namespaces" && parts[i+2] == "workflows" {
					wid, _ = url.PathUnescape(parts[i+3]) // undecodable: wid stays empty and the decryption is recorded in the global chain
					break
				}
			}
		}
	}
	var ids []string
	if id := crisisOfWorkflow(wid); id != "" {
		ids = append(ids, id)
	}
	for _, pl := range clear {
		if id := crisisOfPayload(pl); id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	detail := fmt.Sprintf("codec decode: %d payload(s), namespace %s", len(clear), truncate(ns, 60))
	if wid != "" {
		detail += ", workflow " + truncate(wid, 120)
	}
	if len(ids) == 0 {
		ids = []string{""} // the global chain
	}
	return s.recordReads(r.Context(), p, ids, detail)
}

// crisisOfWorkflow is the crisis of a crisis workflow id ("crisis-ID") or of
// one of its stages' ("crisis-ID-<stage>-<run>"); "" for another workflow.
func crisisOfWorkflow(wid string) string {
	id := crisis.CrisisIDOf(wid)
	if id == "" {
		return ""
	}
	for _, st := range demarchev1.Stage_value {
		slug := demarchev1.Stage(st).Slug()
		if slug == "" {
			continue
		}
		if i := strings.LastIndex(id, "-"+slug+"-"); i > 0 {
			if _, err := strconv.Atoi(id[i+len(slug)+2:]); err == nil {
				return id[:i]
			}
		}
	}
	return id
}

// crisisOfPayload is the crisis a clear JSON payload names at its top level
// ("crisisId", or "crisis": {"id"}), "" when none.
func crisisOfPayload(pl *commonpb.Payload) string {
	if !strings.HasPrefix(string(pl.GetMetadata()["encoding"]), "json/") {
		return ""
	}
	var v struct {
		CrisisID  string `json:"crisisId"`
		CrisisID2 string `json:"crisis_id"`
		Crisis    struct {
			ID string `json:"id"`
		} `json:"crisis"`
	}
	if json.Unmarshal(pl.GetData(), &v) != nil {
		return ""
	}
	for _, id := range []string{v.CrisisID, v.CrisisID2, v.Crisis.ID} {
		if id != "" && len(id) <= 100 {
			return id
		}
	}
	return ""
}
