package natsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Serve gives every endpoint the same options: timeout, guard, metrics,
// metadata, on every instance.
func TestServeStartsEveryServiceTheSameWay(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	entered, release := make(chan struct{}, 1), make(chan struct{})
	score := func(ctx context.Context, req *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error) {
		switch req.GetCountryCode() {
		case "ML": // slower than the service's timeout
			<-ctx.Done()
			return nil, fmt.Errorf("%w: %w", errs.ErrUnavailable, ctx.Err())
		case "NE": // held until released
			entered <- struct{}{}
			<-release
		}
		return &demarchev1.ScoreResponse{Score: 1}, nil
	}
	raw := micro.HandlerFunc(func(r micro.Request) { _ = r.Respond([]byte(`{"doc":true}`)) })
	s, err := Serve(nc, ServiceConfig{Name: "served", Version: "1.0.0", Description: "a test service", Group: "served",
		Log: zap.NewNop(), Timeout: 200 * time.Millisecond, Instances: 2},
		Typed("score", "scores a situation", func() *demarchev1.ScoreRequest { return &demarchev1.ScoreRequest{} }, score),
		// A second typed endpoint: one endpoint answers one request at a
		// time, so while "score" holds a request, "other" shows the refusal.
		Typed("other", "", func() *demarchev1.ScoreRequest { return &demarchev1.ScoreRequest{} }, score),
		Raw("doc", "the document", raw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if len(s.services) != 2 {
		t.Fatalf("%d instances, want 2", len(s.services))
	}
	for _, subject := range []string{"served.score", "served.other", "served.doc"} {
		if _, err := metricstestSeries(subject); err != nil {
			t.Error(err)
		}
	}
	ctx := context.Background()
	if err := Call(ctx, nc, "served.score", valid, &demarchev1.ScoreResponse{}); err != nil {
		t.Fatal(err)
	}
	if reply, err := Request(ctx, nc, "served.doc", valid); err != nil || string(reply.Data) != `{"doc":true}` {
		t.Fatalf("raw endpoint: %v", err)
	}
	// The service's timeout bounds the handler: 503, not a hang.
	var rpcErr *errs.RPCError
	if err := Call(ctx, nc, "served.score", &demarchev1.ScoreRequest{CountryCode: "ML", CrisisType: valid.GetCrisisType()}, &demarchev1.ScoreResponse{}, Timeout(5*time.Second)); !errors.As(err, &rpcErr) || rpcErr.Code != "503" {
		t.Fatalf("handler past its timeout: %v", err)
	}
	// Metadata: what `nats micro info` shows.
	reply, err := nc.Request("$SRV.INFO.served", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	meta := map[string]map[string]string{}
	for _, e := range info.Endpoints {
		meta[e.Name] = e.Metadata
	}
	if m := meta["score"]; m["request"] != "demarche.v1.ScoreRequest" || m["response"] != "demarche.v1.ScoreResponse" || m["description"] != "scores a situation" {
		t.Errorf("score metadata %v", m)
	}
	if meta["doc"]["description"] != "the document" {
		t.Errorf("doc metadata %v", meta["doc"])
	}
	// Stopping: the request in hand finishes, new ones (typed or raw) get 503.
	first := make(chan error, 1)
	go func() {
		first <- Call(ctx, nc, "served.score", &demarchev1.ScoreRequest{CountryCode: "NE", CrisisType: valid.GetCrisisType()}, &demarchev1.ScoreResponse{}, Timeout(5*time.Second))
	}()
	<-entered
	stopped := make(chan struct{})
	go func() { s.Stop(); close(stopped) }()
	for {
		s.guard.mu.Lock()
		stopping := s.guard.stopping
		s.guard.mu.Unlock()
		if stopping {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, subject := range []string{"served.other", "served.doc"} {
		_, err := Request(ctx, nc, subject, valid, Timeout(2*time.Second))
		if !errors.As(err, &rpcErr) || rpcErr.Code != "503" || !errors.Is(err, errs.ErrUnavailable) {
			t.Errorf("%s while stopping: %v, want 503", subject, err)
		}
	}
	if got := testutil.ToFloat64(metrics.RPCRequests.WithLabelValues("served.doc", "503")); got != 1 {
		t.Errorf("raw 503s counted %v, want 1", got)
	}
	select {
	case <-stopped:
		t.Fatal("Stop returned with a request in hand")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("request in hand: %v", err)
	}
	<-stopped
}

func TestServeNeedsALogger(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	if _, err := Serve(nc, ServiceConfig{Name: "nolog", Version: "1.0.0", Group: "nolog"}); err == nil {
		t.Fatal("a service without a logger started")
	}
}

// metricstestSeries says whether the endpoint's request counter is served.
func metricstestSeries(subject string) (float64, error) {
	served, err := metricstestScrape()
	if err != nil {
		return 0, err
	}
	series := `demarche_rpc_errors_total{endpoint="` + subject + `"}`
	v, ok := served[series]
	if !ok {
		return 0, fmt.Errorf("%s not served", series)
	}
	return v, nil
}
