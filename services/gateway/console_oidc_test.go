package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authn/oidctest"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestConsoleOIDC signs in to the console through a test issuer with the
// authorization code flow and PKCE, and refuses every way it can go wrong:
// a code bound to another verifier, an issuer answer without PKCE, a wrong
// state, a replayed code or callback, an expired ID token, an ID token for
// another client or with another nonce, tokens not for the API. No token,
// code or verifier appears in a page or a log line.
func TestConsoleOIDC(t *testing.T) {
	const clientID, secret = "demarche-console", "s3cret-of-the-console"
	user := map[string]any{"sub": "amina", "name": "Amina (duty officer)", "roles": []string{"duty-officer", "analyst"}, "clearance": "restricted"}
	idp := oidctest.New(clientID, secret, user, oidctest.Options{})
	defer idp.Close()

	core, logs := observer.New(zap.DebugLevel)
	ctx := context.Background()
	verifier, err := authn.NewOIDC(ctx, idp.URL, authn.Audience)
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	defer gw.Close()
	svc := &Service{log: zap.New(core), authn: verifier, states: func(context.Context, string) (*demarchev1.CrisisState, error) {
		return nil, fmt.Errorf("%w: no such crisis", errs.ErrNotFound)
	}}
	if svc.oidc, err = newOIDCLogin(ctx, ConsoleOIDC{Issuer: idp.URL, ClientID: clientID, ClientSecret: secret, RedirectURL: gw.URL + "/console/oidc/callback"}); err != nil {
		t.Fatal(err)
	}
	handler = svc.Handler()

	var pages []string // every body the browser saw
	type browser struct {
		c   *http.Client
		jar *cookiejar.Jar
	}
	newBrowser := func() browser {
		jar, _ := cookiejar.New(nil)
		return browser{jar: jar, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	}
	do := func(b browser, method, u string, form url.Values) (*http.Response, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, u, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", gw.URL)
		}
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		pages = append(pages, resp.Header.Get("Location")+"\n"+string(raw))
		return resp, string(raw)
	}
	// start goes to the issuer and back: it returns the callback URL the
	// issuer sent the browser to. tamper changes the authorize request.
	start := func(b browser, tamper func(url.Values)) string {
		t.Helper()
		resp, _ := do(b, "GET", gw.URL+"/console/oidc/login?next="+url.QueryEscape("/console/crises/GN-X"), nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login start: %d", resp.StatusCode)
		}
		var lc *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == loginCookie {
				lc = c
			}
		}
		if lc == nil || !lc.HttpOnly || lc.SameSite != http.SameSiteLaxMode || lc.MaxAge <= 0 || lc.MaxAge > 600 || lc.Path != loginCookiePath {
			t.Fatalf("login cookie: %+v", lc)
		}
		az, _ := url.Parse(resp.Header.Get("Location"))
		q := az.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" || q.Get("client_id") != clientID {
			t.Fatalf("authorize request lacks PKCE, state or nonce: %s", az)
		}
		if strings.Contains(lc.Value, q.Get("state")) || strings.Contains(lc.Value, q.Get("nonce")) {
			t.Fatal("the login cookie shows its state or nonce in clear")
		}
		if tamper != nil {
			tamper(q)
			az.RawQuery = q.Encode()
		}
		resp, _ = do(b, "GET", az.String(), nil)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize: %d", resp.StatusCode)
		}
		return resp.Header.Get("Location")
	}
	refused := func(name string, status int, body, want string) {
		t.Helper()
		if status < 400 || !strings.Contains(body, "Sign-in refused") || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want a refusal saying %q; page:\n%s", name, status, want, body)
		}
	}
	session := func(b browser) string {
		u, _ := url.Parse(gw.URL)
		for _, c := range b.jar.Cookies(u) {
			if c.Name == sessionCookie {
				return c.Value
			}
		}
		return ""
	}

	// A full sign-in.
	b := newBrowser()
	cb := start(b, nil)
	resp, body := do(b, "GET", cb, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `http-equiv="refresh" content="0;url=/console/crises/GN-X"`) {
		t.Fatalf("callback: %d\n%s", resp.StatusCode, body)
	}
	var sc *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie: %+v", sc)
	}
	p, err := verifier.Verify(ctx, session(b))
	if err != nil || p.Subject != "amina" || !p.Has(demarchev1.Role_ROLE_DUTY_OFFICER) || !p.Has(demarchev1.Role_ROLE_ANALYST) || p.Clearance != demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED {
		t.Fatalf("session principal: %+v %v", p, err)
	}
	resp, body = do(b, "GET", gw.URL+"/console/crises/GN-X", nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "Amina (duty officer)") || !strings.Contains(body, "amina · cleared restricted") || !strings.Contains(body, `href="/console/warnings"`) {
		t.Fatalf("a page after sign-in: %d\n%s", resp.StatusCode, body)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	// The callback again, with the login cookie gone: refused.
	resp, body = do(b, "GET", cb, nil)
	refused("the callback replayed", resp.StatusCode, body, "already used")

	// Sign-out: the session ends; the issuer's own sign-out is offered.
	if csrf == nil {
		t.Fatal("no CSRF token on the page")
	}
	resp, _ = do(b, "POST", gw.URL+"/console/signout", url.Values{"csrf": {csrf[1]}})
	if resp.StatusCode != http.StatusSeeOther || session(b) != "" {
		t.Fatalf("sign-out: %d, session %q", resp.StatusCode, session(b))
	}
	_, body = do(b, "GET", gw.URL+resp.Header.Get("Location"), nil)
	if !strings.Contains(body, `id="end-session"`) || !strings.Contains(body, idp.URL+"/logout?client_id="+clientID) {
		t.Fatalf("after sign-out, no link to the issuer's sign-out:\n%s", body)
	}

	// A session that ended goes back through the issuer; no session at all
	// goes to the sign-in page.
	gwu, _ := url.Parse(gw.URL)
	b.jar.SetCookies(gwu, []*http.Cookie{{Name: sessionCookie, Value: "an.expired.token", Path: "/"}})
	if resp, _ = do(b, "GET", gw.URL+"/console/approvals", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/oidc/login?next=%2Fconsole%2Fapprovals" {
		t.Errorf("an ended session: %d %s, want the issuer's sign-in", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ = do(newBrowser(), "GET", gw.URL+"/console/approvals", nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin?") {
		t.Errorf("no session: %d %s, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A code obtained with another verifier's challenge (a code injected
	// from another sign-in) is refused by the token endpoint.
	b = newBrowser()
	cb = start(b, func(q url.Values) {
		sum := sha256.Sum256([]byte("the attacker's own verifier, 43 characters or more"))
		q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
	})
	before := idp.RefusedForVerifier()
	resp, body = do(b, "GET", cb, nil)
	refused("wrong verifier", resp.StatusCode, body, "refused the code (invalid_grant)")
	if idp.RefusedForVerifier() != before+1 || session(b) != "" {
		t.Errorf("wrong verifier: the issuer did not refuse it for the verifier, or a session was set")
	}
	// Without PKCE the issuer answers an error: refused.
	b = newBrowser()
	cb = start(b, func(q url.Values) { q.Del("code_challenge") })
	resp, body = do(b, "GET", cb, nil)
	refused("no PKCE", resp.StatusCode, body, "answered invalid_request")
	// A login cookie without a verifier (sealed by the console, so only a bug
	// could make one) is refused before the issuer is asked.
	b = newBrowser()
	cb = start(b, nil)
	partial, _ := svc.oidc.seal(loginState{State: "st", Nonce: "n", Expires: time.Now().Add(time.Minute).Unix()})
	gu, _ := url.Parse(gw.URL + loginCookiePath)
	b.jar.SetCookies(gu, []*http.Cookie{{Name: loginCookie, Value: partial, Path: loginCookiePath}})
	resp, body = do(b, "GET", strings.Replace(cb, "state=", "state=st&x=", 1), nil)
	refused("missing verifier", resp.StatusCode, body, "incomplete")

	// A wrong state.
	b = newBrowser()
	cb = start(b, nil)
	cu, _ := url.Parse(cb)
	q := cu.Query()
	q.Set("state", "not-the-state")
	cu.RawQuery = q.Encode()
	resp, body = do(b, "GET", cu.String(), nil)
	refused("wrong state", resp.StatusCode, body, "state does not match")

	// A forged login cookie.
	b = newBrowser()
	cb = start(b, nil)
	b.jar.SetCookies(gu, []*http.Cookie{{Name: loginCookie, Value: "forged" + strings.Repeat("A", 60), Path: loginCookiePath}})
	resp, body = do(b, "GET", cb, nil)
	refused("forged login cookie", resp.StatusCode, body, "not sealed by this console")

	// A replayed code: the login cookie and the callback captured together
	// and sent again after the sign-in.
	b = newBrowser()
	cb = start(b, nil)
	var saved []*http.Cookie
	for _, c := range b.jar.Cookies(gu) {
		if c.Name == loginCookie {
			saved = append(saved, &http.Cookie{Name: c.Name, Value: c.Value, Path: loginCookiePath})
		}
	}
	if resp, _ = do(b, "GET", cb, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in before the replay: %d", resp.StatusCode)
	}
	thief := newBrowser()
	thief.jar.SetCookies(gu, saved)
	resp, body = do(thief, "GET", cb, nil)
	refused("replayed code", resp.StatusCode, body, "refused the code (invalid_grant)")
	if session(thief) != "" {
		t.Error("a replayed code gave a session")
	}

	// ID tokens: expired, for another client, with another nonce; tokens
	// not for the API.
	for _, tc := range []struct {
		name, want string
		knobs      oidctest.Knobs
	}{
		{"expired ID token", "it has expired", oidctest.Knobs{IDTTL: -time.Hour}},
		{"ID token for another client", "it is for another client", oidctest.Knobs{IDAudience: "another-client"}},
		{"ID token with another nonce", "nonce is not this sign-in", oidctest.Knobs{WrongNonce: true}},
		{"access token for another API", "not for the Démarche API", oidctest.Knobs{AccessAudience: "another-api"}},
	} {
		idp.Set(tc.knobs)
		b = newBrowser()
		resp, body = do(b, "GET", start(b, nil), nil)
		refused(tc.name, resp.StatusCode, body, tc.want)
		if session(b) != "" {
			t.Errorf("%s: a session was set", tc.name)
		}
	}
	idp.Set(oidctest.Knobs{})
	// The issuer says no.
	b = newBrowser()
	cb = start(b, nil)
	cu, _ = url.Parse(cb)
	q = cu.Query()
	q.Del("code")
	q.Set("error", "access_denied<script>")
	cu.RawQuery = q.Encode()
	resp, body = do(b, "GET", cu.String(), nil)
	refused("issuer error", resp.StatusCode, body, "answered unknown_error")

	// Nothing secret in a page or a log line.
	var logText strings.Builder
	for _, e := range logs.All() {
		logText.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			fmt.Fprintf(&logText, " %s=%v", k, v)
		}
		logText.WriteString("\n")
	}
	if !strings.Contains(logText.String(), "console sign-in refused") {
		t.Errorf("refusals are not logged:\n%s", logText.String())
	}
	for _, sec := range idp.Secrets() {
		if len(sec) < 8 {
			continue
		}
		if strings.Contains(logText.String(), sec) {
			t.Errorf("a token, code or verifier is in the logs")
		}
		for _, pg := range pages {
			if strings.Contains(pg, sec) && !strings.Contains(pg, "code="+sec) { // the issuer's redirect carries its code, by design
				t.Errorf("a token, code or verifier is in a page")
			}
		}
	}
}

// TestConsoleOIDCConfig: a console sign-in configuration that cannot work is
// refused at start, naming the setting.
func TestConsoleOIDCConfig(t *testing.T) {
	idp := oidctest.New("c", "s", map[string]any{"sub": "x"}, oidctest.Options{})
	defer idp.Close()
	ok := ConsoleOIDC{Issuer: idp.URL, ClientID: "c", RedirectURL: "https://ops.example.org/console/oidc/callback"}
	if _, err := newOIDCLogin(context.Background(), ok); err != nil {
		t.Fatalf("a good configuration: %v", err)
	}
	for _, tc := range []struct {
		change func(*ConsoleOIDC)
		want   string
	}{
		{func(c *ConsoleOIDC) { c.ClientID = "" }, "--console-client-id"},
		{func(c *ConsoleOIDC) { c.RedirectURL = "https://ops.example.org/elsewhere" }, "--console-redirect-url"},
		{func(c *ConsoleOIDC) { c.RedirectURL = "/console/oidc/callback" }, "--console-redirect-url"},
		{func(c *ConsoleOIDC) { c.CookieKey = []byte("short") }, "32 bytes"},
		{func(c *ConsoleOIDC) { c.Issuer = idp.URL + "/nowhere" }, "issuer"},
	} {
		cfg := ok
		tc.change(&cfg)
		if _, err := newOIDCLogin(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %q", cfg, err, tc.want)
		}
	}
}
