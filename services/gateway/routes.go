package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/payloadcodec"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
)

// Route is one authenticated route of the HTTP API, as the route table
// (Routes) lists it for the mux, the OpenAPI document and the authorisation
// tests, which walk it: a new route gets its row there.
type Route struct {
	// Method and Pattern are the route as http.ServeMux takes it
	// ("POST", "/v1/crises/{id}/decisions").
	Method, Pattern string
	// Action is the action of the policy table the guard checks before the
	// handler runs; empty when it depends on the request (a drill or a real
	// crisis, which control), and the application layer checks it.
	Action authz.Action
	// handle gets the request once its principal is authenticated.
	handle func(s *Service, w http.ResponseWriter, r *http.Request, p *authn.Principal)
	// The request body and the answer, for the OpenAPI document (nil: none,
	// or not a protobuf message).
	Request, Response proto.Message
}

// Routes is every authenticated route of the API.
func Routes() []Route { return append(crisisRoutes(), serviceRoutes()...) }

func crisisRoutes() []Route {
	return []Route{
		{"GET", "/v1/whoami", authz.ReadCrises, (*Service).whoami, nil, &demarchev1.Principal{}},
		{"GET", "/v1/openapi.json", authz.ReadCrises, (*Service).getOpenAPI, nil, nil},
		{"GET", "/v1/asyncapi.json", authz.ReadCrises, (*Service).getAsyncAPI, nil, nil},
		{"GET", "/v1/schemas/{name...}", authz.ReadCrises, (*Service).getSchema, nil, nil}, // answers: OpenAPI's schemaResponses
		{"POST", "/v1/signals", authz.SendSignals, (*Service).postSignals, &demarchev1.IngestRequest{}, &demarchev1.IngestResponse{}},
		{"GET", "/v1/signals", authz.ReadScores, (*Service).getSignals, nil, &demarchev1.SignalsPage{}}, // signals.go: the signal store
		{"GET", "/v1/situations/{country}/{type}", authz.ReadScores, (*Service).getScore, nil, &demarchev1.ScoreResponse{}},
		{"GET", "/v1/situations/{country}/{type}/history", authz.ReadScores, (*Service).getScoreHistory, nil, &demarchev1.ScoreResponse{}},
		// new early-warning rules in force without a restart: the head of department's
		{"POST", "/v1/warning/rules", authz.ApplyRules, (*Service).postRules, &demarchev1.ApplyRulesRequest{}, &demarchev1.RulesChanged{}},
		{"GET", "/v1/warning/rules", authz.ReadScores, (*Service).getRules, nil, &demarchev1.ActiveRules{}},
		// an exercise's signals raise drill crises: the drill coordinator's
		{"POST", "/v1/exercises/{id}/signals", authz.OpenDrill, (*Service).postExerciseSignals, &demarchev1.IngestRequest{}, &demarchev1.IngestResponse{}},
		// crisis.open, or crisis.open-drill for a drill:
		{"POST", "/v1/crises", "", (*Service).postCrisis, &demarchev1.OpenCrisisRequest{}, &demarchev1.CrisisState{}},
		{"GET", "/v1/crises", authz.ReadCrises, (*Service).listCrises, nil, &demarchev1.ListCrisesResponse{}},
		{"GET", "/v1/lessons", authz.ReadLessons, (*Service).getLessons, nil, &demarchev1.ListLessonsResponse{}},
		{"GET", "/v1/crises/{id}", authz.ReadCrises, (*Service).getCrisis, nil, &demarchev1.CrisisState{}},
		{"POST", "/v1/crises/{id}/decisions", authz.Decide, (*Service).postDecision, &demarchev1.DecisionRequest{}, &demarchev1.DecisionRecord{}},
		// the control's own action (crisis.escalate, ...); the body is the control's message:
		{"POST", "/v1/crises/{id}/controls/{control}", "", (*Service).postControl, nil, &demarchev1.CrisisState{}},
		// claims of pending decisions (crisisclaims.go): the role the decision waits for is checked there
		{"GET", "/v1/crises/{id}/claims", authz.ReadCrises, (*Service).getClaims, nil, nil},
		{"POST", "/v1/crises/{id}/claims/{kind}", authz.Decide, (*Service).postClaim, nil, nil},
		{"DELETE", "/v1/crises/{id}/claims/{kind}", authz.Decide, (*Service).deleteClaim, nil, nil},
		{"POST", "/v1/crises/{id}/sharing", authz.Share, (*Service).postSharing, &demarchev1.SharingControl{}, &demarchev1.CrisisState{}},
		{"GET", "/v1/audit/histories/{id}", authz.Audit, (*Service).getHistories, nil, nil},
		// a crisis's report: read as the crisis is (report.go)
		{"GET", "/v1/crises/{id}/report", authz.ReadCrises, (*Service).getReport, nil, nil},
		{"GET", "/v1/audit/evidence/{id}", authz.Audit, (*Service).getEvidence, nil, nil},
		{"POST", "/v1/audit/verify/{id}", authz.Audit, (*Service).postAuditVerify, nil, nil},
		{"POST", "/v1/audit/reconcile/{id}", authz.Audit, (*Service).postAuditReconcile, nil, nil},
		// Temporal's remote codec protocol, for the Temporal UI (codec.go):
		{"POST", codecPrefix + "{namespace}/decode", authz.Audit, (*Service).postCodecDecode, nil, nil},
		{"POST", codecPrefix + "{namespace}/encode", authz.Audit, (*Service).postCodecEncode, nil, nil},
	}
}

// NewHandler is the API over existing connections, without a listener (tests
// and embedding); tc may be nil when only the NATS-backed routes are used.
func NewHandler(nc *nats.Conn, tc client.Client, v *authn.Verifier, log *zap.Logger, opts ...Option) http.Handler {
	s := &Service{nc: nc, tc: tc, authn: v, log: log}
	for _, o := range opts {
		o(s)
	}
	return s.Handler()
}

// Option tunes a handler made by NewHandler.
type Option func(*Service)

// WithCodec serves the codec endpoint with this keyring for namespace,
// letting the origins (the Temporal UI's) call it from a browser.
func WithCodec(k *payloadcodec.Keyring, namespace string, origins ...string) Option {
	return func(s *Service) { s.codec, s.namespace, s.codecOrigins = k, namespace, origins }
}

// WithCrisisStates answers crisis states from f instead of Temporal (tests of
// other services that reach crises through the gateway).
func WithCrisisStates(f func(context.Context, string) (*demarchev1.CrisisState, error)) Option {
	return func(s *Service) { s.states = f }
}

// WithDecisions stands in for the crises' decide update (tests): f gets
// each decision as the gateway would send it to the crisis's workflow.
func WithDecisions(f func(ctx context.Context, id, key string, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error)) Option {
	return func(s *Service) { s.decisions = f }
}

// WithControls stands in for the crises' control updates (tests): f gets
// each control (update named as crisis.UpdatePartnerRole) as the gateway
// would send it to the crisis's workflow, and answers the state after it.
func WithControls(f func(ctx context.Context, id, key, update string, arg proto.Message) (*demarchev1.CrisisState, error)) Option {
	return func(s *Service) { s.controls = f }
}

// Handler is the API's routes behind authentication and authorisation.
func (s *Service) Handler() http.Handler {
	s.app = app.New(s.nc, s.tc, s.log, app.WithCrisisStates(s.states), app.WithDecisions(s.decisions), app.WithControls(s.controls),
		app.WithAuditKey(s.auditKey), app.WithAnchorCover(s.anchorCover))
	mux := http.NewServeMux()
	// the client went away: no one to tell
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	for _, rt := range Routes() {
		h := s.guard(rt)
		if isCodecRoute(rt.Pattern) {
			h = s.codecCORS(h)
		}
		mux.HandleFunc(rt.Method+" "+rt.Pattern, h)
		metrics.Route(rt.Pattern, rt.Method) // its request counter at 0 from the start
	}
	mux.HandleFunc("OPTIONS "+codecPrefix+"{namespace}/{op}", s.codecPreflight)
	s.mountConsole(mux) // the operations-centre console (console.go): pages over these routes
	return observeHTTP(mux, s.checkHost(mux))
}

// guard authenticates the request and checks the route's action; a refusal
// never reaches a backend.
func (s *Service) guard(rt Route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if isCodecRoute(rt.Pattern) {
			tok = s.codecToken(r)
		}
		p, err := s.authn.Verify(r.Context(), tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="demarche"`)
			writeError(w, err)
			return
		}
		if rt.Action != "" {
			if err := authz.Check(rt.Action, p); err != nil {
				s.log.Info("refused", zap.String("principal", p.Subject), zap.String("action", string(rt.Action)), zap.String("route", rt.Pattern))
				writeError(w, err)
				return
			}
		}
		rt.handle(s, w, r, p)
	}
}

// bearer is the request's bearer token ("" when none).
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
