package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/ports"
	"github.com/demarche/demarche/pkg/webhooksig"
	"github.com/demarche/demarche/services/gateway"
)

// TestClaimsOnTheStack: a duty officer claims a pending decision, another
// sees the claim (through another gateway too) and can neither take it over
// nor release it, a person without the role is refused, the claim lapses by
// itself after the gateway's TTL, and a claim never stops a decision.
func TestClaimsOnTheStack(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	ctx := context.Background()
	port, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	// The duty officers' webhook, as an operations centre's channel.
	const secret = "duty-officers-webhook-secret"
	t.Setenv("DEMARCHE_TEST_DUTY_HOOK", secret)
	hook := &hookReceiver{secret: []byte(secret)}
	hooks := httptest.NewServer(hook)
	defer hooks.Close()
	// A second gateway whose claims lapse after two seconds (the stack's
	// own holds them for the default half hour): the lapse is watched
	// there. It sends the duty officers' webhook.
	short, err := gateway.Start(ctx, gateway.Config{Host: "127.0.0.1", Port: port, NATSURL: s.NATSURLFor(natsauth.Gateway),
		TemporalAddress: s.TemporalAddress(), Namespace: s.Namespace(), Verifier: s.Issuer().Verifier(), ClaimTTL: 2 * time.Second,
		RoleWebhooks: []gateway.RoleWebhook{{Role: "duty-officer", URL: hooks.URL, SecretEnv: "DEMARCHE_TEST_DUTY_HOOK"}}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer short.Stop()
	as := func(url, subject, name string, roles ...string) apiCaller {
		tok, err := s.Issuer().Mint(authn.Claims{Subject: subject, Name: name, Roles: roles, Clearance: "restricted"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return apiCaller{t: t, url: url, token: tok}
	}
	amara := as(short.URL(), "amara", "Amara Diallo", "duty-officer")
	ben := as(short.URL(), "ben", "Ben Okafor", "duty-officer")
	benMain := as(s.APIURL(), "ben", "Ben Okafor", "duty-officer")
	fo := as(short.URL(), "fiona", "Fiona Funds", "funding-officer")

	code, out, raw := amara.call("POST", "/v1/crises", `{"crisis": {"title": "Claims", "countryCode": "NE", "crisisType": "CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}}`)
	if code != http.StatusCreated {
		t.Fatalf("open: %d %s", code, raw)
	}
	id := openedIDHTTP(t, out)
	claims := "/v1/crises/" + id + "/claims"
	waitFor(t, func() bool {
		_, _, raw := amara.call("GET", "/v1/crises/"+id, "")
		return strings.Contains(raw, `"kind":"triage"`) || strings.Contains(raw, `"kind": "triage"`)
	})

	// The duty officers' webhook heard of the new crisis and of the
	// triage waiting for them, signed.
	for want := range map[string]bool{"crisis-opened": true, "decision-waiting|triage": true} {
		waitFor(t, func() bool { return hook.seen(id, want) })
	}
	if hook.bad() != 0 {
		t.Errorf("%d webhook deliveries with a bad signature", hook.bad())
	}

	if code, _, raw := amara.call("POST", claims+"/closure", ""); code != http.StatusForbidden {
		t.Errorf("a duty officer claims the closure (a head of department's): %d %s, want 403", code, raw)
	}
	if code, _, raw := amara.call("POST", claims+"/no-such-kind", ""); code != http.StatusNotFound {
		t.Errorf("claiming a decision that does not wait: %d %s", code, raw)
	}
	if code, _, raw := fo.call("POST", claims+"/triage", ""); code != http.StatusForbidden {
		t.Errorf("a funding officer claims triage: %d %s, want 403", code, raw)
	}
	if code, c, raw := amara.call("POST", claims+"/triage", ""); code != http.StatusOK || c["name"] != "Amara Diallo" || c["holder"] != "amara" {
		t.Fatalf("amara claims triage: %d %s", code, raw)
	}
	// The other duty officer sees it, on either gateway, and on the page.
	for _, c := range []apiCaller{ben, benMain} {
		if code, _, raw := c.call("GET", claims, ""); code != http.StatusOK || !strings.Contains(raw, `"name":"Amara Diallo"`) || !strings.Contains(raw, `"kind":"triage"`) {
			t.Errorf("ben reads the claims at %s: %d %s", c.url, code, raw)
		}
	}
	if code, body := pageWithSession(t, s.APIURL()+"/console/crises/"+id, benMain.token); code != http.StatusOK || !strings.Contains(body, "Claimed by Amara Diallo") {
		t.Errorf("the crisis page does not show amara's claim to ben: %d", code)
	}
	if code, _, raw := ben.call("POST", claims+"/triage", ""); code != http.StatusConflict || !strings.Contains(raw, "Amara Diallo") {
		t.Errorf("ben takes over amara's claim: %d %s, want 409 naming her", code, raw)
	}
	if code, _, raw := ben.call("DELETE", claims+"/triage", ""); code != http.StatusForbidden {
		t.Errorf("ben releases amara's claim: %d %s, want 403", code, raw)
	}
	// It lapses by itself.
	waitFor(t, func() bool {
		_, _, raw := ben.call("GET", claims, "")
		return strings.Contains(raw, `"claims":[]`)
	})
	if code, _, raw := ben.call("POST", claims+"/triage", ""); code != http.StatusOK {
		t.Fatalf("ben claims the lapsed decision: %d %s", code, raw)
	}
	if code, _, raw := ben.call("DELETE", claims+"/triage", ""); code != http.StatusNoContent {
		t.Fatalf("ben releases his claim: %d %s", code, raw)
	}
	// Advisory: with amara's claim live, ben still decides.
	if code, _, raw := amara.call("POST", claims+"/triage", ""); code != http.StatusOK {
		t.Fatalf("amara claims again: %d %s", code, raw)
	}
	if code, _, raw := ben.call("POST", "/v1/crises/"+id+"/decisions", `{"rationale": "credible reports", "triage": {"assessment": "parliament dissolved"}}`); code != http.StatusOK {
		t.Fatalf("ben's triage with amara's claim live: %d %s", code, raw)
	}
}

// pageWithSession reads a console page with a session of a minted token.
func pageWithSession(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.AddCookie(&http.Cookie{Name: "demarche_session", Value: token})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body) // a short read fails the test's assertion on the page
	return resp.StatusCode, string(b)
}

// hookReceiver is a role webhook's receiver: it verifies each delivery's
// signature and keeps the bodies.
type hookReceiver struct {
	secret []byte
	mu     sync.Mutex
	kinds  map[string]bool
	bads   int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := webhooksig.Verify(h.secret, r.Header.Get(webhooksig.Header), b, time.Now(), time.Minute); err != nil {
		h.bads++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var n map[string]any
	if err := json.Unmarshal(b, &n); err != nil || n["text"] == "" {
		h.bads++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if h.kinds == nil {
		h.kinds = map[string]bool{}
	}
	h.kinds[fmt.Sprint(n["crisis"], "|", n["kind"])] = true
	if d, ok := n["detail"].(string); ok {
		h.kinds[fmt.Sprint(n["crisis"], "|", n["kind"], "|", d)] = true
	}
	w.WriteHeader(http.StatusNoContent)
}

// seen: a delivery for the crisis of "kind" or "kind|detail".
func (h *hookReceiver) seen(crisis, what string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.kinds[crisis+"|"+what]
}

func (h *hookReceiver) bad() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bads
}
