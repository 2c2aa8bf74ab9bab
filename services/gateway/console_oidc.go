package gateway

// Console sign-in with the organisation's OpenID Connect issuer: the
// authorization code flow with PKCE (RFC 7636, S256), a state and a nonce.
//
//	GET /console/oidc/login?next=/console/...   start: a short-lived login cookie, then the issuer's /authorize
//	GET /console/oidc/callback?code=&state=     finish: check state, exchange the code with the PKCE verifier,
//	                                            verify the ID token (issuer, audience = client id, expiry, nonce),
//	                                            then the session cookie
//
// The state, nonce, PKCE verifier and the page to return to travel in one
// cookie (demarche_oidc_login: HttpOnly, SameSite=Lax so it comes back with
// the issuer's redirect, Path limited to the callback, ten minutes,
// AES-GCM sealed so it can be neither read nor forged) and are used once.
//
// The session is then what it is for every console user: the bearer token
// the API takes, checked by the API's verifier on every request. That token
// is the issuer's access token when it is a JWT for the API's audience, or
// else the ID token when the client id is the API's audience; the session's
// subject must be the ID token's. Tokens, codes and verifiers never reach a
// log line or an error page: errors say which check failed and, for the
// issuer's refusals, its OAuth error code only.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/demarche/demarche/pkg/authn"
)

// ConsoleOIDC configures the console's sign-in through an OpenID Connect
// issuer (authorization code + PKCE).
type ConsoleOIDC struct {
	// Issuer is the issuer URL (its discovery document is read at start).
	Issuer string
	// ClientID and ClientSecret are the console's client registration; the
	// secret is optional (a public client relies on PKCE alone).
	ClientID, ClientSecret string
	// RedirectURL is this gateway's callback as registered at the issuer:
	// https://ops.example.org/console/oidc/callback.
	RedirectURL string
	// Scopes asked for besides "openid" (default: profile, email).
	Scopes []string
	// CookieKey seals the login cookie (32 bytes). Empty: derived from the
	// client secret, or random per process for a public client (then the
	// callback must reach the gateway instance that started the sign-in).
	CookieKey []byte
}

const (
	loginCookie     = "demarche_oidc_login"
	loginCookiePath = "/console/oidc/"
	loginTTL        = 10 * time.Minute
)

// oidcLogin is the console's client of the issuer.
type oidcLogin struct {
	oauth      oauth2.Config
	idv        *oidc.IDTokenVerifier
	aead       cipher.AEAD
	secure     bool
	endSession string
	afterOut   string // where the issuer sends the browser after signing out
}

// newOIDCLogin reads the issuer's discovery document and prepares the
// client. It fails with the setting to fix.
func newOIDCLogin(ctx context.Context, cfg ConsoleOIDC) (*oidcLogin, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("console sign-in: the OIDC issuer URL is missing (--oidc-issuer)")
	case cfg.ClientID == "":
		return nil, errors.New("console sign-in: the client id is missing (--console-client-id)")
	}
	ru, err := url.Parse(cfg.RedirectURL)
	if err != nil || (ru.Scheme != "https" && ru.Scheme != "http") || ru.Host == "" || ru.Path != "/console/oidc/callback" {
		return nil, fmt.Errorf("console sign-in: --console-redirect-url %q must be this gateway's absolute URL ending in /console/oidc/callback", cfg.RedirectURL)
	}
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("console sign-in: issuer %s: %w", cfg.Issuer, err)
	}
	key := cfg.CookieKey
	switch {
	case len(key) == 0 && cfg.ClientSecret != "":
		if key, err = hkdf.Key(sha256.New, []byte(cfg.ClientSecret), nil, "demarche console login cookie", 32); err != nil {
			return nil, fmt.Errorf("console sign-in: %w", err)
		}
	case len(key) == 0:
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("console sign-in: %w", err)
		}
	case len(key) != 32:
		return nil, fmt.Errorf("console sign-in: the cookie key must be 32 bytes, not %d", len(key))
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("console sign-in: %w", err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, fmt.Errorf("console sign-in: %w", err)
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{"profile", "email"}
	}
	var disc struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = p.Claims(&disc) // end_session_endpoint is optional in discovery: without it, sign-out is local only
	return &oidcLogin{
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, scopes...)},
		idv:        p.VerifierContext(context.WithoutCancel(ctx), &oidc.Config{ClientID: cfg.ClientID}),
		aead:       aead,
		secure:     ru.Scheme == "https",
		endSession: disc.EndSession,
		afterOut:   (&url.URL{Scheme: ru.Scheme, Host: ru.Host, Path: "/console/signin"}).String(),
	}, nil
}

// loginState is what the login cookie carries from the start of a sign-in
// to its callback.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"r,omitempty"`
	Expires  int64  `json:"e"`
}

func (o *oidcLogin) seal(ls loginState) (string, error) {
	b, err := json.Marshal(ls)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, o.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(o.aead.Seal(nonce, nonce, b, []byte(loginCookie))), nil
}

func (o *oidcLogin) open(v string) (loginState, error) {
	var ls loginState
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < o.aead.NonceSize() {
		return ls, errors.New("unreadable")
	}
	plain, err := o.aead.Open(nil, b[:o.aead.NonceSize()], b[o.aead.NonceSize():], []byte(loginCookie))
	if err != nil {
		return ls, errors.New("not sealed by this console")
	}
	if err := json.Unmarshal(plain, &ls); err != nil {
		return ls, errors.New("unreadable")
	}
	if time.Now().Unix() > ls.Expires {
		return ls, errors.New("expired")
	}
	return ls, nil
}

func randomString() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// oidcStart begins a sign-in: the login cookie, then the issuer.
func (c *console) oidcStart(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	o := c.s.oidc
	if o == nil {
		http.NotFound(w, r)
		return
	}
	ls := loginState{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(),
		Next: safeNext(r.URL.Query().Get("next")), Expires: time.Now().Add(loginTTL).Unix()}
	v, err := o.seal(ls)
	if err != nil {
		c.render(w, r, http.StatusInternalServerError, "signin", nil, c.signinData(r, "the sign-in could not be started; try again"))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: v, Path: loginCookiePath, MaxAge: int(loginTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: o.secure})
	http.Redirect(w, r, o.oauth.AuthCodeURL(ls.State, oidc.Nonce(ls.Nonce), oauth2.S256ChallengeOption(ls.Verifier)), http.StatusSeeOther)
}

// oauthCode keeps an issuer's error code printable (it is echoed on the
// page): letters, digits, '_' and '-' only.
var oauthCode = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func printableCode(s string) string {
	if oauthCode.MatchString(s) {
		return s
	}
	return "unknown_error"
}

// oidcCallback finishes a sign-in. Every refusal is a sign-in page saying
// which check failed; none names a token, a code or a verifier.
func (c *console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	o := c.s.oidc
	if o == nil {
		http.NotFound(w, r)
		return
	}
	refuse := func(status int, why string, fields ...zap.Field) {
		c.s.log.Info("console sign-in refused", append(fields, zap.String("reason", why))...)
		c.render(w, r, status, "signin", nil, c.signinData(r, "Sign-in refused: "+why+". Start again."))
	}
	// The login cookie is used once, whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: loginCookiePath, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: o.secure})
	ck, err := r.Cookie(loginCookie)
	if err != nil || ck.Value == "" {
		refuse(http.StatusBadRequest, "this sign-in was not started in this browser, or was already used")
		return
	}
	ls, err := o.open(ck.Value)
	if err == nil && (ls.State == "" || ls.Nonce == "" || ls.Verifier == "") {
		err = errors.New("incomplete")
	}
	if err != nil {
		refuse(http.StatusBadRequest, "the sign-in's state cookie is "+err.Error())
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(ls.State)) != 1 {
		refuse(http.StatusBadRequest, "the answer's state does not match this sign-in (an answer meant for another sign-in)")
		return
	}
	if e := q.Get("error"); e != "" {
		refuse(http.StatusUnauthorized, "the identity provider answered "+printableCode(e))
		return
	}
	code := q.Get("code")
	if code == "" {
		refuse(http.StatusBadRequest, "the identity provider's answer has no code")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(ls.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			refuse(http.StatusUnauthorized, "the identity provider refused the code ("+printableCode(re.ErrorCode)+")", zap.Int("status", re.Response.StatusCode))
			return
		}
		refuse(http.StatusServiceUnavailable, "the identity provider's token endpoint did not answer")
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		refuse(http.StatusUnauthorized, "the identity provider sent no ID token")
		return
	}
	idt, err := o.idv.Verify(ctx, rawID)
	if err != nil {
		refuse(http.StatusUnauthorized, "the ID token does not verify: "+idTokenReason(err))
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(ls.Nonce)) != 1 {
		refuse(http.StatusUnauthorized, "the ID token's nonce is not this sign-in's (a replayed token)")
		return
	}
	// The session is a token the API takes, for the same subject.
	var session string
	var p *authn.Principal
	for _, cand := range []string{tok.AccessToken, rawID} {
		if cand == "" {
			continue
		}
		if got, err := c.s.authn.Verify(ctx, cand); err == nil && got.Subject == idt.Subject {
			session, p = cand, got
			break
		}
	}
	if session == "" {
		refuse(http.StatusUnauthorized, "the identity provider's tokens are not for the Démarche API (the access token must be a JWT for the API's audience, with the same subject as the ID token)",
			zap.String("subject", idt.Subject))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: session, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: o.secure || r.TLS != nil})
	c.s.log.Info("console sign-in", zap.String("principal", p.Subject))
	next := ls.Next
	if next == "" {
		next = "/console/"
	}
	// The browser arrives here from the issuer's site: a redirect would not
	// carry the SameSite=Strict session cookie, a page of this site that
	// moves on does.
	c.render(w, r, http.StatusOK, "signedin", nil, map[string]any{"Title": "Signed in", "Refresh": next, "Name": p.Name})
}

// idTokenReason says why an ID token was refused without echoing it.
func idTokenReason(err error) string {
	var expired *oidc.TokenExpiredError
	switch msg := err.Error(); {
	case errors.As(err, &expired):
		return "it has expired"
	case strings.Contains(msg, "audience"):
		return "it is for another client"
	case strings.Contains(msg, "issuer"):
		return "it is from another issuer"
	case strings.Contains(msg, "signature"), strings.Contains(msg, "key"):
		return "its signature does not verify"
	}
	return "it is malformed"
}

// signoutTarget is the issuer's end-session address (OpenID Connect
// RP-initiated logout), offered after signing out of the console so the
// issuer's session can end too ("" : the issuer has none).
func (o *oidcLogin) signoutTarget() string {
	if o == nil || o.endSession == "" {
		return ""
	}
	u, err := url.Parse(o.endSession)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", o.oauth.ClientID)
	q.Set("post_logout_redirect_uri", o.afterOut)
	u.RawQuery = q.Encode()
	return u.String()
}
