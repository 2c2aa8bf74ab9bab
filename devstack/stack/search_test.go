package stack_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSearchAndLessons: crises are searched across the platform, past ones
// included, and closure lessons across closed crises, on the real stack
// (visibility, the crises' states, the audit trail), as a duty officer
// (cleared confidential), an analyst (cleared public) and a partner
// liaison: a confidential crisis is never in a low clearance's rows, and
// lessons never reach a partner. A drill is opened from the console's form
// (app.OpenCrisis, as POST /v1/crises with drill settings).
func TestSearchAndLessons(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	as := func(subject string) apiCaller {
		return apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile(subject))}
	}
	duty, analyst, ecowas := as("duty"), as("analyst"), as("ecowas")

	open := func(title, country, ctype string, severity int, conf, shared string) string {
		t.Helper()
		body := fmt.Sprintf(`{"crisis": {"title": %q, "countryCode": %q, "crisisType": %q, "severity": %d, "confidentiality": %q, "sharedWith": [%s]}}`,
			title, country, ctype, severity, conf, shared)
		code, out, raw := duty.call("POST", "/v1/crises", body)
		if code != http.StatusCreated {
			t.Fatalf("open %s: %d %s", title, code, raw)
		}
		return openedIDHTTP(t, out)
	}
	coup := open("Zq7 coup in Conakry", "GN", "unconstitutional-change", 4, "CONFIDENTIALITY_PUBLIC", `"ECOWAS"`)
	quiet := open("Zq7 quiet talks in Conakry", "GN", "unconstitutional-change", 3, "CONFIDENTIALITY_CONFIDENTIAL", "")
	border := open("Zq7 border clash", "UA", "border-dispute", 2, "CONFIDENTIALITY_PUBLIC", `"ECOWAS"`)
	closeCrisisHTTP(t, duty, coup, "OUTCOME_AVERTED", "Zq7 lesson: the regional lead worked")
	closeCrisisHTTP(t, duty, quiet, "OUTCOME_AVERTED", "Zq7 lesson: quiet diplomacy held")

	// A drill from the console's form, as the drill coordinator.
	dutyTok := readToken(t, s.TokenFile("duty"))
	form := consoleCSRF(t, s.APIURL(), dutyTok, "/console/drills")
	for k, v := range map[string]string{"name": "zq7-tabletop", "title": "Zq7 tabletop", "country": "ML", "type": "general", "severity": "2",
		"confidentiality": "public", "decision_delay": "1h", "time_scale": "0.001"} {
		form.Set(k, v)
	}
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("decision_delay", "soon")
	if code, loc := consolePost(t, s.APIURL(), dutyTok, "/console/drills", bad); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/drills?failed=") {
		t.Fatalf("a drill with a bad delay: %d %s, want back to the form", code, loc)
	} else if page := consoleFollow(t, s.APIURL(), dutyTok, loc); !strings.Contains(page, "decision delay: a duration") || !strings.Contains(page, `value="zq7-tabletop"`) {
		t.Errorf("the refused drill form does not say why, or lost its values:\n%s", page)
	}
	code, loc := consolePost(t, s.APIURL(), dutyTok, "/console/drills", form)
	if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/crises/DRILL-") || !strings.HasSuffix(loc, "-zq7-tabletop?done=opened") {
		t.Fatalf("open a drill from the console: %d %s", code, loc)
	}
	drill := strings.TrimSuffix(strings.TrimPrefix(loc, "/console/crises/"), "?done=opened")
	analystForm := consoleCSRF(t, s.APIURL(), readToken(t, s.TokenFile("analyst")), "/console/search")
	for k := range form {
		if k != "csrf" {
			analystForm[k] = form[k]
		}
	}
	if code, loc := consolePost(t, s.APIURL(), readToken(t, s.TokenFile("analyst")), "/console/drills", analystForm); code != http.StatusForbidden {
		t.Errorf("a drill opened by an analyst: %d %s, want 403", code, loc)
	}

	ids := func(c apiCaller, query string) []string {
		t.Helper()
		code, out, raw := c.call("GET", "/v1/crises?"+query, "")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/crises?%s: %d %s", query, code, raw)
		}
		var got []string
		for _, r := range asList(out["crises"]) {
			got = append(got, r.(map[string]any)["crisisId"].(string))
		}
		slices.Sort(got)
		return got
	}
	sorted := func(v ...string) []string { slices.Sort(v); return v }
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	cases := []struct {
		who   string
		c     apiCaller
		query string
		want  []string
	}{
		{"duty", duty, "q=zq7", sorted(coup, quiet, border, drill)},
		{"duty", duty, "q=CONAKRY&drills=false", sorted(coup, quiet)},
		{"duty", duty, "outcome=averted", sorted(coup, quiet)},
		{"duty", duty, "status=closed&drills=false", sorted(coup, quiet)},
		{"duty", duty, "status=open&drills=false", sorted(border)},
		{"duty", duty, "region=europe", sorted(border)},
		{"duty", duty, "country=GN&type=unconstitutional-change&severity_min=4", sorted(coup)},
		{"duty", duty, "severity_max=2&drills=false", sorted(border)},
		{"duty", duty, "drills=only", sorted(drill)},
		{"duty", duty, "opened_from=" + tomorrow, nil},
		{"duty", duty, "q=zq7&opened_to=" + tomorrow, sorted(coup, quiet, border, drill)},
		{"analyst", analyst, "q=zq7", sorted(coup, border, drill)},
		{"analyst", analyst, "outcome=averted", sorted(coup)},
		{"analyst", analyst, "status=closed&drills=false", sorted(coup)},
		{"ecowas", ecowas, "status=closed", sorted(coup)},
		{"ecowas", ecowas, "q=zq7", sorted(coup, border)},
		{"ecowas", ecowas, "q=quiet", nil},
	}
	for _, c := range cases {
		// visibility indexes a closure's attributes a moment after it
		var got []string
		waitFor(t, func() bool { got = ids(c.c, c.query); return slices.Equal(got, c.want) })
	}
	if code, _, raw := duty.call("GET", "/v1/crises?outcome=averted&status=open", ""); code != http.StatusBadRequest || !strings.Contains(raw, "outcome") {
		t.Errorf("an open crisis's outcome: %d %s", code, raw)
	}
	if code, out, raw := duty.call("GET", "/v1/crises?q=quiet", ""); code != http.StatusOK || len(asList(out["crises"])) != 1 ||
		asList(out["crises"])[0].(map[string]any)["title"] != "Zq7 quiet talks in Conakry" || asList(out["crises"])[0].(map[string]any)["outcome"] != "averted" {
		t.Errorf("a text search's row lacks its title or outcome: %d %s", code, raw)
	}

	lessons := func(c apiCaller, query string) (int, []string, string) {
		t.Helper()
		code, out, raw := c.call("GET", "/v1/lessons?"+query, "")
		var got []string
		for _, l := range asList(out["lessons"]) {
			m := l.(map[string]any)
			if m["closedAt"] == nil || m["crisisType"] == nil || m["country"] == nil || m["outcome"] == nil || m["title"] == nil {
				t.Errorf("a lesson lacks its crisis's facts: %v", m)
			}
			got = append(got, m["crisisId"].(string))
		}
		slices.Sort(got)
		return code, got, raw
	}
	for _, c := range []struct {
		who   string
		c     apiCaller
		query string
		want  []string
	}{
		{"duty", duty, "", sorted(coup, quiet)},
		{"duty", duty, "type=unconstitutional-change&region=africa&outcome=averted", sorted(coup, quiet)},
		{"duty", duty, "q=regional+lead", sorted(coup)},
		{"duty", duty, "outcome=contained", nil},
		{"duty", duty, "region=europe", nil},
		{"analyst", analyst, "", sorted(coup)},
	} {
		var got []string
		var raw string
		waitFor(t, func() bool {
			var code int
			code, got, raw = lessons(c.c, c.query)
			return code == http.StatusOK && slices.Equal(got, c.want)
		})
		_ = raw
	}
	if code, _, raw := lessons(ecowas, ""); code != http.StatusForbidden {
		t.Errorf("a partner's lessons: %d %s, want 403", code, raw)
	}

	// The CLI asks the same routes.
	if out, err := runCLI(t, s, "crisis", "list", "--text", "zq7", "--outcome", "averted"); err != nil || !strings.Contains(out, coup) || !strings.Contains(out, quiet) || strings.Contains(out, border) {
		t.Errorf("crisis list --text --outcome: %v\n%s", err, out)
	}
	if out, err := runCLI(t, s, "crisis", "lessons", "--type", "unconstitutional-change", "--region", "africa"); err != nil || !strings.Contains(out, "quiet diplomacy held") || !strings.Contains(out, "outcome averted") {
		t.Errorf("crisis lessons: %v\n%s", err, out)
	}

	// The console's pages, as each of them sees them.
	analystTok, ecowasTok := readToken(t, s.TokenFile("analyst")), readToken(t, s.TokenFile("ecowas"))
	page := consoleFollow(t, s.APIURL(), dutyTok, "/console/search?q=zq7&drills=true")
	for _, want := range []string{"Zq7 coup in Conakry", "Zq7 quiet talks in Conakry", "Zq7 border clash", "Zq7 tabletop", `data-crisis="` + quiet + `"`, "averted"} {
		if !strings.Contains(page, want) {
			t.Errorf("the duty officer's search lacks %q", want)
		}
	}
	if page := consoleFollow(t, s.APIURL(), dutyTok, "/console/search?q=zq7"); strings.Contains(page, "Zq7 tabletop") {
		t.Errorf("the console's search shows drills unless asked for")
	}
	if page := consoleFollow(t, s.APIURL(), analystTok, "/console/search?q=zq7&drills=true"); strings.Contains(page, "quiet talks") || strings.Contains(page, quiet) || !strings.Contains(page, "Zq7 coup") {
		t.Errorf("the analyst's search shows the confidential crisis, or not the public one")
	}
	if page := consoleFollow(t, s.APIURL(), ecowasTok, "/console/search?q=zq7"); strings.Contains(page, quiet) || !strings.Contains(page, coup) {
		t.Errorf("the partner's search shows a crisis not shared with it, or not the shared one")
	}
	if page := consoleFollow(t, s.APIURL(), dutyTok, "/console/lessons?type=unconstitutional-change"); !strings.Contains(page, "the regional lead worked") || !strings.Contains(page, "quiet diplomacy held") {
		t.Errorf("the duty officer's lessons page lacks a lesson")
	}
	if page := consoleFollow(t, s.APIURL(), analystTok, "/console/lessons"); strings.Contains(page, "quiet diplomacy held") || !strings.Contains(page, "the regional lead worked") {
		t.Errorf("the analyst's lessons page shows the confidential crisis's lesson, or not the public one's")
	}
	if page := consoleFollow(t, s.APIURL(), ecowasTok, "/console/lessons"); strings.Contains(page, "regional lead") || !strings.Contains(page, "lessons.read needs one of the roles") {
		t.Errorf("a partner reached the lessons page")
	}
	if page := consoleFollow(t, s.APIURL(), dutyTok, "/console/drills"); !strings.Contains(page, drill) {
		t.Errorf("the drills page does not list the drill opened from it")
	}
}

// closeCrisisHTTP skips every stage of a crisis as it comes, then closes
// it with an outcome and a lesson (as the head of department: c holds the
// role).
func closeCrisisHTTP(t *testing.T, c apiCaller, id, outcome, lesson string) {
	t.Helper()
	waitFor(t, func() bool {
		code, out, _ := c.call("GET", "/v1/crises/"+id, "")
		if code != http.StatusOK {
			return false
		}
		for _, p := range asList(out["pendingDecisions"]) {
			if p.(map[string]any)["kind"] == "closure" {
				return true
			}
		}
		for _, st := range asList(out["activeStages"]) {
			// a stage that ended meanwhile is refused: the next round skips what runs then
			c.call("POST", "/v1/crises/"+id+"/controls/skip-stage", fmt.Sprintf(`{"reason": "search test", "stage": %q}`, st))
		}
		return false
	})
	body := fmt.Sprintf(`{"rationale": "search test", "closure": {"outcome": %q, "lessons": [%q]}}`, outcome, lesson)
	if code, _, raw := c.call("POST", "/v1/crises/"+id+"/decisions", body); code != http.StatusOK {
		t.Fatalf("close %s: %d %s", id, code, raw)
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// consoleFollow reads a console page as the token's session (redirects
// followed, as a browser does).
func consoleFollow(t *testing.T, base, token, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.AddCookie(&http.Cookie{Name: "demarche_session", Value: token})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// consoleCSRF is the CSRF field of a console page's forms.
func consoleCSRF(t *testing.T, base, token, path string) url.Values {
	t.Helper()
	m := csrfField.FindStringSubmatch(consoleFollow(t, base, token, path))
	if m == nil {
		t.Fatalf("console page %s has no form", path)
	}
	return url.Values{"csrf": {m[1]}}
}
