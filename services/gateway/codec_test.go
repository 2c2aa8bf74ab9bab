package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	"github.com/demarche/demarche/pkg/payloadcodec"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestCodecEndpoint: Temporal's remote codec protocol decrypts for an
// auditor (bearer token, or the console session from the Temporal UI's
// origin) and for nobody else; the UI's origin gets the CORS answers it
// needs, other origins none; a payload under an unknown key is refused
// naming the key.
func TestCodecEndpoint(t *testing.T) {
	key, err := payloadcodec.GenerateKey("k-test")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := payloadcodec.NewKeyring(&key)
	if err != nil {
		t.Fatal(err)
	}
	const ui = "http://127.0.0.1:8233"
	iss := issuer(t)
	// The audit service's read endpoint, recording what the gateway asks it to.
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	var mu sync.Mutex
	var reads []*demarchev1.AuditReadRequest
	auditSvc, err := micro.AddService(nc, micro.Config{Name: "audit", Version: "0.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = auditSvc.Stop() }()
	if err := auditSvc.AddGroup(natsrpc.AuditGroup).AddEndpoint("read", natsrpc.Handler(func() *demarchev1.AuditReadRequest { return &demarchev1.AuditReadRequest{} },
		func(_ context.Context, req *demarchev1.AuditReadRequest) (*demarchev1.AuditReadResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			reads = append(reads, req)
			return &demarchev1.AuditReadResponse{}, nil
		})); err != nil {
		t.Fatal(err)
	}
	lastReads := func() []*demarchev1.AuditReadRequest {
		mu.Lock()
		defer mu.Unlock()
		out := reads
		reads = nil
		return out
	}
	api := httptest.NewServer(NewHandler(nc, nil, iss.Verifier(), zap.NewNop(), WithCodec(ring, "demarche", ui)))
	defer api.Close()
	auditor, err := iss.Mint(authn.Claims{Subject: "audrey", Roles: []string{"auditor"}, Clearance: "confidential"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	restrictedAuditor, duty := mint(t, iss, "rita", "auditor"), mint(t, iss, "duty", "duty-officer")

	plain, _ := converter.GetDefaultDataConverter().ToPayload("Quiet talks TITLE-7F3A")
	enc, err := ring.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: enc})

	call := func(method, path, token, cookie, origin string, body []byte, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, api.URL+path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
			req.Header.Set("Sec-Fetch-Site", "same-site")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	decoded := func(raw string) string {
		t.Helper()
		var ps commonpb.Payloads
		if err := protojson.Unmarshal([]byte(raw), &ps); err != nil || len(ps.GetPayloads()) != 1 {
			t.Fatalf("answer %q: %v", raw, err)
		}
		var s string
		_ = converter.GetDefaultDataConverter().FromPayload(ps.GetPayloads()[0], &s)
		return s
	}

	// An auditor's bearer token: decrypted.
	resp, raw := call("POST", "/v1/codec/demarche/decode", auditor, "", "", body)
	if resp.StatusCode != 200 || decoded(raw) != "Quiet talks TITLE-7F3A" {
		t.Fatalf("auditor decode: %d %s", resp.StatusCode, raw)
	}
	// Each decryption is recorded: here no crisis can be told, so the
	// global chain (crisis id empty) has it, with who read.
	if rs := lastReads(); len(rs) != 1 || rs[0].GetReader() != "audrey" || rs[0].GetCrisisId() != "" || !strings.Contains(rs[0].GetDetail(), "codec decode: 1 payload") {
		t.Fatalf("decode not recorded in the global chain: %v", rs)
	}
	// The workflow named by the request (header, or the UI page as
	// Referer) and a crisis named by a payload get the record in their
	// crisis's chain; encode is not a read.
	resp, raw = call("POST", "/v1/codec/demarche/decode", auditor, "", "", body, WorkflowHeader, "crisis-GN-20261127-K7Q3P-good-offices-1")
	if rs := lastReads(); resp.StatusCode != 200 || len(rs) != 1 || rs[0].GetCrisisId() != "GN-20261127-K7Q3P" || !strings.Contains(rs[0].GetDetail(), "workflow crisis-GN-20261127-K7Q3P-good-offices-1") {
		t.Fatalf("decode naming a stage workflow: %d %s %v", resp.StatusCode, raw, rs)
	}
	resp, _ = call("POST", "/v1/codec/demarche/decode", auditor, "", "", body, "Referer", ui+"/namespaces/demarche/workflows/crisis-ML-20261127-AAAAA/run-1/history")
	if rs := lastReads(); resp.StatusCode != 200 || len(rs) != 1 || rs[0].GetCrisisId() != "ML-20261127-AAAAA" {
		t.Fatalf("decode from the UI's workflow page: %d %v", resp.StatusCode, rs)
	}
	named, _ := converter.GetDefaultDataConverter().ToPayload(&demarchev1.StageEntered{CrisisId: "NE-20261127-BBBBB", Stage: demarchev1.Stage_STAGE_WARNING})
	namedEnc, _ := ring.Encode([]*commonpb.Payload{named})
	resp, _ = call("POST", "/v1/codec/demarche/decode", auditor, "", "", mustJSON(t, namedEnc...))
	if rs := lastReads(); resp.StatusCode != 200 || len(rs) != 1 || rs[0].GetCrisisId() != "NE-20261127-BBBBB" {
		t.Fatalf("decode of a payload naming its crisis: %d %v", resp.StatusCode, rs)
	}
	// Encode then decode is the identity.
	resp, raw = call("POST", "/v1/codec/demarche/encode", auditor, "", "", mustJSON(t, plain))
	if resp.StatusCode != 200 || strings.Contains(raw, "7F3A") || len(lastReads()) != 0 {
		t.Fatalf("auditor encode: %d %s", resp.StatusCode, raw)
	}
	// Not an auditor: refused by the policy table; no credential: 401.
	if resp, raw := call("POST", "/v1/codec/demarche/decode", duty, "", "", body); resp.StatusCode != 403 || strings.Contains(raw, "7F3A") {
		t.Fatalf("duty officer decode: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := call("POST", "/v1/codec/demarche/decode", restrictedAuditor, "", "", body); resp.StatusCode != 403 || !strings.Contains(raw, "confidential clearance") {
		t.Fatalf("auditor cleared for restricted only: %d %s", resp.StatusCode, raw)
	}
	if resp, _ := call("POST", "/v1/codec/demarche/decode", "", "", ui, body); resp.StatusCode != 401 {
		t.Fatalf("no credential: %d", resp.StatusCode)
	}
	// The console session from the Temporal UI's origin: decrypted, readable by that origin.
	resp, raw = call("POST", "/v1/codec/demarche/decode", "", auditor, ui, body)
	if resp.StatusCode != 200 || decoded(raw) != "Quiet talks TITLE-7F3A" ||
		resp.Header.Get("Access-Control-Allow-Origin") != ui || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("UI decode with the session: %d %v %s", resp.StatusCode, resp.Header, raw)
	}
	// The same cookie sent by another site's page: not a credential, no CORS.
	resp, raw = call("POST", "/v1/codec/demarche/decode", "", auditor, "https://evil.example", body)
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != "" || strings.Contains(raw, "7F3A") {
		t.Fatalf("forged cross-site decode: %d %v %s", resp.StatusCode, resp.Header, raw)
	}
	// Preflight: the UI's origin is told what it may send; another is refused.
	resp, _ = call("OPTIONS", "/v1/codec/demarche/decode", "", "", ui, nil)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != ui || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "X-Namespace") {
		t.Fatalf("preflight from the UI: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := call("OPTIONS", "/v1/codec/demarche/decode", "", "", "https://evil.example", nil); resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}
	// Another namespace, bad bodies, unknown keys: clear refusals.
	if resp, raw := call("POST", "/v1/codec/other/decode", auditor, "", "", body); resp.StatusCode != 404 || !strings.Contains(raw, `serves namespace \"demarche\"`) {
		t.Fatalf("other namespace: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := call("POST", "/v1/codec/demarche/decode", auditor, "", "", []byte(`{"payloads": 3}`)); resp.StatusCode != 400 || !strings.Contains(raw, "remote codec format") {
		t.Fatalf("bad body: %d %s", resp.StatusCode, raw)
	}
	other, _ := payloadcodec.GenerateKey("k-other")
	otherRing, _ := payloadcodec.NewKeyring(&other)
	foreign, _ := otherRing.Encode([]*commonpb.Payload{plain})
	if resp, raw := call("POST", "/v1/codec/demarche/decode", auditor, "", "", mustJSON(t, foreign...)); resp.StatusCode != 400 || !strings.Contains(raw, "k-other") {
		t.Fatalf("unknown key: %d %s", resp.StatusCode, raw)
	}
	// A gateway without a key says so.
	bare := httptest.NewServer(NewHandler(nil, nil, iss.Verifier(), zap.NewNop()))
	defer bare.Close()
	req, _ := http.NewRequest("POST", bare.URL+"/v1/codec/demarche/decode", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+auditor)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 404 {
		t.Fatalf("gateway without a key: %v %v", resp, err)
	}
}

func mustJSON(t *testing.T, ps ...*commonpb.Payload) []byte {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
