package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn"
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
	iss := issuer(t)
	api := httptest.NewServer((&Service{nc: nc, log: zap.NewNop(), authn: iss.Verifier()}).Handler())
	defer api.Close()
	token := mint(t, iss, "analyst", "analyst")
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", api.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
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
		req, _ := http.NewRequest("POST", api.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const signals = `{"signals": [{"sourceId": "EW-1", "countryCode": "SN", "crisisType": "CRISIS_TYPE_ELECTION_VIOLENCE", "weight": 3, "observedAt": "2026-11-20T10:00:00Z", "summary": "clashes"}]}`

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
	if code, msg := get("/v1/situations/G'N/general"); code != http.StatusBadRequest || !strings.Contains(msg, "country") {
		t.Fatalf("a country that is no country: %d %s, want 400", code, msg)
	}
}

func issuer(t *testing.T) *authn.Issuer {
	t.Helper()
	iss, err := authn.LoadOrCreateIssuer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func mint(t *testing.T, iss *authn.Issuer, subject string, roles ...string) string {
	t.Helper()
	tok, err := iss.Mint(authn.Claims{Subject: subject, Roles: roles, Clearance: "restricted"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAuthentication: no token, a wrongly signed one, an expired one and a
// forbidden role are refused before any backend is asked (the service has
// no backend here at all).
func TestAuthentication(t *testing.T) {
	iss := issuer(t)
	api := httptest.NewServer((&Service{log: zap.NewNop(), authn: iss.Verifier()}).Handler())
	defer api.Close()
	stranger := issuer(t)
	expired, err := iss.Mint(authn.Claims{Subject: "duty", Roles: []string{"duty-officer"}}, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, method, path, auth string
		status                   int
		says                     string
	}{
		{"no token", "GET", "/v1/crises", "", 401, "no credential"},
		{"not bearer", "GET", "/v1/crises", "Basic YWxpY2U6eA==", 401, "no credential"},
		{"wrongly signed", "GET", "/v1/crises", "Bearer " + mint(t, stranger, "duty", "duty-officer"), 401, "signature"},
		{"expired", "GET", "/v1/crises", "Bearer " + expired, 401, "expired"},
		{"analyst opens a crisis", "POST", "/v1/crises", "Bearer " + mint(t, iss, "analyst", "analyst"), 403, "crisis.open needs one of the roles duty-officer, head-of-department"},
		{"auditor escalates", "POST", "/v1/crises/X-1/controls/escalate", "Bearer " + mint(t, iss, "auditor", "auditor"), 403, "crisis.escalate needs"},
		{"approver sends signals", "POST", "/v1/signals", "Bearer " + mint(t, iss, "approver", "funding-officer"), 403, "signals.send needs"},
		{"desk officer credits a fund", "POST", "/v1/funding/contribute", "Bearer " + mint(t, iss, "desk", "desk-officer"), 403, "funds.contribute needs one of the roles funding-officer, fund-manager"},
		{"desk officer records an early-warning dialogue", "POST", "/v1/earlywarning/dialogue", "Bearer " + mint(t, iss, "desk", "desk-officer"), 403, "situations.dialogue needs one of the roles analyst, head-of-department"},
		{"auditor records an early-warning dialogue", "POST", "/v1/earlywarning/dialogue", "Bearer " + mint(t, iss, "auditor", "auditor"), 403, "situations.dialogue needs"},
		{"auditor credits a fund", "POST", "/v1/funding/contribute", "Bearer " + mint(t, iss, "auditor", "auditor"), 403, "funds.contribute needs"},
		{"healthz needs nothing", "GET", "/healthz", "", 200, ""},
	} {
		req, _ := http.NewRequest(c.method, api.URL+c.path, strings.NewReader("{}"))
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		msg, _ := body["error"].(string)
		if resp.StatusCode != c.status || !strings.Contains(msg, c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", c.name, resp.StatusCode, msg, c.status, c.says)
		}
		if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
	}
}
