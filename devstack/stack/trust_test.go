package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/gateway"
	"github.com/demarche/demarche/workflows/crisis"
)

// client is one principal talking to the gateway.
type apiCaller struct {
	t     *testing.T
	url   string
	token string
}

func (c apiCaller) call(method, path, body string, header ...string) (int, map[string]any, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if strings.EqualFold(header[i], "Host") {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out, string(b)
}

// TestTrust runs the trust rules on the real stack: the authorisation
// matrix over every route and role, the abuse cases that once worked, and
// confidentiality (lists, reads, decisions, audit of reads).
func TestTrust(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	as := func(subject string, claims ...authn.Claims) apiCaller {
		tok := ""
		switch {
		case len(claims) > 0:
			c := claims[0]
			c.Subject = subject
			var err error
			if tok, err = s.Issuer().Mint(c, time.Hour); err != nil {
				t.Fatal(err)
			}
		case subject != "":
			tok = readToken(t, s.TokenFile(subject))
		}
		return apiCaller{t: t, url: s.APIURL(), token: tok}
	}
	duty, analyst, ecowas := as("duty"), as("analyst"), as("ecowas")
	alice := as("alice", authn.Claims{Roles: []string{"desk-officer", "funding-officer", "duty-officer", "head-of-department", "mediation-support"}, Clearance: "restricted"})
	bob := as("bob", authn.Claims{Roles: []string{"funding-officer"}, Clearance: "restricted"})

	// open opens a crisis and answers its id (minted by the platform).
	open := func(c apiCaller, conf, shared string) string {
		t.Helper()
		body := fmt.Sprintf(`{"crisis": {"title": "Trust test", "countryCode": "NE", "crisisType": "CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE", "severity": 3, "confidentiality": %q, "sharedWith": [%s]}}`, conf, shared)
		code, out, raw := c.call("POST", "/v1/crises", body)
		if code != http.StatusCreated {
			t.Fatalf("open %s: %d %s", conf, code, raw)
		}
		return openedIDHTTP(t, out)
	}
	public := open(duty, "CONFIDENTIALITY_PUBLIC", "")
	shared := open(duty, "CONFIDENTIALITY_RESTRICTED", `"ECOWAS"`)
	quiet := open(duty, "CONFIDENTIALITY_CONFIDENTIAL", "")

	t.Run("matrix", func(t *testing.T) {
		// Each demo identity against each route (and each control): allowed
		// means anything but 401 and 403; refused means 403. No token and a
		// stranger's token are 401 everywhere.
		stranger, err := authn.LoadOrCreateIssuer(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		strangerTok, _ := stranger.Mint(authn.Claims{Subject: "duty", Roles: []string{"duty-officer"}}, time.Hour)
		type row struct {
			method, path, body string
			action             authz.Action
		}
		var rows []row
		for _, rt := range gateway.Routes() {
			path := strings.NewReplacer("{id}", public, "{country}", "NE", "{type}", "general", "{namespace}", s.Namespace(), "{kind}", "triage").Replace(rt.Pattern)
			switch rt.Pattern {
			case "/v1/crises/{id}/controls/{control}":
				for _, ctl := range []string{crisis.UpdateEscalate, crisis.UpdateDeEscalate, crisis.UpdateSkipStage, crisis.UpdateReopenStage, crisis.UpdatePartnerRole, crisis.UpdateWarn} {
					rows = append(rows, row{"POST", strings.Replace(path, "{control}", strings.TrimPrefix(ctl, "crisis."), 1), `{"reason": ""}`, authz.Action(ctl)})
				}
				// past the door, an empty comment is refused (400): nothing is written
				rows = append(rows, row{"POST", strings.Replace(path, "{control}", "comment", 1), `{"text": ""}`, authz.Comment})
			case "/v1/crises":
				if rt.Method == "POST" {
					rows = append(rows, row{"POST", path, `{"crisis": {"title": ""}}`, authz.OpenCrisis})
				} else {
					rows = append(rows, row{"GET", path, "", rt.Action})
				}
			case "/v1/crises/{id}/sharing":
				// past the door, the crisis refuses it (not shared with AU): nothing changes
				rows = append(rows, row{"POST", path, `{"reason": "matrix", "unshare": ["AU"]}`, authz.Share})
			case "/v1/crises/{id}/decisions":
				rows = append(rows, row{"POST", path, `{"rationale": "x", "triage": {"assessment": "x"}}`, authz.Decide})
			default:
				rows = append(rows, row{rt.Method, path, `{}`, rt.Action})
			}
		}
		for _, id := range authn.DevIdentities {
			who := as(id.Subject)
			var roles []demarchev1.Role
			for _, r := range id.Roles {
				role, _ := demarchev1.ParseRole(r)
				roles = append(roles, role)
			}
			for _, r := range rows {
				code, _, raw := who.call(r.method, r.path, r.body)
				allowed := authz.Allowed(r.action, roles)
				if r.action == authz.Decide && allowed {
					// a triage decision is for a duty officer only
					allowed = authz.Allowed(authz.Decide, roles) && strings.Contains(strings.Join(id.Roles, ","), "duty-officer")
				}
				// A refusal by the policy table names the roles that may; a
				// 403 from a service's own rule (not shared with a partner)
				// is an answer past the door.
				byPolicy := code == http.StatusForbidden && strings.Contains(raw, "needs one of the roles")
				switch {
				case code == http.StatusUnauthorized:
					t.Errorf("%s %s %s: 401 with a valid token: %s", id.Subject, r.method, r.path, raw)
				case id.Subject == "unowa" && code == http.StatusNotFound && authz.Allowed(r.action, roles):
					// past the door: the crisis is not led by UNOWA, so its
					// field officer cannot see it (TestFieldPresenceReport)
				case allowed && byPolicy:
					t.Errorf("%s %s %s: 403, but %s is allowed %s: %s", id.Subject, r.method, r.path, id.Subject, r.action, raw)
				case !allowed && !byPolicy && !(r.action == authz.Decide && code == http.StatusForbidden):
					t.Errorf("%s %s %s: %d, want 403 (%s is not allowed %s): %s", id.Subject, r.method, r.path, code, id.Subject, r.action, raw)
				}
			}
		}
		for _, r := range rows {
			for name, c := range map[string]apiCaller{"no token": as(""), "stranger's token": {t: t, url: s.APIURL(), token: strangerTok}} {
				if code, _, _ := c.call(r.method, r.path, r.body); code != http.StatusUnauthorized {
					t.Errorf("%s %s with %s: %d, want 401", r.method, r.path, name, code)
				}
			}
			// Another host name (DNS rebinding): 421 before the route, whoever asks.
			if code, _, raw := duty.call(r.method, r.path, r.body, "Host", "evil.example", "Origin", "http://evil.example"); code != http.StatusMisdirectedRequest {
				t.Errorf("%s %s with Host evil.example: %d, want 421: %s", r.method, r.path, code, raw)
			}
		}
	})

	t.Run("console", func(t *testing.T) {
		// Each demo identity against each page of the console: a page its
		// roles allow answers 200, another 403 naming the roles that may; no
		// session or a stranger's token is sent to sign in (401 for the live
		// stream). The console's forms post through the API's routes, whose
		// rows are in the matrix above.
		stranger, err := authn.LoadOrCreateIssuer(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		strangerTok, _ := stranger.Mint(authn.Claims{Subject: "duty", Roles: []string{"duty-officer"}}, time.Hour)
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		get := func(path, token string) (int, string) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", s.APIURL()+path, nil)
			if token != "" {
				req.AddCookie(&http.Cookie{Name: "demarche_session", Value: token})
			}
			resp, err := noFollow.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			defer resp.Body.Close()
			if resp.Header.Get("Content-Type") == "text/event-stream" {
				return resp.StatusCode, "" // the live stream stays open: its status says enough
			}
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		for _, rt := range gateway.ConsoleRoutes() {
			if rt.Public || rt.Method != "GET" {
				continue
			}
			path := strings.NewReplacer("{$}", "", "{id}", public, "{country}", "NE", "{type}", "general", "{key}", "NE-general").Replace(rt.Pattern)
			for _, id := range authn.DevIdentities {
				var roles []demarchev1.Role
				for _, r := range id.Roles {
					role, _ := demarchev1.ParseRole(r)
					roles = append(roles, role)
				}
				if id.Subject == "ecowas" && strings.HasPrefix(path, "/console/crises/"+public) && rt.Action == authz.ReadCrises {
					continue // not shared with ECOWAS: 404, pinned under confidentiality
				}
				if id.Subject == "unowa" && strings.HasPrefix(path, "/console/crises/"+public) && rt.Action == authz.ReadCrises {
					continue // not led by UNOWA: 404, pinned in TestFieldPresenceReport
				}
				code, body := get(path, readToken(t, s.TokenFile(id.Subject)))
				allowed := rt.Action == "" || authz.Allowed(rt.Action, roles)
				switch {
				case allowed && code == http.StatusNotFound && rt.Pattern == "/console/situations/{key}":
					// allowed: the page answers that early warning has no such situation yet (no score), not 403
				case allowed && code != http.StatusOK:
					t.Errorf("%s GET %s: %d, want 200 (%s is allowed %s)", id.Subject, path, code, id.Subject, rt.Action)
				case !allowed && (code != http.StatusForbidden || !strings.Contains(body, "needs one of the roles")):
					t.Errorf("%s GET %s: %d, want 403 naming the roles (%s is not allowed %s)", id.Subject, path, code, id.Subject, rt.Action)
				}
			}
			want := http.StatusSeeOther
			if path == "/console/events" {
				want = http.StatusUnauthorized
			}
			for name, tok := range map[string]string{"no session": "", "a stranger's token": strangerTok} {
				if code, _ := get(path, tok); code != want {
					t.Errorf("GET %s with %s: %d, want %d", path, name, code, want)
				}
			}
		}
	})

	t.Run("abuse", func(t *testing.T) {
		abuse := open(duty, "CONFIDENTIALITY_PUBLIC", "")
		// A caller cannot supply the playbook or the drill policy.
		for _, body := range []string{
			`{"crisis": {"title": "x", "countryCode": "NE", "crisisType": "CRISIS_TYPE_GENERAL", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}, "playbook": {"name": "general", "phases": []}}`,
			`{"crisis": {"title": "x", "countryCode": "NE", "crisisType": "CRISIS_TYPE_GENERAL", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}, "drillPolicy": {"stageDuration": "1s"}}`,
		} {
			if code, _, raw := duty.call("POST", "/v1/crises", body); code != http.StatusBadRequest {
				t.Errorf("caller-supplied playbook or drill policy: %d %s", code, raw)
			}
		}
		// A drill needs the drill role; choosing a playbook needs head of department.
		drill := `{"crisis": {"title": "x", "countryCode": "NE", "crisisType": "CRISIS_TYPE_GENERAL", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}, "drill": {"decisionDelay": "1s", "timeScale": 0.001}}`
		if code, _, raw := alice.call("POST", "/v1/crises", drill); code != http.StatusForbidden || !strings.Contains(raw, "crisis.open-drill") {
			t.Errorf("a drill by a non-drill coordinator: %d %s", code, raw)
		}
		// The principal is the credential's: a header is ignored, a body naming another is refused.
		if code, _, raw := alice.call("POST", "/v1/crises/"+abuse+"/decisions", `{"principal": "bob", "rationale": "x", "triage": {"assessment": "x"}}`); code != http.StatusBadRequest || !strings.Contains(raw, "principal") {
			t.Errorf("a body naming another principal: %d %s", code, raw)
		}
		waitPendingHTTP(t, duty, abuse, "triage")
		if code, out, raw := alice.call("POST", "/v1/crises/"+abuse+"/decisions", `{"rationale": "credible", "triage": {"assessment": "x"}}`, "X-Demarche-Principal", "bob"); code != http.StatusOK || out["principal"] != "alice" {
			t.Fatalf("triage as alice with a bob header: %d %s", code, raw)
		}
		// Walk to funding and try self-approval through one client.
		for _, d := range []struct{ kind, body string }{
			{"good-offices", `{"rationale": "x", "goodOffices": {"option": "GOOD_OFFICES_OPTION_DEMARCHE"}}`},
			{"envoy-appointment", `{"rationale": "x", "envoyAppointment": {"envoy": "env-amara-diallo", "standbyTeam": ["sb-fatou-sow"]}}`},
			{"standby-team-deployed", `{"rationale": "x", "standbyTeamDeployed": {"location": "Niamey"}}`},
			{"funding-request", `{"rationale": "x", "fundingRequest": {"requestId": "FR-1", "fund": "flexible-financing", "amountUsd": 999000, "purpose": "x"}}`},
		} {
			waitPendingHTTP(t, duty, abuse, d.kind)
			if code, _, raw := alice.call("POST", "/v1/crises/"+abuse+"/decisions", d.body); code != http.StatusOK {
				t.Fatalf("%s: %d %s", d.kind, code, raw)
			}
		}
		waitPendingHTTP(t, duty, abuse, "funding-decision")
		approve := `{"rationale": "x", "fundingDecision": {"requestId": "FR-1", "approve": true}}`
		if code, _, raw := alice.call("POST", "/v1/crises/"+abuse+"/decisions", approve, "X-Demarche-Principal", "bob"); code != http.StatusUnprocessableEntity || !strings.Contains(raw, "rule four-eyes") {
			t.Fatalf("self-approval through one client: %d %s", code, raw)
		}
		if code, _, raw := analyst.call("POST", "/v1/crises/"+abuse+"/decisions", approve); code != http.StatusForbidden {
			t.Fatalf("approval by an analyst: %d %s", code, raw)
		}
		if code, out, raw := bob.call("POST", "/v1/crises/"+abuse+"/decisions", approve); code != http.StatusOK || out["principal"] != "bob" {
			t.Fatalf("approval by bob: %d %s", code, raw)
		}
	})

	t.Run("confidentiality", func(t *testing.T) {
		ids := func(c apiCaller) string {
			_, out, raw := c.call("GET", "/v1/crises", "")
			rows, ok := out["crises"].([]any)
			if !ok {
				t.Fatalf("list: %s", raw)
			}
			var got []string
			for _, r := range rows {
				got = append(got, r.(map[string]any)["crisisId"].(string))
			}
			return strings.Join(got, " ")
		}
		if got := ids(analyst); strings.Contains(got, shared) || strings.Contains(got, quiet) || !strings.Contains(got, public) {
			t.Errorf("analyst (public clearance) lists %q", got)
		}
		if got := ids(ecowas); got != shared {
			t.Errorf("ECOWAS lists %q, want only the crisis shared with it", got)
		}
		if got := ids(alice); !strings.Contains(got, shared) || strings.Contains(got, quiet) {
			t.Errorf("alice (restricted clearance) lists %q", got)
		}
		_, _, missing := analyst.call("GET", "/v1/crises/NE-NO-SUCH-CRISIS", "")
		for _, c := range []struct {
			who  apiCaller
			name string
			id   string
		}{{analyst, "analyst", shared}, {ecowas, "ecowas", quiet}, {alice, "alice", quiet}} {
			code, _, raw := c.who.call("GET", "/v1/crises/"+c.id, "")
			if code != http.StatusNotFound || strings.Replace(raw, c.id, "NE-NO-SUCH-CRISIS", 1) != missing {
				t.Errorf("%s reads %s: %d %s; want the same 404 as a crisis that does not exist (%s)", c.name, c.id, code, raw, missing)
			}
			if code, _, _ := c.who.call("POST", "/v1/crises/"+c.id+"/controls/warn", `{"warning": {"summary": "x", "severity": 2, "observedAt": "2026-11-28T00:00:00Z"}}`); code != http.StatusNotFound && code != http.StatusForbidden {
				t.Errorf("%s warns on %s it may not see: %d", c.name, c.id, code)
			}
		}
		// Opening a crisis under a hidden crisis's id answers as under an id
		// nobody holds: real crises' ids are minted, never chosen.
		probe := `{"crisis": {"id": "%s", "title": "x", "countryCode": "NE", "crisisType": "CRISIS_TYPE_GENERAL", "severity": 2, "confidentiality": "CONFIDENTIALITY_PUBLIC"}}`
		c1, _, r1 := alice.call("POST", "/v1/crises", fmt.Sprintf(probe, quiet))
		c2, _, r2 := alice.call("POST", "/v1/crises", fmt.Sprintf(probe, "NE-20000101-NOONE"))
		if c1 != http.StatusBadRequest || c1 != c2 || strings.ReplaceAll(r1, quiet, "NE-20000101-NOONE") != r2 {
			t.Errorf("POST /v1/crises with a hidden id: %d %s; with an unused one: %d %s", c1, r1, c2, r2)
		}
		if code, _, raw := ecowas.call("GET", "/v1/crises/"+shared, ""); code != http.StatusOK {
			t.Fatalf("ECOWAS reads the crisis shared with it: %d %s", code, raw)
		}
		// Every read of a restricted crisis is in its audit chain, with who read it.
		nc, _, err := natsx.Connect(s.NATSURLFor(natsauth.Gateway), "trust-test", zap.NewNop()) // chains are read through the gateway
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		waitFor(t, func() bool {
			chain, err := audit.FetchChain(context.Background(), nc, shared, "trust-test")
			if err != nil {
				return false
			}
			for _, r := range chain.GetRecords() {
				if r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_READ && r.GetPrincipal() == "ecowas" && strings.Contains(r.GetDetail(), "GET /v1/crises/"+shared) {
					return true
				}
			}
			return false
		})
	})
}

// openedIDHTTP is the id of the crisis POST /v1/crises answered (minted by
// the platform).
func openedIDHTTP(t *testing.T, out map[string]any) string {
	t.Helper()
	c, _ := out["crisis"].(map[string]any)
	id, _ := c["id"].(string)
	if id == "" {
		t.Fatalf("no crisis id in the answer: %v", out)
	}
	return id
}

// waitPendingHTTP waits until a crisis waits for a decision kind.
func waitPendingHTTP(t *testing.T, c apiCaller, id, kind string) {
	t.Helper()
	waitFor(t, func() bool {
		code, out, _ := c.call("GET", "/v1/crises/"+id, "")
		if code != http.StatusOK {
			return false
		}
		pending, _ := out["pendingDecisions"].([]any)
		for _, p := range pending {
			if p.(map[string]any)["kind"] == kind {
				return true
			}
		}
		return false
	})
}
