package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/partners"
)

// TestSharingChangesDuringACrisis runs a sharing change on the real stack:
// a partner newly shared with sees the crisis (API reads and lists, its NATS
// subjects, the partners service's own checks), a partner no longer shared
// with stops seeing it (404, left out of lists, nothing more delivered), each
// change is in the crisis's audit chain with who made it, and the CLI verb,
// the console form and the API route all reach it. Then events tail --crisis
// prints the crisis from its first event.
func TestSharingChangesDuringACrisis(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	as := func(name string) apiCaller {
		return apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile(name))}
	}
	duty, ecowas, analyst, admin := as("duty"), as("ecowas"), as("analyst"), as("admin")
	code, opened, raw := duty.call("POST", "/v1/crises", `{"crisis": {"title": "Quiet talks with the junta", "countryCode": "NE", "crisisType": "unconstitutional-change", "severity": 3, "confidentiality": "restricted"}}`)
	if code != http.StatusCreated {
		t.Fatalf("open: %d %s", code, raw)
	}
	id := openedIDHTTP(t, opened)
	sees := func(c apiCaller) (read int, listed bool) {
		read, _, _ = c.call("GET", "/v1/crises/"+id, "")
		_, out, _ := c.call("GET", "/v1/crises", "")
		rows, _ := out["crises"].([]any)
		for _, r := range rows {
			listed = listed || r.(map[string]any)["crisisId"] == id
		}
		return read, listed
	}
	if read, listed := sees(ecowas); read != http.StatusNotFound || listed {
		t.Fatalf("ECOWAS sees the crisis before it is shared: read %d, listed %v", read, listed)
	}

	// Refused before anything changes: roles, unknown partners, rules.
	for _, c := range []struct {
		who  apiCaller
		name string
		body string
		code int
		says string
	}{
		{analyst, "analyst", `{"reason": "x", "share": ["ECOWAS"]}`, http.StatusForbidden, "crisis.share needs one of the roles duty-officer, admin"},
		{ecowas, "the partner itself", `{"reason": "x", "share": ["ECOWAS"]}`, http.StatusForbidden, "crisis.share needs one of the roles"},
		{duty, "duty, unknown partner", `{"reason": "x", "share": ["ECOWAS", "NOPE"]}`, http.StatusBadRequest, `share[1]: \"NOPE\" is not a registered partner`},
		{duty, "duty, twice", `{"reason": "x", "share": ["AU", "AU"]}`, http.StatusBadRequest, "share[1]: AU is named twice"},
		{duty, "duty, unshare unshared", `{"reason": "x", "unshare": ["AU"]}`, http.StatusUnprocessableEntity, "rule unshare-shared"},
		{duty, "duty, no reason", `{"share": ["AU"]}`, http.StatusBadRequest, "reason"},
	} {
		if code, _, raw := c.who.call("POST", "/v1/crises/"+id+"/sharing", c.body); code != c.code || !strings.Contains(raw, c.says) {
			t.Errorf("%s: %d %s; want %d saying %q", c.name, code, raw, c.code, c.says)
		}
	}

	// Shared with ECOWAS through the CLI.
	out, err := runCLI(t, s, "crisis", "share", id, "--with", "ecowas", "--reason", "ECOWAS mediates")
	if err != nil || !strings.Contains(out, id+": shared with ECOWAS") {
		t.Fatalf("crisis share: %v\n%s", err, out)
	}
	waitFor(t, func() bool { read, listed := sees(ecowas); return read == http.StatusOK && listed })
	// The partners service acts on it: ECOWAS receives the change on its
	// subjects, and may acknowledge a role (the service checks sharing).
	_, js := jsOf(t, s)
	partnerCount := func(partner, token string) uint64 {
		st, err := js.Stream(context.Background(), partners.PartnerStream(partner))
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(fmt.Sprintf("%s.%s.*.*.%s.%s", partners.SubjectRoot, partner, id, token)))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	waitFor(t, func() bool { return partnerCount("ECOWAS", "sharing_changed") == 1 })
	if n := partnerCount("ECOWAS", "crisis_opened"); n != 1 {
		t.Errorf("ECOWAS, newly shared with, received the crisis's opening %d times, want once (before the change)", n)
	}
	if n := partnerCount("ECOWAS", "stage_entered"); n != 0 {
		t.Errorf("ECOWAS received %d stage events from before it was shared with", n)
	}
	waitFor(t, func() bool {
		code, _, _ := ecowas.call("POST", "/v1/partners/ack-role", `{"crisisId": "`+id+`", "ack": {"partner": "ECOWAS", "role": "lead"}}`)
		return code == http.StatusOK
	})

	// Unshared through the console's form (as the duty officer's session).
	form := consoleForm(t, s.APIURL(), readToken(t, s.TokenFile("duty")), "/console/crises/"+id)
	form.Set("unshare", "ECOWAS")
	form.Set("share", "AU")
	form.Set("reason", "AU takes over")
	if code, loc := consolePost(t, s.APIURL(), readToken(t, s.TokenFile("duty")), "/console/crises/"+id+"/sharing", form); code != http.StatusSeeOther || !strings.Contains(loc, "done=sharing") {
		t.Fatalf("console sharing form: %d %s", code, loc)
	}
	waitFor(t, func() bool { read, listed := sees(ecowas); return read == http.StatusNotFound && !listed })
	_, st, _ := duty.call("GET", "/v1/crises/"+id, "")
	if got := fmt.Sprint(st["crisis"].(map[string]any)["sharedWith"]); got != "[AU]" {
		t.Fatalf("shared with %s after the console's change, want [AU]", got)
	}
	// After the change ECOWAS receives nothing more of the crisis: the
	// escalation below reaches AU (the fan-out keeps stream order) and not ECOWAS.
	if code, _, raw := admin.call("POST", "/v1/crises/"+id+"/sharing", `{"reason": "EU observes", "share": ["EU"]}`); code != http.StatusOK {
		t.Fatalf("admin shares with the EU: %d %s", code, raw)
	}
	if code, _, raw := duty.call("POST", "/v1/crises/"+id+"/controls/escalate", `{"reason": "troops in the capital"}`); code != http.StatusOK {
		t.Fatalf("escalate: %d %s", code, raw)
	}
	waitFor(t, func() bool {
		return partnerCount("AU", "severity_changed") == 1 && partnerCount("EU", "severity_changed") == 1
	})
	if n := partnerCount("ECOWAS", "severity_changed"); n != 0 || partnerCount("ECOWAS", "sharing_changed") != 2 {
		t.Errorf("ECOWAS after being unshared: %d severity changes (want 0), %d sharing changes (want 2: shared, unshared)", n, partnerCount("ECOWAS", "sharing_changed"))
	}
	if code, _, _ := ecowas.call("POST", "/v1/partners/ack-role", `{"crisisId": "`+id+`", "ack": {"partner": "ECOWAS", "role": "support"}}`); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Errorf("ECOWAS acknowledges a role on a crisis no longer shared with it: %d", code)
	}

	// Each change is in the crisis's audit chain with who made it.
	nc, _, err := natsx.Connect(s.NATSURLFor(natsauth.Gateway), "sharing-test", zap.NewNop()) // chains are read through the gateway
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitFor(t, func() bool {
		chain, err := audit.FetchChain(context.Background(), nc, id, "sharing-test")
		if err != nil {
			return false
		}
		var who []string
		for _, r := range chain.GetRecords() {
			if strings.Contains(r.GetEventType(), "sharing_changed") {
				who = append(who, r.GetPrincipal())
			}
		}
		return strings.Join(who, ",") == "duty,duty,admin"
	})

	// events tail --crisis starts from the crisis's first event.
	_, js2 := jsOf(t, s)
	n := streamCount(t, js2, eventbus.CrisisEvents(id))
	out, err = runCLI(t, s, "events", "tail", "--crisis", id, "--count", fmt.Sprint(n), "--output", "json")
	if err != nil {
		t.Fatalf("events tail: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var types []string
	for _, l := range lines {
		var ev struct {
			Type    string `json:"type"`
			Subject string `json:"subject"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			continue // the "tailing ..." notice
		}
		if ev.Subject != id {
			t.Errorf("tail --crisis %s printed an event of %s", id, ev.Subject)
		}
		types = append(types, ev.Type)
	}
	if len(types) != int(n) || types[0] != "org.demarche.crisis.crisis_opened.v1" || strings.Count(strings.Join(types, " "), "sharing_changed") != 3 {
		t.Fatalf("tail --crisis from the first event: %d events %v; want %d starting with the opening", len(types), types, n)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// consoleForm reads a console page as the token's session and returns the
// form fields every form carries (the CSRF token).
func consoleForm(t *testing.T, base, token, path string) url.Values {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.AddCookie(&http.Cookie{Name: "demarche_session", Value: token})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := resp.Body.Read(buf)
		b.WriteString(string(buf[:n]))
		if err != nil {
			break
		}
	}
	m := csrfField.FindStringSubmatch(b.String())
	if m == nil || !strings.Contains(b.String(), `id="form-sharing"`) {
		t.Fatalf("console page %s (%d) has no sharing form", path, resp.StatusCode)
	}
	return url.Values{"csrf": {m[1]}, "key": {"sharing-" + path}}
}

// consolePost submits a console form as the token's session, from the
// console's origin; it answers the status and the redirect.
func consolePost(t *testing.T, base, token, path string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.AddCookie(&http.Cookie{Name: "demarche_session", Value: token})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}
