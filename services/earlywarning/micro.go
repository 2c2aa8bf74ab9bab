package earlywarning

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// RequestTimeout bounds one request's work (a batch that crosses thresholds
// waits for Temporal); callers give natsrpc.Call the same timeout.
const RequestTimeout = 2 * time.Minute

// startMicro registers the micro service, Config.Workers instances of it (in
// one queue group, the way micro services scale): `nats micro ls` lists them,
// `nats micro info|stats earlywarning` describe it, and
//
//	nats req demarche.earlywarning.score '{"country_code":"GN","crisis_type":"CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE"}'
//
// asks it by hand (protobuf JSON; send Content-Type: application/protobuf for
// binary). Requests are answered by natsrpc.Handler: 400 bad request, 404 no
// such situation, 503 stopping or retry later, 500 otherwise, so `nats micro
// stats` counts requests, errors and processing time exactly.
func (s *Service) startMicro() (err error) {
	s.micro, err = natsrpc.Serve(s.nc, natsrpc.ServiceConfig{
		Name: ServiceName, Version: ServiceVersion, Group: Group, Log: s.log, Timeout: RequestTimeout, Instances: s.config().Workers,
		Description: "Démarche early warning: ingest signals, score situations (country + crisis type), raise warnings",
	},
		natsrpc.Typed("ingest", "IngestRequest → IngestResponse: each signal accepted, duplicate or rejected with its reason",
			func() *demarchev1.IngestRequest { return &demarchev1.IngestRequest{} }, s.serveIngest),
		natsrpc.Typed("score", "ScoreRequest → ScoreResponse: a situation's score, threshold and contributing signals",
			func() *demarchev1.ScoreRequest { return &demarchev1.ScoreRequest{} }, s.serveScore),
		natsrpc.Typed("situations", "SituationsRequest → SituationsResponse: the situations with signals, the most pressing first, naming no crisis",
			func() *demarchev1.SituationsRequest { return &demarchev1.SituationsRequest{} }, s.serveSituations),
		natsrpc.Typed("signals", "SignalsQuery → SignalsPage: accepted signals from the signal store (country, type, event-time range), oldest first, a page at a time",
			func() *demarchev1.SignalsQuery { return &demarchev1.SignalsQuery{} }, s.serveSignals),
		natsrpc.Typed("rules", "ApplyRulesRequest → RulesChanged: validate a rules file and put it into force without a restart, every situation re-scored, the change audited",
			func() *demarchev1.ApplyRulesRequest { return &demarchev1.ApplyRulesRequest{} }, s.ApplyRules),
		natsrpc.Typed("active-rules", "ActiveRulesRequest → ActiveRules: the rules in force, with who applied them when (revision 0: the service's own file)",
			func() *demarchev1.ActiveRulesRequest { return &demarchev1.ActiveRulesRequest{} }, s.ActiveRules),
		natsrpc.Raw("scorecard", "anything → the scorecard of the rules in force beside two naive baselines (JSON; the data it is evaluated on is named in it)",
			micro.HandlerFunc(s.serveScorecard)),
		natsrpc.Typed("dialogue", "RecordDialogueRequest → RecordDialogueResponse: record an early-warning dialogue with a regional organisation about a situation, audited",
			func() *demarchev1.RecordDialogueRequest { return &demarchev1.RecordDialogueRequest{} }, s.RecordDialogue),
	)
	return err
}

// serveIngest answers the ingest endpoint. Only the gateway may call it
// (pkg/natsauth), and it stamps each live signal with its principal's source:
// a live signal with any other source is rejected here, on its own, with the
// rule (an exercise's signals keep their file's sources, in the exercise's
// own situations).
func (s *Service) serveIngest(ctx context.Context, req *demarchev1.IngestRequest) (*demarchev1.IngestResponse, error) {
	if req.GetExercise() != nil {
		return s.IngestExercise(ctx, req.GetSignals(), req.GetExercise())
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if len(req.GetFinishSituations()) > 0 {
		return s.FinishImport(ctx, req.GetImportId(), req.GetFinishSituations())
	}
	if id := req.GetImportId(); id != "" {
		ctx = WithImport(ctx, id)
	}
	reasons := checkRequestSources(req.GetSignals())
	var ok []*demarchev1.Signal
	var at []int
	for i, r := range reasons {
		if r == "" {
			ok, at = append(ok, req.GetSignals()[i]), append(at, i)
		}
	}
	if len(ok) == len(reasons) {
		return s.IngestExercise(ctx, ok, nil)
	}
	metrics.SignalsRefused.WithLabelValues("request").Add(float64(len(reasons) - len(ok)))
	resp := &demarchev1.IngestResponse{Results: make([]*demarchev1.IngestResult, len(reasons))}
	if len(ok) > 0 {
		part, err := s.IngestExercise(ctx, ok, nil)
		if err != nil {
			return nil, err
		}
		for j, r := range part.GetResults() {
			r.Index = int32(at[j])
			resp.Results[at[j]] = r
		}
		resp.Crises, resp.Accepted, resp.Live, resp.Historical, resp.Duplicates, resp.Rejected =
			part.GetCrises(), part.GetAccepted(), part.GetLive(), part.GetHistorical(), part.GetDuplicates(), part.GetRejected()
	}
	for i, r := range reasons {
		if r != "" {
			sig := req.GetSignals()[i]
			resp.Results[i] = &demarchev1.IngestResult{Index: int32(i), Source: sig.GetSource(), SourceId: sig.GetSourceId(),
				Status: demarchev1.IngestStatus_INGEST_STATUS_REJECTED, Reason: r}
			resp.Rejected++
		}
	}
	return resp, nil
}

func (s *Service) serveScore(ctx context.Context, req *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error) {
	resp, err := s.Score(ctx, req.GetCountryCode(), req.GetCrisisType())
	if err != nil {
		return nil, err
	}
	return s.withDialogues(ctx, resp)
}
