package gateway

// The operations-centre console: server-rendered pages served by the
// gateway, for people in a browser. It is one more consumer of the API, not a
// second door:
//
//   - a session is a cookie holding the same bearer token the API takes
//     (HttpOnly, SameSite=Strict), verified on every request by the same
//     verifier;
//   - reads use the same visibility rules as the API (app.Crisis, which also
//     records reads of restricted crises in the audit chain, and app.List's
//     clearance filter);
//   - writes (opening a crisis, decisions, controls, sharing) call the same
//     application layer as the API's routes (services/gateway/app), so the
//     policy table, the four-eyes rule, idempotency keys and every other
//     rule answer exactly as they do over HTTP, and a refusal is shown with
//     its rule;
//   - POST forms carry a per-session CSRF token and must come from the
//     console's own origin.
//
//	GET  /                          the board, or the sign-in page
//	GET  /console/signin            sign in (the organisation's issuer; dev: the demo identities; any: paste a token)
//	POST /console/signin            identity=NAME (dev only) or token=TOKEN
//	GET  /console/oidc/login        sign in with the issuer: authorization code + PKCE (console_oidc.go)
//	GET  /console/oidc/callback     the issuer's answer
//	POST /console/signout           (and, with an issuer, its end-session endpoint)
//	GET  /console/                  board of crises by stage
//	POST /console/crises            open a crisis (duty officer, head of department)
//	GET  /console/crises/{id}       crisis page
//	POST /console/crises/{id}/decide  record a decision (app.Decide, as the API's decision route)
//	POST /console/crises/{id}/control apply a control (app.Control, as the API's control routes)
//	POST /console/crises/{id}/sharing share or unshare with partners (app.Share, as the API's sharing route)
//	GET  /console/approvals         funding requests awaiting a decision, with four-eyes
//	GET  /console/warnings          warnings and scores per situation, each score explained (console_warnings.go)
//	GET  /console/situations/{country}/{type}  one situation's score and every signal in it
//	GET  /console/warning/scorecard the rules in force judged as forecasts beside two baselines (console_scorecard.go)
//	GET  /console/roster            the roster picker: experts by kind, expertise, language, region, availability (console_roster.go)
//	GET  /console/figures           warning-to-action and time per stage of closed, non-drill crises
//	GET  /console/crises/{id}/timeline  one feed: signals, decisions, controls, sharing, deadlines, comments (console_audit.go)
//	GET  /console/crises/{id}/report    the report: ?format=html (print), csv, json
//	POST /console/crises/{id}/comment   a comment on the timeline (app.Control, the comment control)
//	GET  /console/crises/{id}/audit     the auditor's view: chain status, runs, decision trail, Temporal UI, evidence
//	POST /console/crises/{id}/audit/verify|reconcile  run one; its result is recorded on the chain
//	GET  /console/crises/{id}/evidence  the evidence bundle (tar.gz)
//	GET  /console/events            server-sent events of the crises the principal may see
//	GET  /console/static/...        CSS and JavaScript

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
	"github.com/demarche/demarche/workflows/crisis"
)

//go:embed console/templates/*.html console/static/*
var consoleFiles embed.FS

// sessionCookie holds the signed-in principal's bearer token.
const sessionCookie = "demarche_session"

// console serves the pages; every read and write goes through the
// application layer (c.s.app), as the API's handlers do.
type console struct {
	s       *Service
	devAuth string // the dev issuer's token folder ("" : no dev sign-in)
	csrfKey []byte
	pages   map[string]*template.Template
	live    *liveHub
	kept    keptForms // refused forms, for their pages (console_forms.go)
}

// ConsoleRoute is one page or form of the console, as ConsoleRoutes lists
// it for the mux and the authorisation tests, which walk it: a new page gets
// its row there.
type ConsoleRoute struct {
	// Method and Pattern are the route as http.ServeMux takes it.
	Method, Pattern string
	// Action is the action of the policy table the page needs; empty when a
	// session is enough, or when the form's use case checks its own action
	// in the application layer (opening a crisis, decisions, controls,
	// sharing).
	Action authz.Action
	// Public pages (sign-in) need no session.
	Public bool
	// open serves a public page, page one behind a session.
	open func(c *console, w http.ResponseWriter, r *http.Request)
	page func(c *console, w http.ResponseWriter, r *http.Request, u *user)
}

// ConsoleRoutes is every route of the console (static files aside).
func ConsoleRoutes() []ConsoleRoute {
	return []ConsoleRoute{
		{Method: "GET", Pattern: "/{$}", Public: true, open: (*console).root},
		{Method: "GET", Pattern: "/console/signin", Public: true, open: (*console).signinPage},
		{Method: "POST", Pattern: "/console/signin", Public: true, open: (*console).signin},
		{Method: "GET", Pattern: "/console/oidc/login", Public: true, open: (*console).oidcStart},
		{Method: "GET", Pattern: "/console/oidc/callback", Public: true, open: (*console).oidcCallback},
		{Method: "POST", Pattern: "/console/signout", page: (*console).signout},
		{Method: "GET", Pattern: "/console/{$}", Action: authz.ReadCrises, page: (*console).board},
		{Method: "POST", Pattern: "/console/crises", page: (*console).openCrisis}, // POST /v1/crises
		{Method: "GET", Pattern: "/console/crises/{id}", Action: authz.ReadCrises, page: (*console).crisisPage},
		{Method: "POST", Pattern: "/console/crises/{id}/decide", page: (*console).decide},   // POST /v1/crises/{id}/decisions
		{Method: "POST", Pattern: "/console/crises/{id}/control", page: (*console).control}, // POST /v1/crises/{id}/controls/{control}
		{Method: "POST", Pattern: "/console/crises/{id}/sharing", page: (*console).sharing}, // POST /v1/crises/{id}/sharing
		{Method: "POST", Pattern: "/console/crises/{id}/claim", page: (*console).claim},     // POST|DELETE /v1/crises/{id}/claims/{kind} (the role checked there)
		{Method: "GET", Pattern: "/console/approvals", Action: authz.ReadCrises, page: (*console).approvals},
		{Method: "GET", Pattern: "/console/warnings", Action: authz.ReadScores, page: (*console).warnings},
		{Method: "GET", Pattern: "/console/situations/{country}/{type}", Action: authz.ReadScores, page: (*console).situation},
		{Method: "GET", Pattern: "/console/situations/{key}", Action: authz.ReadScores, page: (*console).situationHistory}, // console_situations.go
		{Method: "GET", Pattern: "/console/warning/scorecard", Action: authz.ReadScores, page: (*console).scorecard},       // console_scorecard.go
		{Method: "GET", Pattern: "/console/figures", Action: authz.ReadCrises, page: (*console).figures},
		{Method: "GET", Pattern: "/console/roster", Action: authz.ReadRoster, page: (*console).roster}, // console_roster.go
		{Method: "GET", Pattern: "/console/events", Action: authz.ReadCrises, page: (*console).events},
		// One timeline and the report (console_audit.go): GET /v1/crises/{id}/report
		{Method: "GET", Pattern: "/console/crises/{id}/timeline", Action: authz.ReadCrises, page: (*console).timeline},
		{Method: "GET", Pattern: "/console/crises/{id}/report", Action: authz.ReadCrises, page: (*console).report},
		{Method: "POST", Pattern: "/console/crises/{id}/comment", page: (*console).comment}, // POST /v1/crises/{id}/controls/comment
		// The auditor's view (console_audit.go): /v1/audit/...
		{Method: "GET", Pattern: "/console/crises/{id}/audit", Action: authz.Audit, page: (*console).auditPage},
		{Method: "POST", Pattern: "/console/crises/{id}/audit/verify", Action: authz.Audit, page: (*console).auditVerify},
		{Method: "POST", Pattern: "/console/crises/{id}/audit/reconcile", Action: authz.Audit, page: (*console).auditReconcile},
		{Method: "GET", Pattern: "/console/crises/{id}/evidence", Action: authz.Audit, page: (*console).evidence},
		{Method: "GET", Pattern: "/console/search", Action: authz.ReadCrises, page: (*console).search},    // console_search.go; GET /v1/crises
		{Method: "GET", Pattern: "/console/lessons", Action: authz.ReadLessons, page: (*console).lessons}, // GET /v1/lessons
		{Method: "GET", Pattern: "/console/drills", Action: authz.OpenDrill, page: (*console).drills},
		{Method: "POST", Pattern: "/console/drills", Action: authz.OpenDrill, page: (*console).openDrill}, // POST /v1/crises with drill settings
	}
}

// mountConsole adds the console's routes to the gateway's mux.
func (s *Service) mountConsole(mux *http.ServeMux) {
	c := &console{s: s, devAuth: s.devAuthDir, csrfKey: make([]byte, 32)}
	if _, err := rand.Read(c.csrfKey); err != nil {
		panic(err)
	}
	c.pages = parsePages()
	c.live = newLiveHub(s)
	static, _ := fs.Sub(consoleFiles, "console/static") // an embedded folder: Sub cannot fail on it
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", cacheStatic(http.FileServerFS(static))))
	for _, rt := range ConsoleRoutes() {
		if rt.Public {
			mux.HandleFunc(rt.Method+" "+rt.Pattern, func(w http.ResponseWriter, r *http.Request) { rt.open(c, w, r) })
			continue
		}
		mux.HandleFunc(rt.Method+" "+rt.Pattern, c.session(rt.Action, func(w http.ResponseWriter, r *http.Request, u *user) { rt.page(c, w, r, u) }))
	}
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// user is the signed-in principal of one request, with its token (for the
// API) and its CSRF token (for its forms).
type user struct {
	*authn.Principal
	token string
	CSRF  string
}

// May reports whether the user's roles allow an action of the policy table.
func (u *user) May(action string) bool { return authz.Allowed(authz.Action(action), u.Roles) }

// HasRole reports whether the user holds a role (by slug).
func (u *user) HasRole(slug string) bool {
	r, err := demarchev1.ParseRole(slug)
	return err == nil && u.Has(r)
}

// RoleNames are the user's roles in words.
func (u *user) RoleNames() string {
	names := make([]string, len(u.Roles))
	for i, r := range u.Roles {
		names[i] = words(r.Slug())
	}
	return strings.Join(names, ", ")
}

// session authenticates the cookie's token with the API's verifier; pages
// without a valid session go to the sign-in page. POST requests must carry
// the session's CSRF token and come from this origin.
func (c *console) session(action authz.Action, h func(w http.ResponseWriter, r *http.Request, u *user)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := c.user(r)
		if err != nil {
			if r.Method == http.MethodGet && r.URL.Path != "/console/events" {
				next := url.QueryEscape(r.URL.RequestURI())
				if ck, err := r.Cookie(sessionCookie); err == nil && ck.Value != "" && c.s.oidc != nil {
					// A session that ended (issuers' tokens last minutes):
					// back through the issuer, which signs a person with a
					// session of its own in again without a question.
					http.Redirect(w, r, "/console/oidc/login?next="+next, http.StatusSeeOther)
					return
				}
				http.Redirect(w, r, "/console/signin?next="+next, http.StatusSeeOther)
				return
			}
			if r.Method == http.MethodPost {
				// A form sent after the session ended: back to sign-in, then
				// to the page the form was on, where the browser's draft of
				// it (console.js) is put back; nothing is lost, nothing sent.
				next := url.QueryEscape(formPage(r.URL.Path))
				if ck, err := r.Cookie(sessionCookie); err == nil && ck.Value != "" && c.s.oidc != nil {
					http.Redirect(w, r, "/console/oidc/login?next="+next, http.StatusSeeOther)
					return
				}
				http.Redirect(w, r, "/console/signin?expired=1&next="+next, http.StatusSeeOther)
				return
			}
			http.Error(w, "sign in again: "+err.Error(), http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			if !c.s.sameOrigin(r) || !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(u.CSRF)) {
				http.Error(w, "refused: this form did not come from this console session (CSRF check); reload the page and try again", http.StatusForbidden)
				return
			}
		}
		setSecurityHeaders(w)
		if action != "" {
			if err := authz.Check(action, u.Principal); err != nil {
				c.s.log.Info("console: refused", zap.String("principal", u.Subject), zap.String("action", string(action)), zap.String("path", r.URL.Path))
				if r.URL.Path == "/console/events" {
					http.Error(w, err.Error(), http.StatusForbidden)
					return
				}
				c.render(w, r, http.StatusForbidden, "error", u, map[string]any{"Title": "Not for your roles", "Message": "This page is not for your roles: " + err.Error() + "."})
				return
			}
		}
		h(w, r, u)
	}
}

func (c *console) user(r *http.Request) (*user, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, fmt.Errorf("%w: not signed in", errs.ErrUnauthenticated)
	}
	p, err := c.s.authn.Verify(r.Context(), ck.Value)
	if err != nil {
		return nil, err
	}
	return &user{Principal: p, token: ck.Value, CSRF: c.csrf(ck.Value)}, nil
}

// csrf is the session's form token: a MAC of the session's token under a key
// of this gateway process (a restart asks for a reload, never a new sign-in).
func (c *console) csrf(token string) string {
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte(token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (c *console) root(w http.ResponseWriter, r *http.Request) {
	if _, err := c.user(r); err != nil {
		http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// devIdentity is a demo identity offered on the dev sign-in page.
type devIdentity struct {
	Subject, Name, About, Roles, Clearance string
}

func (c *console) devIdentities() []devIdentity {
	if c.devAuth == "" {
		return nil
	}
	var out []devIdentity
	for _, id := range authn.DevIdentities {
		if _, err := os.Stat(filepath.Join(c.devAuth, id.Subject+".token")); err != nil {
			continue
		}
		roles := make([]string, len(id.Roles))
		for i, r := range id.Roles {
			roles[i] = words(r)
		}
		out = append(out, devIdentity{Subject: id.Subject, Name: id.Name, About: id.About, Roles: strings.Join(roles, ", "), Clearance: id.Clearance})
	}
	return out
}

func (c *console) signinPage(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	// A refused sign-in came back here by a redirect (signinRefused).
	msg := ""
	if k := c.kept.get("", r.URL.Query().Get("failed")); k != nil {
		msg = k.Error
	}
	c.render(w, r, http.StatusOK, "signin", nil, c.signinData(r, msg))
}

// signinData is what the sign-in page shows: the issuer's sign-in when one
// is configured, the demo identities in dev, the token form always.
func (c *console) signinData(r *http.Request, errMsg string) map[string]any {
	next := safeNext(r.URL.Query().Get("next"))
	if next == "" && r.Method == http.MethodPost {
		next = safeNext(r.PostFormValue("next"))
	}
	d := map[string]any{"Title": "Sign in", "Dev": c.devIdentities(), "Next": next, "OIDC": c.s.oidc != nil,
		"OIDCStart": "/console/oidc/login"}
	if next != "" {
		d["OIDCStart"] = "/console/oidc/login?next=" + url.QueryEscape(next)
	}
	if errMsg != "" {
		d["Error"] = errMsg
	}
	if r.URL.Query().Get("expired") != "" {
		d["Notice"] = "Your session ended before the form was sent: nothing was recorded. Sign in again to go back to the page; what you typed is kept in this browser and put back in the form."
	}
	if r.URL.Query().Get("signedout") != "" {
		d["Notice"] = "Signed out of the console."
		// The form's CSP (form-action 'self') keeps the sign-out inside the
		// console; the issuer's own session ends by this link.
		d["EndSession"] = c.s.oidc.signoutTarget()
	}
	return d
}

// signin sets the session cookie: a demo identity's token (dev issuer only)
// or a pasted token, verified first either way.
func (c *console) signin(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	if !c.s.sameOrigin(r) {
		http.Error(w, "refused: sign-in must come from this console", http.StatusForbidden)
		return
	}
	var token string
	if name := r.PostFormValue("identity"); name != "" {
		known := false
		for _, id := range c.devIdentities() {
			known = known || id.Subject == name
		}
		if !known {
			c.signinRefused(w, r, "no such demo identity (dev sign-in is offered only by `demarche dev`)")
			return
		}
		b, err := os.ReadFile(filepath.Join(c.devAuth, name+".token"))
		if err != nil {
			c.signinRefused(w, r, "the demo identity's token could not be read")
			return
		}
		token = strings.TrimSpace(string(b))
	} else {
		token = strings.TrimSpace(r.PostFormValue("token"))
	}
	if _, err := c.s.authn.Verify(r.Context(), token); err != nil {
		c.signinRefused(w, r, err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	next := safeNext(r.PostFormValue("next"))
	if next == "" {
		next = "/console/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// formPage is the page a console form is on, from the address it posts to:
// /console/crises/{id}/decide is on /console/crises/{id}; the board's forms
// on the board.
func formPage(path string) string {
	for _, suffix := range []string{"/decide", "/control", "/sharing"} {
		if p, ok := strings.CutSuffix(path, suffix); ok && strings.HasPrefix(p, "/console/crises/") {
			return p
		}
	}
	return "/console/"
}

// signinRefused sends a refused sign-in back to the sign-in page by a
// redirect (post/redirect/get: a reload never sends the token again). Only
// the reason is kept, never the token.
func (c *console) signinRefused(w http.ResponseWriter, r *http.Request, msg string) {
	id := c.kept.keepMessage("", "signin", msg)
	to := "/console/signin?failed=" + url.QueryEscape(id)
	if next := safeNext(r.PostFormValue("next")); next != "" {
		to += "&next=" + url.QueryEscape(next)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// safeNext keeps a redirect inside the console.
func safeNext(v string) string {
	if strings.HasPrefix(v, "/console/") && !strings.HasPrefix(v, "//") && !strings.Contains(v, "\\") && !strings.Contains(v, "/console/signin") {
		return v
	}
	return ""
}

func (c *console) signout(w http.ResponseWriter, r *http.Request, _ *user) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/signin?signedout=1", http.StatusSeeOther)
}

// ---- reads, with the API's visibility rules ---------------------------------

// visibleList lists the crises the user may see (app.List, as the API's
// GET /v1/crises).
func (c *console) visibleList(ctx context.Context, u *user, f crisis.Filter, limit int) ([]crisis.Summary, error) {
	return c.s.app.List(ctx, u.Principal, app.ListQuery{Filter: f, Limit: limit})
}

// state reads one crisis as the API's GET /v1/crises/{id} does (app.Crisis):
// not found when the user may not see it, and the read recorded when it is
// restricted, as a read of the crisis's console page.
func (c *console) state(r *http.Request, u *user, id string) (*demarchev1.CrisisState, error) {
	return c.s.app.Crisis(r.Context(), u.Principal, app.CrisisQuery{ID: id, Via: "GET /console/crises/" + id})
}

// states reads several crises (four at a time); those that cannot be read
// are left out.
func (c *console) states(r *http.Request, u *user, rows []crisis.Summary) []*demarchev1.CrisisState {
	out := make([]*demarchev1.CrisisState, len(rows))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, row := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			st, err := c.state(r, u, row.CrisisID)
			if err != nil {
				c.s.log.Debug("console: crisis not read", zap.String("crisis", row.CrisisID), zap.Error(err))
				return
			}
			out[i] = st
		}()
	}
	wg.Wait()
	return slices.DeleteFunc(out, func(st *demarchev1.CrisisState) bool { return st == nil })
}

// ---- writes, through the application layer ---------------------------------

// refusal is how the console shows an error of the application layer: the
// status the API would answer it with, and its message (the rule, the field).
func refusal(err error) (int, string) { return errs.HTTPStatus(err), err.Error() }

// update is what a console form names besides its message: the crisis, the
// form's hidden key (one per rendered form) as the request's idempotency
// key, as the API's Idempotency-Key header is, and the console's request
// for the audit trail.
func (c *console) update(r *http.Request, id string) app.Update {
	return app.Update{CrisisID: id, Key: r.PostFormValue("key"), Via: r.Method + " " + r.URL.Path}
}

// ---- rendering ---------------------------------------------------------------

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	User   *user
	Live   string // the events URL the page listens to ("" : none)
	Now    time.Time
	Error  string
	Notice string
	// Refresh moves the browser on to this console address (after sign-in).
	Refresh string
	Data    any
}

func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, u *user, data any) {
	pg := page{Nav: name, User: u, Now: time.Now(), Data: data}
	if m, ok := data.(map[string]any); ok {
		if e, ok := m["Error"].(string); ok {
			pg.Error = e
		}
		if n, ok := m["Notice"].(string); ok {
			pg.Notice = n
		}
		if l, ok := m["Live"].(string); ok {
			pg.Live = l
		}
		if t, ok := m["Title"].(string); ok {
			pg.Title = t
		}
		if n, ok := m["Refresh"].(string); ok {
			pg.Refresh = safeNext(n)
		}
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", pg); err != nil {
		c.s.log.Error("console: render", zap.String("page", name), zap.Error(err))
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // a failed write is a client gone away: no one to tell
}

// renderError answers an error as a page: 404 looks the same whether the
// crisis does not exist or the user may not see it.
func (c *console) renderError(w http.ResponseWriter, r *http.Request, u *user, err error) {
	status := errs.HTTPStatus(err)
	msg := err.Error()
	if errors.Is(err, errs.ErrNotFound) {
		msg = "No such crisis, or none you are cleared to see."
	}
	c.render(w, r, status, "error", u, map[string]any{"Title": http.StatusText(status), "Message": msg})
}

func parsePages() map[string]*template.Template {
	funcs := pageFuncs()
	out := map[string]*template.Template{}
	for _, name := range []string{"signin", "signedin", "board", "crisis", "approvals", "warnings", "situation", "situation-history", "scorecard", "figures", "roster", "error", "audit", "timeline", "search", "lessons", "drills"} {
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(consoleFiles,
			"console/templates/layout.html", "console/templates/parts.html", "console/templates/"+name+".html"))
	}
	return out
}

// pageFuncs are the functions the pages' templates (and the report's) call.
func pageFuncs() template.FuncMap {
	return template.FuncMap{
		"words":    words,
		"stage":    func(s demarchev1.Stage) string { return stageWords(s) },
		"ts":       formatTime,
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"human":    humanDuration,
		"lower":    strings.ToLower,
		"join":     strings.Join,
		"add":      func(a, b int) int { return a + b },
		"list":     func(v ...string) []string { return v },
		"kindname": kindWords,
		"usd":      groupThousands,
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		},
		"cap": func(s string) string {
			if s == "" {
				return s
			}
			return strings.ToUpper(s[:1]) + s[1:]
		},
	}
}

// words turns a slug into words ("good-offices" -> "good offices").
func words(slug string) string { return strings.ReplaceAll(slug, "-", " ") }

// stageWords names a stage in the report's words.
func stageWords(s demarchev1.Stage) string {
	switch s {
	case demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING:
		return "rapid-response funding"
	case demarchev1.Stage_STAGE_WARNING:
		return "early warning"
	case demarchev1.Stage_STAGE_FACT_FINDING:
		return "fact-finding"
	case demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP:
		return "sustained follow-up"
	case demarchev1.Stage_STAGE_UNSPECIFIED:
		return "—"
	}
	return words(s.Slug())
}

// groupThousands writes an amount as people read it: 1,250,000.
func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

// optionWords names a good-offices option in the report's words (the
// schema's (words) option: "démarche").
func optionWords(slug string) string {
	if o, err := demarchev1.ParseGoodOfficesOption(slug); err == nil {
		return demarchev1.EnumWords(o.Descriptor(), o.Number())
	}
	return words(slug)
}

// kindWords names a decision kind in plain words, as the schema's decision
// table does ("triage of the warning").
func kindWords(kind string) string {
	if f := demarchev1.DecisionFormOf(kind); f != nil {
		return f.Label
	}
	return words(kind)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

// humanDuration: "3d 4h", "2h 05m", "45s".
func humanDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d >= 24*time.Hour:
		s = fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		s = fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		s = fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d >= 10*time.Second || d == 0:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d >= time.Second:
		s = fmt.Sprintf("%.1fs", d.Seconds())
	default:
		s = fmt.Sprintf("%dms", d.Milliseconds())
	}
	if neg {
		return "-" + s
	}
	return s
}

// sortedStages orders stages as the lifecycle runs them.
func sortedStages(ss []demarchev1.Stage) []demarchev1.Stage {
	out := slices.Clone(ss)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
