// Package oidctest is an OpenID Connect issuer for tests: its own signing
// key, discovery, JWKS, an /authorize endpoint that approves one configured
// user at once (PKCE with S256 required) and a /token endpoint that checks
// the client, the redirect and the code's PKCE verifier and answers each code
// once. Knobs make it misbehave (expired or foreign ID tokens, another
// nonce, access tokens for another audience) so that clients can be shown
// to refuse. It is for tests only: nothing here is fit to guard anything.
package oidctest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Issuer is a running test issuer.
type Issuer struct {
	// URL is the issuer's URL (its "iss").
	URL string

	srv              *httptest.Server
	key              *ecdsa.PrivateKey
	clientID, secret string
	user             map[string]any
	consent          bool

	mu      sync.Mutex
	codes   map[string]*grant
	secrets []string
	knobs   Knobs
	refused int
}

// Knobs make the issuer misbehave; the zero value behaves.
type Knobs struct {
	// IDAudience is the ID token's audience ("" : the client id).
	IDAudience string
	// AccessAudience is the access token's audience ("" : demarche).
	AccessAudience string
	// IDTTL is how long ID tokens last (0: an hour; negative: already expired).
	IDTTL time.Duration
	// WrongNonce puts another nonce in the ID token.
	WrongNonce bool
}

type grant struct {
	challenge, nonce, redirect string
	used                       bool
}

// Options tune a new issuer.
type Options struct {
	// Host is the host name in the issuer's URL ("" : 127.0.0.1). "localhost"
	// makes the issuer another site than a server on 127.0.0.1 for a browser,
	// as a real identity provider is.
	Host string
	// Consent makes /authorize answer a page with an "Approve" link
	// (id="approve") to the client's callback, as a real issuer's sign-in
	// page does, instead of redirecting at once: the browser then arrives at
	// the callback from the issuer's site.
	Consent bool
}

// New starts an issuer for one client and one user, whose claims (sub,
// name, roles, ...) go into the access token; the ID token carries sub and
// name. Close it when done.
func New(clientID, secret string, user map[string]any, opts Options) *Issuer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	is := &Issuer{key: key, clientID: clientID, secret: secret, user: user, codes: map[string]*grant{}, consent: opts.Consent}
	is.srv = httptest.NewServer(is.routes())
	is.URL = is.srv.URL
	if opts.Host != "" {
		_, port, _ := net.SplitHostPort(is.srv.Listener.Addr().String()) // a listener's address always has a port
		is.URL = "http://" + net.JoinHostPort(opts.Host, port)
	}
	return is
}

// Close stops the issuer.
func (is *Issuer) Close() { is.srv.Close() }

// Set changes the knobs for the tokens issued from now on.
func (is *Issuer) Set(k Knobs) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.knobs = k
}

// Secrets are every code, verifier and token the issuer handed out or was
// sent: none of them may appear in a client's logs or pages.
func (is *Issuer) Secrets() []string {
	is.mu.Lock()
	defer is.mu.Unlock()
	return append([]string{is.secret}, is.secrets...)
}

// RefusedForVerifier counts token requests refused because the PKCE
// verifier did not match the code's challenge (or was missing).
func (is *Issuer) RefusedForVerifier() int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.refused
}

func randomString() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (is *Issuer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		u := is.URL
		// test issuer: a client that went away fails its own test
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
			"jwks_uri": u + "/jwks", "end_session_endpoint": u + "/logout", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"ES256"},
			"code_challenge_methods_supported": []string{"S256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		pad := func(b *big.Int) string { return base64.RawURLEncoding.EncodeToString(b.FillBytes(make([]byte, 32))) }
		// test issuer: a client that went away fails its own test
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
			"x": pad(is.key.X), "y": pad(is.key.Y)}}})
	})
	mux.HandleFunc("GET /authorize", is.authorize)
	mux.HandleFunc("POST /token", is.token)
	mux.HandleFunc("GET /logout", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("signed out of the test issuer\n")) // test issuer: a client that went away fails its own test
	})
	return mux
}

func (is *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || back.Host == "" || q.Get("client_id") != is.clientID {
		http.Error(w, "unknown client or redirect", http.StatusBadRequest)
		return
	}
	bq := url.Values{"state": {q.Get("state")}}
	switch {
	case q.Get("response_type") != "code" || !strings.Contains(q.Get("scope"), "openid"):
		bq.Set("error", "unsupported_response_type")
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		bq.Set("error", "invalid_request") // PKCE is required
	default:
		code := randomString()
		is.mu.Lock()
		is.codes[code] = &grant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
		is.secrets = append(is.secrets, code)
		is.mu.Unlock()
		bq.Set("code", code)
	}
	back.RawQuery = bq.Encode()
	if is.consent {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// test issuer: a client that went away fails its own test
		_, _ = fmt.Fprintf(w, "<!doctype html><title>Test issuer</title><p>Sign in to %s as %v?</p><p><a id=\"approve\" href=\"%s\">Approve</a></p>",
			html.EscapeString(is.clientID), html.EscapeString(fmt.Sprint(is.user["name"])), html.EscapeString(back.String()))
		return
	}
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (is *Issuer) token(w http.ResponseWriter, r *http.Request) {
	fail := func(code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		// test issuer: a client that went away fails its own test
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "refused by the test issuer"})
	}
	id, sec, ok := r.BasicAuth()
	if !ok {
		id, sec = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	if id != is.clientID || sec != is.secret {
		fail("invalid_client")
		return
	}
	verifier := r.PostFormValue("code_verifier")
	is.mu.Lock()
	defer is.mu.Unlock()
	is.secrets = append(is.secrets, verifier)
	g := is.codes[r.PostFormValue("code")]
	sum := sha256.Sum256([]byte(verifier))
	switch {
	case r.PostFormValue("grant_type") != "authorization_code" || g == nil || g.used || g.redirect != r.PostFormValue("redirect_uri"):
		if g != nil {
			g.used = true // a replayed code burns the grant
		}
		fail("invalid_grant")
		return
	case verifier == "" || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		g.used = true
		is.refused++
		fail("invalid_grant")
		return
	}
	g.used = true
	k := is.knobs
	now := time.Now()
	if k.IDAudience == "" {
		k.IDAudience = is.clientID
	}
	if k.AccessAudience == "" {
		k.AccessAudience = "demarche"
	}
	if k.IDTTL == 0 {
		k.IDTTL = time.Hour
	}
	nonce := g.nonce
	if k.WrongNonce {
		nonce = "someone-elses-nonce"
	}
	idClaims := map[string]any{"iss": is.URL, "aud": k.IDAudience, "sub": is.user["sub"], "name": is.user["name"], "nonce": nonce,
		"iat": now.Unix(), "exp": now.Add(k.IDTTL).Unix()}
	accClaims := map[string]any{"iss": is.URL, "aud": k.AccessAudience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for name, v := range is.user {
		accClaims[name] = v
	}
	idTok, accTok := is.sign(idClaims), is.sign(accClaims)
	is.secrets = append(is.secrets, idTok, accTok)
	w.Header().Set("Content-Type", "application/json")
	// test issuer: a client that went away fails its own test
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": accTok, "token_type": "Bearer", "expires_in": 3600, "id_token": idTok})
}

// sign makes an ES256 JWT.
func (is *Issuer) sign(claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v) // claims are maps of strings and numbers: Marshal cannot fail
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "k1"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, is.key, sum[:])
	if err != nil {
		panic(err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}
