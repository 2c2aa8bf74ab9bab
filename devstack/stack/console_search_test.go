package stack_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleSearch drives the search, lessons and drills pages in headless
// Chromium (short: TestConsole walks a whole crisis; this walks only these
// pages): a search typed in the form becomes the page's address, the
// lessons of a closed crisis are found by type, and a drill is opened from
// its form. Each page is checked for labels, contrast, axe-core and phone
// width, and photographed at 1280×800 and 390×844 under
// testdata/artefacts/console-search (ignored by git).
func TestConsoleSearch(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test on the embedded stack; skipped with -short")
	}
	chrome := chromium()
	if chrome == "" {
		t.Skip("no Chromium found (apt-get install chromium, or set DEMARCHE_CHROMIUM): the console's search browser test is skipped")
	}
	art := filepath.Join("testdata", "artefacts", "console-search")
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, t.TempDir())
	defer s.Stop()
	base := s.APIURL()
	dutyAPI := apiCaller{t: t, url: base, token: readToken(t, s.TokenFile("duty"))}
	open := func(body string) string {
		t.Helper()
		code, out, raw := dutyAPI.call("POST", "/v1/crises", body)
		if code != http.StatusCreated {
			t.Fatalf("open: %d %s", code, raw)
		}
		return openedIDHTTP(t, out)
	}
	coup := open(`{"crisis": {"title": "Coup attempt in Conakry", "countryCode": "GN", "crisisType": "unconstitutional-change", "severity": 4, "confidentiality": "public"}}`)
	open(`{"crisis": {"title": "Quiet channel to the junta in Conakry", "countryCode": "GN", "crisisType": "unconstitutional-change", "severity": 3, "confidentiality": "confidential"}}`)
	open(`{"crisis": {"title": "Border clash on the Dnipro", "countryCode": "UA", "crisisType": "border-dispute", "severity": 2, "confidentiality": "public"}}`)
	closeCrisisHTTP(t, dutyAPI, coup, "averted", "A regional envoy within days kept the parties talking")

	duty := startBrowser(t, chrome, art)("duty")
	duty.run("sign in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#signin-duty")), chromedp.Click(chromedp.CSS("#signin-duty")))
	duty.waitJS("the board after sign-in", `location.pathname === "/console/"`, 30*time.Second)

	duty.run("search page", chromedp.Navigate(base+"/console/search"))
	duty.waitJS("every real crisis listed", `document.querySelectorAll("#search-table tbody tr").length === 3`, 30*time.Second)
	duty.submit("search for Conakry", map[string]string{`#search-form input[name=q]`: "conakry"}, `#search-form button[type=submit]`)
	duty.waitJS("the search in the address", `location.search.includes("q=conakry")`, 30*time.Second)
	duty.waitJS("the two Conakry crises", `document.querySelectorAll("#search-table tbody tr").length === 2 && document.querySelector("#search-table").innerText.includes("Quiet channel")`, 30*time.Second)
	duty.shots("search")
	duty.run("closed crises only", chromedp.Navigate(base+"/console/search?status=closed&outcome=averted"))
	duty.waitJS("the closed one with its outcome", `document.querySelectorAll("#search-table tbody tr").length === 1 && document.querySelector("#search-table").innerText.includes("averted")`, 30*time.Second)

	duty.run("lessons page", chromedp.Navigate(base+"/console/lessons"))
	duty.waitJS("choose the type", `(() => { const e = document.querySelector("#lessons-form select[name=type]"); if (!e) return false; e.value = "unconstitutional-change"; return true })()`, 30*time.Second)
	duty.submit("lessons of coups", map[string]string{}, `#lessons-form button[type=submit]`)
	duty.waitJS("the coup's lesson", `location.search.includes("type=unconstitutional-change") && document.querySelector("#lessons-results").innerText.includes("A regional envoy within days")`, 30*time.Second)
	duty.shots("lessons")

	duty.run("drills page", chromedp.Navigate(base+"/console/drills"))
	duty.waitJS("the drill form", `(() => { const f = document.querySelector("#drill-form"); if (!f) return false; f.querySelector("select[name=type]").value = "general"; f.querySelector("select[name=severity]").value = "2"; return true })()`, 30*time.Second)
	duty.shots("drills")
	duty.submit("open a drill", map[string]string{`#drill-form input[name=name]`: "tabletop-1", `#drill-form input[name=country]`: "ML"}, `#drill-form button[type=submit]`)
	duty.waitJS("the drill's page", `location.pathname.startsWith("/console/crises/DRILL-") && location.pathname.endsWith("-tabletop-1")`, 30*time.Second)
	if !strings.Contains(duty.text("main"), "drill") {
		t.Errorf("the drill's page does not say it is a drill")
	}
}
