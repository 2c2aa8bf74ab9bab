package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestHostPolicy: the loopback names on the gateway's own port, a specific
// listening address and the public URL (with and without its default port)
// are answered; other hosts, other ports and bad public URLs are not.
func TestHostPolicy(t *testing.T) {
	hp, err := newHostPolicy("https://ops.example.org", "0.0.0.0", 8080)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080", "[::1]:8080", "ops.example.org"} {
		if !hp.allowsHost(h) {
			t.Errorf("host %q refused", h)
		}
	}
	for _, h := range []string{"evil.example", "evil.example:8080", "127.0.0.1:8081", "0.0.0.0:8080", "ops.example.org.evil.example", ""} {
		if hp.allowsHost(h) {
			t.Errorf("host %q allowed", h)
		}
	}
	for o, want := range map[string]bool{"https://ops.example.org": true, "http://127.0.0.1:8080": true, "http://ops.example.org": false, "http://evil.example": false, "null": false} {
		if hp.allowsOrigin(o) != want {
			t.Errorf("origin %q allowed = %v, want %v", o, !want, want)
		}
	}
	if hp, _ := newHostPolicy("https://ops.example.org:443", "10.0.0.5", 8080); !hp.allowsHost("ops.example.org") || !hp.allowsHost("ops.example.org:443") || !hp.allowsHost("10.0.0.5:8080") {
		t.Errorf("default port or specific listening address refused: %v", hp.hosts)
	}
	for _, bad := range []string{"ops.example.org", "ftp://ops.example.org", "https://ops.example.org/console", "https://user@ops.example.org"} {
		if _, err := newHostPolicy(bad, "", 8080); err == nil {
			t.Errorf("public URL %q accepted", bad)
		}
	}
}

// TestMisdirectedRequests: a request for another host gets 421 before
// anything runs (health, sign-in, console, API, codec); a browser POST whose
// Origin is not one of the gateway's is refused even when its Host is (the
// Origin is compared with the configured origins, not with Host).
func TestMisdirectedRequests(t *testing.T) {
	iss := issuer(t)
	h := NewHandler(nil, nil, iss.Verifier(), zap.NewNop(), WithHosts("127.0.0.1:8080", "localhost:8080"))
	token := mint(t, iss, "duty", "duty-officer")
	do := func(method, path, host, origin, body string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(method, "http://127.0.0.1:8080"+path, strings.NewReader(body))
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+token)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if method == "POST" && strings.HasPrefix(path, "/console/") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	signin := url.Values{"identity": {"duty"}}.Encode()
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/healthz", ""},
		{"GET", "/console/signin", ""},
		{"POST", "/console/signin", signin},
		{"GET", "/v1/whoami", ""},
		{"GET", "/v1/crises/GN-20261127-K7Q3P", ""},
		{"POST", "/v1/codec/demarche/decode", `{"payloads": []}`},
	} {
		code, body := do(r.method, r.path, "evil.example", "http://evil.example", r.body)
		if code != http.StatusMisdirectedRequest || !strings.Contains(body, "host-check") {
			t.Errorf("%s %s with Host evil.example: %d %s", r.method, r.path, code, body)
		}
	}
	if code, body := do("GET", "/healthz", "localhost:8080", "", ""); code != http.StatusOK {
		t.Errorf("healthz on localhost: %d %s", code, body)
	}
	if code, body := do("GET", "/v1/whoami", "127.0.0.1:8080", "", ""); code != http.StatusOK || !strings.Contains(body, `"duty"`) {
		t.Errorf("whoami on 127.0.0.1: %d %s", code, body)
	}
	// Host allowed, Origin another site's (a rebinding page names its own
	// origin): the sign-in is refused; from the gateway's own origin it is
	// not refused for its origin (no dev sign-in here: an unknown identity).
	if code, body := do("POST", "/console/signin", "127.0.0.1:8080", "http://evil.example", signin); code != http.StatusForbidden {
		t.Errorf("sign-in from another origin: %d %s", code, body)
	}
	if code, body := do("POST", "/console/signin", "127.0.0.1:8080", "http://localhost:8080", signin); code == http.StatusForbidden || code == http.StatusMisdirectedRequest {
		t.Errorf("sign-in from the gateway's own origin: %d %s", code, body)
	}
}
