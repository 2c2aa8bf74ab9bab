package stack_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/authn"
)

// TestFieldPresenceReport is "a field presence's report" (issue 27, item 4)
// on the embedded stack:
//
//   - crises open with a lead presence checked against the registry: UNOWA
//     in Guinea, UNOCA in the Central African Republic; UNOCA for Guinea is
//     refused naming the presence that covers it; `crisis show` names it;
//   - UNOWA's field officer (the demo identity unowa) files a field report
//     (a visit) on its crisis through the API: recorded, in the crisis's
//     state, `crisis show` and its report's timeline;
//   - UNOCA's field officer is refused: 404 for a crisis its presence does
//     not lead (it is invisible to it, as to anyone not entitled), and one
//     who also reads crises as an analyst (so sees it) gets 403 naming the
//     lead presence; a body naming another presence is refused (400); the
//     field officer may take no other decision (403 naming the kind's role);
//   - UNOWA's field officer lists, reads and sees on the console board only
//     the crises UNOWA leads.
func TestFieldPresenceReport(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, s, args...)
		if err != nil {
			t.Fatalf("demarche %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	gn := openedID(t, cli("crisis", "open", "--title", "Transition in Guinea", "--country", "GN", "--type", "unconstitutional-change", "--severity", "4",
		"--confidentiality", "restricted", "--lead-presence", "unowa"))
	cf := openedID(t, cli("crisis", "open", "--title", "Armed groups near Bangui", "--country", "CF", "--type", "general", "--severity", "3", "--lead-presence", "UNOCA"))
	ml := openedID(t, cli("crisis", "open", "--title", "Tensions in Mopti", "--country", "ML", "--type", "general", "--severity", "2"))
	if out, err := runCLI(t, s, "crisis", "open", "--title", "Wrong office", "--country", "GN", "--type", "general", "--severity", "2", "--lead-presence", "UNOCA"); err == nil ||
		!strings.Contains(out+err.Error(), "--lead-presence") || !strings.Contains(out+err.Error(), "presences covering it: UNOWA") {
		t.Fatalf("UNOCA leading in Guinea: %v\n%s", err, out)
	}
	if out := cli("crisis", "show", gn); !strings.Contains(out, "presence  UNOWA (lead field presence)") {
		t.Fatalf("crisis show %s does not name its lead presence:\n%s", gn, out)
	}

	unowa := apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile("unowa"))}
	mint := func(c authn.Claims) apiCaller {
		tok, err := s.Issuer().Mint(c, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return apiCaller{t: t, url: s.APIURL(), token: tok}
	}
	unoca := mint(authn.Claims{Subject: "unoca-fo", Roles: []string{"field-officer"}, Presence: "UNOCA", Clearance: "restricted"})
	unocaAnalyst := mint(authn.Claims{Subject: "unoca-analyst", Roles: []string{"field-officer", "analyst"}, Presence: "UNOCA", Clearance: "restricted"})

	report := `{"rationale": "weekly visit", "fieldReport": {"type": "visit", "summary": "met the transitional authorities in Conakry", "with": "the CNDD"}}`
	if code, _, raw := unowa.call("POST", "/v1/crises/"+gn+"/decisions", report); code != http.StatusOK || !strings.Contains(raw, "field-report") {
		t.Fatalf("UNOWA's field report: %d %s", code, raw)
	}
	cases := []struct {
		name string
		who  apiCaller
		body string
		code int
		want string
	}{
		{"UNOCA's officer, the crisis invisible to it", unoca, report, http.StatusNotFound, gn},
		{"UNOCA's officer who also reads as an analyst", unocaAnalyst, report, http.StatusForbidden, "lead presence (UNOWA); your credential names UNOCA"},
		{"a body naming another presence", unowa, `{"presence": "UNOCA", "rationale": "x", "fieldReport": {"type": "visit", "summary": "x"}}`, http.StatusBadRequest, "presence"},
		{"another kind of decision", unowa, `{"rationale": "x", "triage": {"assessment": "x"}}`, http.StatusForbidden, "triage decision is taken by a duty-officer"},
	}
	for _, c := range cases {
		if code, _, raw := c.who.call("POST", "/v1/crises/"+gn+"/decisions", c.body); code != c.code || !strings.Contains(raw, c.want) {
			t.Errorf("%s: %d %s; want %d with %q", c.name, code, raw, c.code, c.want)
		}
	}

	// One report recorded, in the state, crisis show and the timeline.
	code, _, raw := unowa.call("GET", "/v1/crises/"+gn, "")
	if code != http.StatusOK || strings.Count(raw, `"kind":"field-report"`)+strings.Count(raw, `"kind": "field-report"`) != 1 {
		t.Fatalf("UNOWA reads its crisis: %d, want one field report in it: %.2000s", code, raw)
	}
	if out := cli("crisis", "show", gn); !strings.Contains(out, "UNOWA visit: met the transitional authorities in Conakry (with the CNDD)") {
		t.Fatalf("crisis show %s does not show the field report:\n%s", gn, out)
	}
	if code, _, raw := unowa.call("GET", "/v1/crises/"+gn+"/report?format=json", ""); code != http.StatusOK || !strings.Contains(raw, "UNOWA visit") {
		t.Fatalf("the crisis's report timeline: %d %.1500s", code, raw)
	}

	// UNOWA's officer sees UNOWA's crises only.
	waitFor(t, func() bool {
		_, _, raw := unowa.call("GET", "/v1/crises", "")
		return strings.Contains(raw, gn)
	})
	if _, _, raw := unowa.call("GET", "/v1/crises", ""); strings.Contains(raw, cf) || strings.Contains(raw, ml) {
		t.Fatalf("UNOWA's field officer lists crises UNOWA does not lead: %s", raw)
	}
	for _, id := range []string{cf, ml} {
		if code, _, raw := unowa.call("GET", "/v1/crises/"+id, ""); code != http.StatusNotFound {
			t.Errorf("UNOWA's field officer reads %s: %d %s", id, code, raw)
		}
	}
	board := getConsolePage(t, s.APIURL(), unowa.token, "/console/")
	if !strings.Contains(board, gn) || strings.Contains(board, cf) || strings.Contains(board, ml) {
		t.Fatalf("UNOWA's board: want %s only, not %s or %s:\n%.3000s", gn, cf, ml, board)
	}
	page := getConsolePage(t, s.APIURL(), unowa.token, "/console/crises/"+gn)
	if !strings.Contains(page, `id="lead-presence">UNOWA<`) || !strings.Contains(page, `id="form-field-report"`) {
		t.Fatalf("the crisis page does not name UNOWA or offer its officer the field-report form:\n%.3000s", page)
	}
	// And the duty officer, by clearance, sees all three.
	duty := apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile("duty"))}
	waitFor(t, func() bool {
		_, _, raw := duty.call("GET", "/v1/crises", "")
		return strings.Contains(raw, gn) && strings.Contains(raw, cf) && strings.Contains(raw, ml)
	})
}
