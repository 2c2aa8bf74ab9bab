package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authn"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestConsoleSession pins the console's session rules without a backend:
// the dev sign-in only with the dev token folder, the cookie's attributes,
// a forged or missing cookie sends to the sign-in page, and POST forms need
// the session's CSRF token and this origin.
func TestConsoleSession(t *testing.T) {
	dir := t.TempDir()
	iss, err := authn.LoadOrCreateIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authn.WriteDevTokens(dir, iss); err != nil {
		t.Fatal(err)
	}
	dev := httptest.NewServer((&Service{log: zap.NewNop(), authn: iss.Verifier(), devAuthDir: dir}).Handler())
	defer dev.Close()
	prod := httptest.NewServer((&Service{log: zap.NewNop(), authn: iss.Verifier()}).Handler())
	defer prod.Close()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(srv *httptest.Server, path, cookie string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 1<<16)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, b.String()
	}
	post := func(srv *httptest.Server, path, cookie, origin string, form url.Values) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	if resp, _ := get(dev, "/", ""); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/signin" {
		t.Fatalf("/ without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := get(dev, "/console/signin", ""); !strings.Contains(body, `id="signin-duty"`) || !strings.Contains(body, `id="signin-approver"`) {
		t.Fatal("the dev sign-in page does not list the demo identities")
	}
	if _, body := get(prod, "/console/signin", ""); strings.Contains(body, "signin-duty") {
		t.Fatal("a gateway without the dev issuer offers the demo identities")
	}
	// A refused sign-in goes back to the sign-in page by a redirect (a
	// reload never posts again), with no session and the reason shown.
	resp0 := post(prod, "/console/signin", "", prod.URL, url.Values{"identity": {"duty"}})
	if loc := resp0.Header.Get("Location"); resp0.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/signin?failed=") || len(resp0.Cookies()) != 0 {
		t.Fatalf("dev sign-in on a gateway without the dev issuer: %d %s %v", resp0.StatusCode, loc, resp0.Cookies())
	} else if _, body := get(prod, loc, ""); !strings.Contains(body, "no such demo identity") {
		t.Fatalf("the refused sign-in's reason is not shown:\n%s", body)
	}
	if _, body := get(prod, "/console/signin?failed=not-an-id", ""); strings.Contains(body, `role="alert"`) {
		t.Fatal("an unknown refusal id shows an error")
	}
	if resp := post(dev, "/console/signin", "", "https://evil.example", url.Values{"identity": {"duty"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin sign-in: %d", resp.StatusCode)
	}
	resp := post(dev, "/console/signin", "", dev.URL, url.Values{"identity": {"duty"}})
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			ck = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Fatalf("dev sign-in: %d, cookie %+v", resp.StatusCode, ck)
	}

	// A forged token is no session.
	other, _ := authn.LoadOrCreateIssuer(t.TempDir())
	forged, _ := other.Mint(authn.Claims{Subject: "duty", Roles: []string{"duty-officer"}}, time.Hour)
	if resp, _ := get(dev, "/console/approvals", forged); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/signin") {
		t.Fatalf("a forged session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A form sent without a session goes to sign-in (nothing done), and from
	// there back to the page the form was on, where the browser's draft waits.
	if resp := post(dev, "/console/crises", forged, dev.URL, url.Values{}); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/signin?expired=1&next=%2Fconsole%2F" {
		t.Fatalf("POST with a forged session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := post(dev, "/console/crises/CR-1/decide", forged, dev.URL, url.Values{}); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/signin?expired=1&next=%2Fconsole%2Fcrises%2FCR-1" {
		t.Fatalf("a decision with a forged session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := get(dev, "/console/signin?expired=1&next=%2Fconsole%2Fcrises%2FCR-1", ""); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Your session ended") || !strings.Contains(body, `value="/console/crises/CR-1"`) {
		t.Fatalf("the sign-in page after a session ended: %d\n%s", resp.StatusCode, body)
	}

	// Forms need the session's CSRF token and this origin.
	form := url.Values{"title": {"x"}, "country": {"GN"}, "type": {"general"}}
	if resp := post(dev, "/console/crises", ck.Value, dev.URL, form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST without a CSRF token: %d", resp.StatusCode)
	}
	form.Set("csrf", "not-the-token")
	if resp := post(dev, "/console/crises/X/decide", ck.Value, dev.URL, form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST with a wrong CSRF token: %d", resp.StatusCode)
	}
	if resp := post(dev, "/console/signout", ck.Value, "https://evil.example", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin sign-out: %d", resp.StatusCode)
	}
	// A situation that is not one is a clear 400, before any backend.
	if resp, body := get(dev, "/console/situations/XX/general", ck.Value); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "ISO 3166-1") {
		t.Fatalf("a bad country: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := get(dev, "/console/situations/GN/no-such-type", ck.Value); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "crisis_type") {
		t.Fatalf("a bad crisis type: %d\n%s", resp.StatusCode, body)
	}
	if got := safeNext("//evil.example/x"); got != "" {
		t.Fatalf("safeNext let %q through", got)
	}
}

func TestGroupThousands(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 120000: "120,000", 1250000: "1,250,000", -45000: "-45,000"} {
		if got := groupThousands(in); got != want {
			t.Errorf("groupThousands(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestClosedCrisisCountsNothingDown: a closed crisis (a finished drill among
// them) shows no running deadline, so no card says "overdue" for ever; a
// crisis whose stages have all ended is in closure.
func TestClosedCrisisCountsNothingDown(t *testing.T) {
	u := &user{Principal: &authn.Principal{Subject: "duty"}}
	breached := &demarchev1.DeadlineState{Name: "standby team deployment", Stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT,
		DueAt: timestamppb.New(time.Now().Add(-time.Hour)), Status: demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED}
	open := &demarchev1.CrisisState{Crisis: &demarchev1.Crisis{Id: "X", Drill: true}, Deadlines: []*demarchev1.DeadlineState{breached}}
	if c := cardOf(open, u); len(c.Deadlines) != 1 || !c.Closing || c.Closed {
		t.Fatalf("an open crisis with no stage running: %+v", c)
	}
	closed := &demarchev1.CrisisState{Crisis: open.GetCrisis(), Deadlines: open.GetDeadlines(), ClosedAt: timestamppb.Now(),
		CurrentStage: demarchev1.Stage_STAGE_CLOSED}
	if c := cardOf(closed, u); len(c.Deadlines) != 0 || c.Closing || !c.Closed {
		t.Fatalf("a closed crisis: %+v", c)
	}
	for _, d := range deadlinesOf(closed) {
		if d.Running {
			t.Fatalf("a closed crisis's deadline runs: %+v", d)
		}
	}
}
