package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestEarlyWarningStatuses: the gateway answers early warning's refusals with
// the errs mapping, and 503 (never 500) when early warning answers 503 or
// nobody answers at all.
func TestEarlyWarningStatuses(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	api := httptest.NewServer((&Service{nc: nc, log: zap.NewNop()}).Handler())
	defer api.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(api.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		msg, _ := body["error"].(string)
		return resp.StatusCode, msg
	}
	post := func(path, body string) int {
		t.Helper()
		resp, err := http.Post(api.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const signals = `{"signals": [{"source": "ecowarn", "sourceId": "EW-1", "countryCode": "SN", "crisisType": "CRISIS_TYPE_ELECTION_VIOLENCE", "weight": 3, "observedAt": "2026-11-20T10:00:00Z", "summary": "clashes"}]}`

	// Nobody answers.
	if code, msg := get("/v1/situations/GN/general"); code != http.StatusServiceUnavailable {
		t.Fatalf("score, no early warning: %d %s, want 503", code, msg)
	}
	if code := post("/v1/signals", signals); code != http.StatusServiceUnavailable {
		t.Fatalf("signals, no early warning: %d, want 503", code)
	}

	// Early warning answers: 503 while its store is down, 404 for an unknown situation.
	svc, err := micro.AddService(nc, micro.Config{Name: natsrpc.EarlyWarningService, Version: "0.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	g := svc.AddGroup(natsrpc.EarlyWarningGroup)
	if err := g.AddEndpoint("score", natsrpc.Handler(func() *demarchev1.ScoreRequest { return &demarchev1.ScoreRequest{} },
		func(_ context.Context, req *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error) {
			if req.GetCountryCode() == "ML" {
				return nil, fmt.Errorf("%w: no signals for ML", errs.ErrNotFound)
			}
			return nil, fmt.Errorf("%w: situation store down", errs.ErrUnavailable)
		})); err != nil {
		t.Fatal(err)
	}
	if err := g.AddEndpoint("ingest", natsrpc.Handler(func() *demarchev1.IngestRequest { return &demarchev1.IngestRequest{} },
		func(context.Context, *demarchev1.IngestRequest) (*demarchev1.IngestResponse, error) {
			return nil, fmt.Errorf("%w: stopping", errs.ErrUnavailable)
		})); err != nil {
		t.Fatal(err)
	}
	if err := natsrpc.Ready(nc); err != nil {
		t.Fatal(err)
	}
	if code, msg := get("/v1/situations/GN/general"); code != http.StatusServiceUnavailable || !strings.Contains(msg, "store down") {
		t.Fatalf("score, early warning answers 503: %d %s", code, msg)
	}
	if code := post("/v1/signals", signals); code != http.StatusServiceUnavailable {
		t.Fatalf("signals, early warning answers 503: %d", code)
	}
	if code, msg := get("/v1/situations/ML/general"); code != http.StatusNotFound {
		t.Fatalf("score of an unknown situation: %d %s, want 404", code, msg)
	}
	if code, msg := get("/v1/situations/GN/no-such-type"); code != http.StatusBadRequest {
		t.Fatalf("bad crisis type: %d %s, want 400", code, msg)
	}
}
