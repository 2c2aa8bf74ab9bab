// Package gateway is Démarche's HTTP API for operations centres and partners'
// systems: it opens and reads crises and records decisions through Temporal,
// and takes early-warning signals to the earlywarning service over NATS. It
// holds no state of its own.
//
//	POST /v1/signals                    demarche.v1.IngestRequest  -> IngestResponse
//	GET  /v1/situations/{country}/{type} score and its explanation (ScoreResponse)
//	POST /v1/crises                     demarche.v1.CrisisWorkflowInput (crisis.id optional) -> CrisisState
//	GET  /v1/crises?stage=&country=&type=&open=true   list
//	GET  /v1/crises/{id}                demarche.v1.CrisisState
//	POST /v1/crises/{id}/decisions      demarche.v1.DecisionRequest -> DecisionRecord
//	POST /v1/crises/{id}/controls/{control}  operator controls -> CrisisState after it:
//	                                    escalate, de-escalate (SeverityControl), skip-stage, reopen-stage
//	                                    (StageControl), partner-role (PartnerRoleAck), warn (Warning)
//	                                    (Idempotency-Key header; default a new UUID v7; answered in X-Request-Id;
//	                                    a funding_request without request_id gets a UUID v7)
//	GET  /healthz
//
// Bodies are protobuf messages in their JSON form. Errors are JSON
// {"error": "...", "fields": [{"field": "...", "reason": "..."}]} with 400 for
// bad input (each failing field named), 404, 409, 422 for a rule the crisis or
// a service refused, 503 when a backend is not answering.
//
// The acting principal comes from the X-Demarche-Principal header when the
// body does not name one. Authentication is not part of this service yet.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/ids"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/ports"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// maxBody bounds a request body.
const maxBody = 8 << 20

// Config says where the gateway listens and what it talks to.
type Config struct {
	Host string
	// Port to listen on; 0 picks a free one. PortFlag names its flag for errors.
	Port     int
	PortFlag string
	NATSURL  string
	// TemporalAddress and Namespace locate the crises.
	TemporalAddress string
	Namespace       string
}

// Service is a running gateway.
type Service struct {
	nc   *nats.Conn
	tc   client.Client
	srv  *http.Server
	addr string
	log  *zap.Logger
}

// Start connects to NATS and Temporal and serves the API.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*Service, error) {
	log = log.Named("gateway")
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	port, err := ports.CheckOrPick(cfg.Host, cfg.Port, cfg.PortFlag)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	nc, _, err := natsx.Connect(cfg.NATSURL, "demarche-gateway", log)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	tc, err := temporalx.Dial(ctx, cfg.TemporalAddress, cfg.Namespace, log)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s := &Service{nc: nc, tc: tc, log: log}
	l, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
	if err != nil {
		tc.Close()
		nc.Close()
		return nil, fmt.Errorf("gateway: listen: %w", err)
	}
	s.addr = "http://" + l.Addr().String()
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("gateway stopped serving", zap.Error(err))
		}
	}()
	log.Info("gateway ready", zap.String("url", s.addr))
	return s, nil
}

// URL is where the API answers.
func (s *Service) URL() string { return s.addr }

// Stop stops serving (finishing requests in hand) and disconnects.
func (s *Service) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.tc.Close()
	s.nc.Close()
}

// Handler is the API's routes.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	s.schemaRoutes(mux) // GET /v1/asyncapi.json, /v1/schemas/{name...} (schemas.go)
	mux.HandleFunc("POST /v1/signals", s.postSignals)
	mux.HandleFunc("GET /v1/situations/{country}/{type}", s.getScore)
	mux.HandleFunc("POST /v1/crises", s.postCrisis)
	mux.HandleFunc("GET /v1/crises", s.listCrises)
	mux.HandleFunc("GET /v1/crises/{id}", s.getCrisis)
	mux.HandleFunc("POST /v1/crises/{id}/decisions", s.postDecision)
	mux.HandleFunc("POST /v1/crises/{id}/controls/{control}", s.postControl)
	return mux
}

func (s *Service) postSignals(w http.ResponseWriter, r *http.Request) {
	var req demarchev1.IngestRequest
	if !readBody(w, r, &req) {
		return
	}
	var resp demarchev1.IngestResponse
	if err := natsrpc.Call(r.Context(), s.nc, natsrpc.EarlyWarningIngest, &req, &resp); err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, &resp)
}

func (s *Service) getScore(w http.ResponseWriter, r *http.Request) {
	t, err := demarchev1.ParseCrisisType(r.PathValue("type"))
	if err != nil {
		writeError(w, err)
		return
	}
	var resp demarchev1.ScoreResponse
	req := &demarchev1.ScoreRequest{CountryCode: strings.ToUpper(r.PathValue("country")), CrisisType: t}
	if err := natsrpc.Call(r.Context(), s.nc, natsrpc.EarlyWarningScore, req, &resp); err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, &resp)
}

func (s *Service) postCrisis(w http.ResponseWriter, r *http.Request) {
	var in demarchev1.CrisisWorkflowInput
	if !readBody(w, r, &in) {
		return
	}
	c := in.GetCrisis()
	if c == nil {
		writeError(w, &demarchev1.ValidationError{Message: "crisis", Fields: []*demarchev1.FieldError{{Field: "crisis", Reason: "is required"}}})
		return
	}
	p := crisis.NewCrisisParams{
		ID: c.GetId(), Title: c.GetTitle(), CountryCode: c.GetCountryCode(), CrisisType: c.GetCrisisType(),
		Severity: c.GetSeverity(), Confidentiality: c.GetConfidentiality(), OpenedBy: c.GetOpenedBy(),
		Drill: c.GetDrill(), SharedWith: c.GetSharedWith(),
	}
	if c.FirstSignalAt != nil {
		p.FirstSignalAt = c.GetFirstSignalAt().AsTime()
	}
	if p.OpenedBy == "" {
		p.OpenedBy = r.Header.Get("X-Demarche-Principal")
	}
	c = crisis.NewCrisis(p, time.Now())
	in.Crisis = c
	if _, err := crisis.Open(r.Context(), s.tc, &in); err != nil {
		writeError(w, err)
		return
	}
	st, err := s.waitState(r.Context(), c.GetId())
	if err != nil {
		writeProto(w, http.StatusAccepted, &demarchev1.CrisisState{Crisis: c})
		return
	}
	writeProto(w, http.StatusCreated, st)
}

// waitState asks a just-started crisis for its state, briefly.
func (s *Service) waitState(ctx context.Context, id string) (*demarchev1.CrisisState, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		st, err := crisis.State(ctx, s.tc, id)
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

func (s *Service) listCrises(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := crisis.Filter{Country: strings.ToUpper(q.Get("country")), OpenOnly: q.Get("open") == "true"}
	var err error
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
	rows, err := crisis.List(r.Context(), s.tc, f, 500)
	if err != nil {
		writeError(w, err)
		return
	}
	if rows == nil {
		rows = []crisis.Summary{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"crises": rows})
}

func (s *Service) getCrisis(w http.ResponseWriter, r *http.Request) {
	st, err := crisis.State(r.Context(), s.tc, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, st)
}

func (s *Service) postDecision(w http.ResponseWriter, r *http.Request) {
	var req demarchev1.DecisionRequest
	if !readBody(w, r, &req) {
		return
	}
	if req.Principal == "" {
		req.Principal = r.Header.Get("X-Demarche-Principal")
	}
	if fr := req.GetFundingRequest(); fr != nil && fr.GetRequestId() == "" {
		fr.RequestId = ids.New() // the funding request's id when the client gives none
	}
	rec, err := crisis.Decide(r.Context(), s.tc, r.PathValue("id"), requestID(w, r), &req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, rec)
}

// requestID is the request's Idempotency-Key, or a new time-ordered UUID (v7)
// when it has none; it is answered in the X-Request-Id header so a client can
// retry the same request, and names the request in Temporal (the update id).
func requestID(w http.ResponseWriter, r *http.Request) string {
	id := r.Header.Get("Idempotency-Key")
	if id == "" {
		id = ids.New()
	}
	w.Header().Set("X-Request-Id", id)
	return id
}

// controlArgs are the operator controls over HTTP, named as their updates
// (crisis.UpdateEscalate is "crisis.escalate": POST .../controls/escalate).
var controlArgs = map[string]func() demarchev1.Validator{
	crisis.UpdateEscalate:    func() demarchev1.Validator { return &demarchev1.SeverityControl{} },
	crisis.UpdateDeEscalate:  func() demarchev1.Validator { return &demarchev1.SeverityControl{} },
	crisis.UpdateSkipStage:   func() demarchev1.Validator { return &demarchev1.StageControl{} },
	crisis.UpdateReopenStage: func() demarchev1.Validator { return &demarchev1.StageControl{} },
	crisis.UpdatePartnerRole: func() demarchev1.Validator { return &demarchev1.PartnerRoleAck{} },
	crisis.UpdateWarn:        func() demarchev1.Validator { return &demarchev1.Warning{} },
}

func (s *Service) postControl(w http.ResponseWriter, r *http.Request) {
	update := "crisis." + r.PathValue("control")
	newArg, ok := controlArgs[update]
	if !ok {
		var known []string
		for name := range controlArgs {
			known = append(known, strings.TrimPrefix(name, "crisis."))
		}
		sort.Strings(known)
		writeError(w, fmt.Errorf("%w: no control %q (controls: %s)", errs.ErrNotFound, r.PathValue("control"), strings.Join(known, ", ")))
		return
	}
	arg := newArg()
	if !readBody(w, r, arg.(proto.Message)) {
		return
	}
	// The principal comes from the header when the body names none.
	m := arg.(proto.Message).ProtoReflect()
	if f := m.Descriptor().Fields().ByName("principal"); f != nil && m.Get(f).String() == "" {
		m.Set(f, protoreflect.ValueOfString(r.Header.Get("X-Demarche-Principal")))
	}
	st, err := crisis.Control(r.Context(), s.tc, r.PathValue("id"), requestID(w, r), update, arg)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, st)
}

func readBody(w http.ResponseWriter, r *http.Request, into proto.Message) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": fmt.Sprintf("body: %v", err)})
		return false
	}
	if err := protojson.Unmarshal(b, into); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("body is not a %s in JSON: %v", into.ProtoReflect().Descriptor().FullName(), err)})
		return false
	}
	return true
}

func writeProto(w http.ResponseWriter, status int, m proto.Message) {
	b, err := protojson.MarshalOptions{EmitUnpopulated: false}.Marshal(m)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers an error with its status (errs.HTTPStatus: the one
// mapping) and, for bad input, each field.
func writeError(w http.ResponseWriter, err error) {
	body := map[string]any{"error": err.Error()}
	var verr *demarchev1.ValidationError
	var ferr *demarchev1.FieldError
	switch {
	case errors.As(err, &verr):
		fields := make([]map[string]string, len(verr.Fields))
		for i, f := range verr.Fields {
			fields[i] = map[string]string{"field": f.Field, "reason": f.Reason}
		}
		body["fields"] = fields
	case errors.As(err, &ferr):
		body["fields"] = []map[string]string{{"field": ferr.Field, "reason": ferr.Reason}}
	}
	writeJSON(w, errs.HTTPStatus(err), body)
}
