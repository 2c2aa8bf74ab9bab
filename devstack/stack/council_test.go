package stack_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestCouncilTrackAndTheRightClockOnTheStack walks the Security Council's
// own track and the right clock (issue 27, items 3 and 7) through the CLI and
// the HTTP API on the embedded stack:
//
//   - an Article 99 letter on a crisis still in its warning stage, recorded by
//     the head of department, is the crisis's first response action: the
//     warning-to-action figure ends there, triage is its own time;
//   - the authorisation rows of the new kind: every demo identity tries one
//     through the API; only a head of department's is recorded (the policy
//     refuses non-operators, the gateway an operator without the kind's role,
//     as the crisis would: rule role, TestCouncilActionByAnotherRoleIsRefused);
//   - one horizon-scanning briefing recorded on two crises by one command
//     shows on each, naming the other and a situation without a crisis;
//   - the console offers the Council's track though it is never pending;
//   - deployments with and without a UN envoy are counted, and the share of
//     women among the mediators deployed comes from the roster's
//     self-declared field (the demo roster declares some, not all);
//   - the crises' histories, Council actions included, replay.
func TestCouncilTrackAndTheRightClockOnTheStack(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, s, args...)
		if err != nil {
			t.Fatalf("demarche %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	today := time.Now().UTC().Format(time.DateOnly)
	a := openedID(t, cli("crisis", "open", "--title", "Coup attempt in Conakry", "--country", "GN", "--type", "general", "--severity", "4", "--first-signal-at", time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339)))
	b := openedID(t, cli("crisis", "open", "--title", "Post-election tensions in Bamako", "--country", "ML", "--type", "general", "--severity", "3"))
	waitPendingKind(t, tc, a, "triage")
	waitPendingKind(t, tc, b, "triage")

	// The Article 99 letter, before triage.
	cli("crisis", "decide", "council-action", a, "--as", "head", "--rationale", "a threat to international peace and security",
		"--type", "article-99-letter", "--date", today, "--outcome", "the President circulated the letter to members", "--document", "S/2026/1001")

	// The authorisation rows: each demo identity records a briefing on b.
	body := `{"rationale": "matrix", "councilAction": {"type": "briefing", "date": "` + today + `T08:00:00Z", "outcome": "members took note"}}`
	recorded := 0
	for _, id := range authn.DevIdentities {
		c := apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile(id.Subject))}
		code, _, raw := c.call("POST", "/v1/crises/"+b+"/decisions", body)
		head := strings.Contains(strings.Join(id.Roles, ","), "head-of-department")
		operator := strings.Contains(strings.Join(id.Roles, ","), "officer") || strings.Contains(strings.Join(id.Roles, ","), "mediation-support")
		switch {
		case head && code != http.StatusOK:
			t.Errorf("%s (head of department): %d %s", id.Subject, code, raw)
		case head:
			recorded++
		case code == http.StatusOK:
			t.Errorf("%s (%v) recorded a Council action: %s", id.Subject, id.Roles, raw)
		case operator && (code != http.StatusForbidden || !strings.Contains(raw, "council-action decision is taken by a head-of-department")):
			t.Errorf("%s (%v): %d %s, want 403 naming the kind's role", id.Subject, id.Roles, code, raw)
		case !operator && (code != http.StatusForbidden || !strings.Contains(raw, "needs one of the roles")):
			t.Errorf("%s (%v): %d %s, want 403 from the policy", id.Subject, id.Roles, code, raw)
		}
	}
	if recorded != 1 {
		t.Fatalf("%d Council actions recorded by the demo identities, want the head of department's only", recorded)
	}

	// One horizon-scanning briefing covering both crises and a situation
	// without one.
	cli("crisis", "horizon-scanning", a, b, "--as", "head", "--date", today, "--outcome", "members asked for a Sahel update next month",
		"--situation", "Sahel border tensions", "--rationale", "monthly horizon scanning")
	for _, c := range []struct{ id, other string }{{a, b}, {b, a}} {
		out := cli("crisis", "show", c.id)
		if !strings.Contains(out, "Security Council horizon scanning briefing on "+today) || !strings.Contains(out, "also covered: "+c.other+", Sahel border tensions") {
			t.Fatalf("crisis show %s does not show the horizon-scanning briefing naming %s:\n%s", c.id, c.other, out)
		}
	}
	if out := cli("crisis", "show", a); !strings.Contains(out, "Security Council actions: 2") || !strings.Contains(out, "Article 99 letter") {
		t.Fatalf("crisis show %s: want 2 Council actions, the Article 99 letter among them:\n%s", a, out)
	}

	// The console offers the Council's track on the crisis page although it
	// is never pending, and records it through the API.
	duty := readToken(t, s.TokenFile("duty"))
	page := getConsolePage(t, s.APIURL(), duty, "/console/crises/"+b)
	m := csrfField.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `id="form-council-action"`) || !strings.Contains(page, `id="form-engagement"`) {
		t.Fatalf("the crisis page offers no council-action (or engagement) form before triage:\n%.2000s", page)
	}
	code, loc := consolePost(t, s.APIURL(), duty, "/console/crises/"+b+"/decide", url.Values{"csrf": {m[1]}, "key": {"console-press-statement-" + b},
		"kind": {"council-action"}, "type": {"press-statement"}, "date": {today}, "outcome": {"press statement agreed"}, "rationale": {"members spoke with one voice"}})
	if code != http.StatusSeeOther || strings.Contains(loc, "error") {
		t.Fatalf("console council-action: %d %s", code, loc)
	}
	if out := cli("crisis", "show", b); !strings.Contains(out, "Security Council actions: 3") || !strings.Contains(out, "press statement on "+today+": press statement agreed") {
		t.Fatalf("crisis show %s: want 3 Council actions, the console's press statement among them:\n%s", b, out)
	}

	// a: a UN envoy (declared a man) and an undeclared standby expert; b:
	// the standby team alone (a woman and a man, both declared) in support
	// of an ECOWAS-led mediation. Stages without a decision here are skipped.
	deploy := func(id string, appoint ...string) {
		t.Helper()
		cli("crisis", "decide", "triage", id, "--as", "duty-officer", "--rationale", "credible", "--assessment", "tensions rising")
		for _, stage := range []string{"good-offices", "fact-finding"} {
			cli("crisis", "skip-stage", id, "--stage", stage, "--as", "duty-officer", "--reason", "the Council track carries it")
		}
		waitPendingKind(t, tc, id, "envoy-appointment")
		cli(append([]string{"crisis", "decide", "envoy-appointment", id, "--as", "head", "--rationale", "support the mediation"}, appoint...)...)
		cli("crisis", "decide", "standby-team-deployed", id, "--as", "msu", "--rationale", "on the ground", "--location", "the capital")
		for _, stage := range []string{"rapid-response-funding", "sustained-follow-up"} {
			cli("crisis", "skip-stage", id, "--stage", stage, "--as", "duty-officer", "--reason", "not needed")
		}
		waitPendingKind(t, tc, id, "closure")
		cli("crisis", "decide", "closure", id, "--as", "head", "--rationale", "calm restored", "--outcome", "contained", "--lesson", "the Council's attention helped")
		run := tc.GetWorkflow(ctx, crisis.WorkflowID(id), "")
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := run.Get(wctx, nil); err != nil {
			t.Fatalf("crisis %s did not complete: %v", id, err)
		}
	}
	deploy(a, "--envoy", "env-kenji-sato", "--standby-team", "sb-grace-okafor")
	deploy(b, "--standby-team", "sb-fatou-sow,sb-omar-farouk", "--supports", "ECOWAS-led mediation")

	// The first signal was 2h before the opening: the letter came seconds
	// after it, triage later (a minute more on a slow machine).
	out := cli("crisis", "show", a)
	for _, want := range []string{`warning to first action  2h( [0-9]+m)? \(council-action\)\n`, `warning to triage        2h( [0-9]+m)?\n`,
		`council actions          2\n`, `deployments              1 with a UN envoy, 0 without\n`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("crisis show %s after closure lacks %s:\n%s", a, want, out)
		}
	}
	if out := cli("crisis", "show", b); !strings.Contains(out, "deployments              0 with a UN envoy, 1 without\n") || !strings.Contains(out, "(council-action)") {
		t.Fatalf("crisis show %s after closure: want one deployment without an envoy, the first action a Council action:\n%s", b, out)
	}
	// Replay coverage of the new kind: the histories with Council actions
	// (a letter, a briefing, horizon scanning, a press statement) replay
	// against today's code, and the trail names them.
	for _, id := range []string{a, b} {
		trail := cli("audit", "replay", "--crisis", id)
		if !strings.Contains(trail, "histories replay deterministically") || strings.Contains(trail, "DOES NOT REPLAY") || !strings.Contains(trail, "[council-action] by") {
			t.Fatalf("audit replay --crisis %s:\n%s", id, trail)
		}
	}
	figs := cli("crisis", "figures")
	if !strings.Contains(figs, "women among deployed mediators: 1 of the 3 who declared (33%); 4 deployed, 1 not declared") {
		t.Fatalf("crisis figures: want 1 woman of 3 declared among 4 deployed:\n%s", figs)
	}
	// The console's figures page says the same, and what ended each clock.
	page = getConsolePage(t, s.APIURL(), duty, "/console/figures")
	if !strings.Contains(page, "Women among deployed mediators: 1 of the 3 who declared (33%); 4 deployed, 1 not declared.") ||
		!strings.Contains(page, "<td>Security Council action</td>") {
		t.Fatalf("the console's figures page lacks the women deployed or the first action:\n%.3000s", page)
	}
}

// getConsolePage reads a console page as the token's session.
func getConsolePage(t *testing.T, base, token, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.AddCookie(&http.Cookie{Name: "demarche_session", Value: token})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(b)
}
