package stack_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authn/oidctest"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/ports"
	"github.com/demarche/demarche/services/gateway"
)

// chromium finds a Chromium or Chrome to drive: DEMARCHE_CHROMIUM, else the
// usual names on PATH ("" when none).
func chromium() string {
	for _, name := range []string{os.Getenv("DEMARCHE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browserTab is one page in its own browser context (its own cookies).
type browserTab struct {
	t    *testing.T
	ctx  context.Context
	name string
	dir  string
}

func (b browserTab) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed")
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// eval runs JavaScript in the page; evalBool and evalString give its value.
func (b browserTab) eval(expr string) error {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
	return err
}

func (b browserTab) evalBool(expr string) (bool, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
}

func (b browserTab) evalString(expr string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	return s
}

// waitJS waits until a JavaScript expression is true in the page.
func (b browserTab) waitJS(what, expr string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ok, err := b.evalBool("!!(" + expr + ")"); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.shot("failed")
			body := b.evalString(`document.querySelector("main") ? document.querySelector("main").innerText : document.body.innerText`)
			b.t.Fatalf("%s: %s: not seen in %s (%s); the page says:\n%s", b.name, what, timeout, expr, body)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// text is a selector's visible text ("" when absent).
func (b browserTab) text(sel string) string {
	return b.evalString(fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
}

func (b browserTab) shot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.dir, b.name+"-"+name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

// phoneWidth is the width the console must fit without scrolling sideways.
const phoneWidth, phoneHeight = 390, 844

// shots takes the page's screenshots at 1280×800 and at phone width, and
// checks that at phone width nothing is wider than the screen and every form
// field has a label.
func (b browserTab) shots(name string) {
	b.t.Helper()
	b.checkLabels(name)
	b.checkContrast(name)
	b.checkAxe(name)
	b.shot(name)
	b.run("phone width", chromedp.EmulateViewport(phoneWidth, phoneHeight))
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := b.evalBool(`document.documentElement.scrollWidth <= window.innerWidth + 1`)
		if err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			b.shot(name + "-phone-failed")
			wide := b.evalString(`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8).map(e => e.tagName + (e.id ? "#" + e.id : "") + "." + e.className + " right=" + Math.round(e.getBoundingClientRect().right)).join("\n")`)
			b.t.Fatalf("%s: %s is wider than a phone (%dpx); too wide:\n%s", b.name, name, phoneWidth, wide)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.checkAxe(name + "-phone")
	b.shot(name + "-phone")
	b.run("desktop width", chromedp.EmulateViewport(1280, 800))
}

// contrastJS lists the visible texts of the page whose colour contrasts with
// their background less than WCAG 2 AA asks (4.5:1, 3:1 for large text).
const contrastJS = `(() => {
  const rgb = s => { const m = s.match(/[\d.]+/g).map(Number); return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const over = (top, under) => ({r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a), b: top.b * top.a + under.b * (1 - top.a), a: 1});
  const bg = el => { const stack = []; for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.a > 0) stack.push(c); if (c.a === 1) break; }
    let out = {r: 255, g: 255, b: 255, a: 1}; for (let i = stack.length - 1; i >= 0; i--) out = over(stack[i], out); return out; };
  const bad = [];
  document.querySelectorAll("body *").forEach(el => {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) return;
    const st = getComputedStyle(el); const r = el.getBoundingClientRect();
    if (st.visibility === "hidden" || st.display === "none" || r.width === 0 || r.height === 0 || r.right < 0) return;
    let op = 1; for (let e = el; e; e = e.parentElement) op *= Number(getComputedStyle(e).opacity);
    const b = bg(el); let fg = rgb(st.color); fg = over({...fg, a: fg.a * op}, b);
    const L1 = lum(fg), L2 = lum(b); const ratio = (Math.max(L1, L2) + 0.05) / (Math.min(L1, L2) + 0.05);
    const size = parseFloat(st.fontSize), large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) bad.push(el.tagName + "." + el.className + " '" + el.textContent.trim().slice(0, 30) + "' " + ratio.toFixed(2));
  });
  return bad.slice(0, 10).join("\n");
})()`

// checkContrast: every visible text of the page is readable.
func (b browserTab) checkContrast(name string) {
	b.t.Helper()
	if bad := b.evalString(contrastJS); bad != "" {
		b.t.Errorf("%s: %s has text with too little contrast (WCAG AA):\n%s", b.name, name, bad)
	}
}

// checkLabels: every visible form field of the page has a label.
func (b browserTab) checkLabels(name string) {
	b.t.Helper()
	if bad := b.evalString(`[...document.querySelectorAll("input:not([type=hidden]), select, textarea")].filter(e => !e.labels || e.labels.length === 0).map(e => e.name).join(", ")`); bad != "" {
		b.t.Errorf("%s: %s has form fields without a label: %s", b.name, name, bad)
	}
}

// submit sets form fields (CSS selector -> value) and clicks a button, once:
// a live refresh patches the page in place (console.js), so the fields and
// the button located here are the nodes filled and clicked.
func (b browserTab) submit(what string, fields map[string]string, button string) {
	b.t.Helper()
	var acts []chromedp.Action[chromedp.Void]
	for sel, v := range fields {
		acts = append(acts, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SetValue(chromedp.CSS(sel), v))
	}
	acts = append(acts, chromedp.Click(chromedp.CSS(button)))
	b.run(what, acts...)
}

// startBrowser starts headless Chromium for the test and returns a maker of
// tabs, each in its own browser context (its own cookies).
func startBrowser(t *testing.T, chrome, art string) func(name string) browserTab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 800))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start Chromium (%s): %v", chrome, err)
	}
	return func(name string) browserTab {
		ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		// The first run opens the tab, which lives as long as the context of
		// that run: no timeout on it.
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
			t.Fatalf("%s: open a tab: %v", name, err)
		}
		return browserTab{t: t, ctx: ctx, name: name, dir: art}
	}
}

// TestConsole drives the operations-centre console in headless Chromium on
// the embedded stack: the duty officer signs in, opens a crisis, sees it on
// the board and watches stages change live; a requester's own approval of
// funding is refused on screen (four-eyes) while the approver, in another
// browser context, approves it; the analyst never sees a restricted crisis.
// Screenshots go to testdata/artefacts/console (ignored by git).
func TestConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test on the embedded stack; skipped with -short")
	}
	chrome := chromium()
	if chrome == "" {
		t.Skip("no Chromium found (apt-get install chromium, or set DEMARCHE_CHROMIUM to a Chrome or Chromium binary): the console's browser test is skipped")
	}
	art := filepath.Join("testdata", "artefacts", "console")
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, t.TempDir())
	defer s.Stop()
	base := s.APIURL()

	tab := startBrowser(t, chrome, art)
	signInAs := func(b browserTab, identity string) {
		b.run("sign in as "+identity, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#signin-"+identity)))
		b.shot("signin")
		b.run("sign in as "+identity, chromedp.Click(chromedp.CSS("#signin-"+identity)))
		b.waitJS("the board after sign-in", `location.pathname === "/console/" && document.querySelector(".board")`, 30*time.Second)
	}
	dutyAPI := apiCaller{t: t, url: base, token: readToken(t, s.TokenFile("duty"))}

	// The duty officer signs in and opens a crisis from the board.
	duty := tab("duty")
	signInAs(duty, "duty")
	duty.submit("open a crisis", map[string]string{
		`#open-form input[name=title]`: "Constitutional standoff in Niamey", `#open-form input[name=country]`: "NE",
		`#open-form select[name=type]`: "constitutional-crisis", `#open-form select[name=severity]`: "4",
	}, `#open-form button[type=submit]`)
	duty.waitJS("the new crisis's page", `location.pathname.startsWith("/console/crises/") && document.querySelector("#notice")`, 30*time.Second)
	loc := duty.evalString("location.href")
	id := strings.TrimPrefix(strings.SplitN(loc, "?", 2)[0], base+"/console/crises/")
	t.Logf("opened %s", id)

	// A restricted crisis, opened through the API, for confidentiality.
	code, opened, raw := dutyAPI.call("POST", "/v1/crises", `{"crisis": {"title": "Quiet channel to the junta", "countryCode": "NE", "crisisType": "CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE", "severity": 3, "confidentiality": "CONFIDENTIALITY_RESTRICTED"}}`)
	if code != http.StatusCreated {
		t.Fatalf("open restricted crisis: %d %s", code, raw)
	}
	quiet := openedIDHTTP(t, opened)

	// On the board, the crisis waits in early warning for the duty officer.
	card := func(stage string) string {
		return fmt.Sprintf(`document.querySelector('section[aria-labelledby="col-%s"] article[data-crisis="%s"]')`, stage, id)
	}
	duty.run("board", chromedp.Navigate(base+"/console/"))
	duty.waitJS("the crisis in early warning", card("warning"), 30*time.Second)
	duty.waitJS("who it waits for", card("warning")+`.innerText.includes("Waiting for duty officer")`, 30*time.Second)
	duty.waitJS("live updates connected", `document.body.getAttribute("data-live-ready") === "1"`, 20*time.Second)
	duty.shots("board")

	// A decision recorded elsewhere (the API) moves the card live: no reload.
	if err := duty.eval(`window.__noReload = true`); err != nil {
		t.Fatal(err)
	}
	if code, _, raw := dutyAPI.call("POST", "/v1/crises/"+id+"/decisions", `{"rationale": "credible reports", "triage": {"assessment": "parliament dissolved"}}`); code != http.StatusOK {
		t.Fatalf("triage: %d %s", code, raw)
	}
	duty.waitJS("the crisis moved to good offices live", card("good-offices")+` && window.__noReload === true`, 30*time.Second)
	duty.shot("board-live")

	// On the crisis page, decisions through forms: good offices (a démarche),
	// the envoy and the standby team, whose 72-hour deadline counts down.
	duty.run("crisis page", chromedp.Navigate(base+"/console/crises/"+id))
	duty.waitJS("the good-offices form", `document.querySelector("#form-good-offices")`, 30*time.Second)
	// No consequential choice is made for the person deciding: neither the
	// good-offices option nor a control is preselected.
	duty.waitJS("no preselected option or control", `document.querySelector("#form-good-offices select[name=option]").value === "" && document.querySelector("#form-control select[name=control]").value === "" && document.querySelector("#form-control select[name=stage]").value === ""`, 10*time.Second)
	duty.shots("crisis-decision-form") // the form read from the schema: every field labelled, readable, fits a phone
	// Chosen in the page, so a live refresh replacing the form just before
	// is no matter (a changed choice then keeps the form as it is). The
	// choice reads in the report's words, from the schema's (words) option.
	duty.waitJS("the option in words", `[...document.querySelectorAll("#form-good-offices select[name=option] option")].some(o => o.value === "demarche" && o.text === "démarche")`, 30*time.Second)
	duty.waitJS("choose démarche", `(() => { const e = document.querySelector("#form-good-offices select[name=option]"); if (!e) return false; e.value = "demarche"; return e.value === "demarche" })()`, 30*time.Second)
	duty.submit("good offices", map[string]string{`#form-good-offices textarea[name=rationale]`: "a formal démarche to the authorities"}, `#form-good-offices button[type=submit]`)
	duty.waitJS("good offices recorded", `location.search.includes("done=good-offices")`, 30*time.Second)
	duty.waitJS("the envoy form", `document.querySelector("#form-envoy-appointment")`, 30*time.Second)
	// A name that is no roster id is refused: the page comes back by a
	// redirect (no POST address to reload), every typed value kept, the
	// reason beside the field in the field's own words.
	decisionsBefore := duty.evalString(`document.querySelectorAll("#decisions li").length + ""`)
	duty.submit("envoy appointment with a made-up id", map[string]string{
		`#form-envoy-appointment input[name=envoy]`:        "amara-diallo",
		`#form-envoy-appointment input[name=standby_team]`: "sb-fatou-sow",
		`#form-envoy-appointment textarea[name=rationale]`: "regional standing",
	}, `#form-envoy-appointment button[type=submit]`)
	duty.waitJS("the refusal beside the envoy field, values kept", `location.pathname === "/console/crises/`+id+`" && location.search.includes("failed=") && document.querySelector("#in-envoy-appointment-envoy-error") && document.querySelector("#in-envoy-appointment-envoy-error").innerText.includes("Special envoy: \"amara-diallo\" is not a roster id") && document.querySelector("#form-envoy-appointment input[name=envoy]").value === "amara-diallo" && document.querySelector("#form-envoy-appointment input[name=standby_team]").value === "sb-fatou-sow" && document.querySelector("#form-envoy-appointment textarea[name=rationale]").value === "regional standing"`, 30*time.Second)
	if txt := duty.text("#error"); strings.Contains(txt, "envoy_appointment.") {
		t.Errorf("the refusal names the schema's field path: %s", txt)
	}
	duty.shots("crisis-refused-kept")
	// Reloading the page shows the refusal again and sends nothing.
	duty.run("reload the refused page", chromedp.Reload())
	duty.waitJS("the refusal still shown, nothing recorded", `document.querySelector("#in-envoy-appointment-envoy-error") && document.querySelectorAll("#decisions li").length + "" === "`+decisionsBefore+`"`, 30*time.Second)
	// The roster picker: search the senior envoys, see who cannot be booked,
	// pick one; then a second standby-team expert beside the first.
	duty.waitJS("clear the envoy", `(() => { const e = document.querySelector("#form-envoy-appointment input[name=envoy]"); e.value = ""; return e.value === "" })()`, 10*time.Second)
	duty.run("open the envoy picker", chromedp.Click(chromedp.CSS(`#form-envoy-appointment a.roster-link[data-for="in-envoy-appointment-envoy"]`)))
	duty.waitJS("the senior envoys", `document.querySelector("#picker-in-envoy-appointment-envoy[data-loaded]") && document.querySelector('#picker-in-envoy-appointment-envoy button.pick[data-id="env-amara-diallo"]') && !document.querySelector('#picker-in-envoy-appointment-envoy [data-expert^="sb-"]')`, 30*time.Second)
	duty.waitJS("search by language and region", `(() => { const b = document.querySelector("#picker-in-envoy-appointment-envoy"); b.querySelector('input[data-name="language"]').value = "fr"; b.querySelector('select[data-name="region"]').value = "africa"; b.querySelector("#roster-search-in-envoy-appointment-envoy button").click(); return true })()`, 10*time.Second)
	duty.waitJS("only French-speaking envoys for Africa", `document.querySelector("#picker-in-envoy-appointment-envoy[data-loaded]") && document.querySelector('#picker-in-envoy-appointment-envoy [data-expert="env-amara-diallo"]') && !document.querySelector('#picker-in-envoy-appointment-envoy [data-expert="env-kenji-sato"]')`, 30*time.Second)
	duty.shots("crisis-roster-picker")
	duty.run("pick the envoy", chromedp.Click(chromedp.CSS(`#picker-in-envoy-appointment-envoy button.pick[data-id="env-amara-diallo"]`)))
	duty.run("open the standby-team picker", chromedp.Click(chromedp.CSS(`#form-envoy-appointment a.roster-link[data-for="in-envoy-appointment-standby_team"]`)))
	duty.waitJS("the standby experts, a conflict shown before submitting", `document.querySelector("#picker-in-envoy-appointment-standby_team[data-loaded]") && document.querySelector('#picker-in-envoy-appointment-standby_team [data-expert="sb-hugo-weber"] .conflict-note') && !document.querySelector('#picker-in-envoy-appointment-standby_team button.pick[data-id="sb-hugo-weber"]')`, 30*time.Second)
	duty.run("pick a second standby expert", chromedp.Click(chromedp.CSS(`#picker-in-envoy-appointment-standby_team button.pick[data-id="sb-grace-okafor"]`)))
	duty.waitJS("the picks in the fields", `document.querySelector("#form-envoy-appointment input[name=envoy]").value === "env-amara-diallo" && document.querySelector("#form-envoy-appointment input[name=standby_team]").value === "sb-fatou-sow, sb-grace-okafor"`, 10*time.Second)
	duty.run("book through the decision", chromedp.Click(chromedp.CSS(`#form-envoy-appointment button[type=submit]`)))
	duty.waitJS("envoy recorded", `location.search.includes("done=envoy-appointment")`, 30*time.Second)
	// The roster now shows the envoy booked, to anyone searching it.
	duty.run("roster page", chromedp.Navigate(base+"/console/roster?kind=senior-envoy"))
	duty.waitJS("the booked envoy marked", `document.querySelector('[data-expert="env-amara-diallo"] .conflict-note') && document.querySelector('[data-expert="env-amara-diallo"]').innerText.includes("booked in another crisis")`, 30*time.Second)
	duty.shots("roster")
	duty.run("crisis page", chromedp.Navigate(base+"/console/crises/"+id))
	duty.waitJS("the standby team's 72-hour countdown", `[...document.querySelectorAll("#deadlines li")].some(li => li.innerText.includes("standby team deployment") && /\b(2d|71h|72h)\b.* left/.test(li.innerText))`, 30*time.Second)
	duty.waitJS("the deployment form", `document.querySelector("#form-standby-team-deployed")`, 30*time.Second)
	duty.shots("crisis-standby-countdown")
	duty.submit("standby team deployed", map[string]string{`#form-standby-team-deployed input[name=location]`: "Niamey",
		`#form-standby-team-deployed textarea[name=rationale]`: "team on the ground"}, `#form-standby-team-deployed button[type=submit]`)
	duty.waitJS("deployment recorded", `location.search.includes("done=standby-team-deployed")`, 30*time.Second)
	duty.waitJS("funding stage", `[...document.querySelectorAll(".current-stage")].some(e => e.innerText.includes("rapid-response funding"))`, 30*time.Second)

	// Alice, a desk officer who is also a funding officer, requests money and
	// may not approve her own request: the refusal names the rule.
	aliceTok, err := s.Issuer().Mint(authn.Claims{Subject: "alice", Name: "Alice (desk and funding officer)",
		Roles: []string{"desk-officer", "funding-officer"}, Clearance: "restricted"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	alice := tab("alice")
	alice.run("token sign-in", chromedp.Navigate(base+"/console/signin"), chromedp.WaitVisible(chromedp.CSS("#token")))
	alice.submit("token sign-in", map[string]string{"#token": aliceTok}, "#signin-token")
	alice.waitJS("signed in", `location.pathname === "/console/"`, 30*time.Second)
	alice.run("crisis page", chromedp.Navigate(base+"/console/crises/"+id))
	alice.waitJS("the funding-request form", `document.querySelector("#form-funding-request")`, 30*time.Second)
	alice.waitJS("no fund chosen for her", `document.querySelector("#form-funding-request select[name=fund]").value === ""`, 10*time.Second)
	alice.submit("funding request", map[string]string{
		`#form-funding-request select[name=fund]`:      "flexible-financing",
		`#form-funding-request input[name=amount_usd]`: "120000", `#form-funding-request input[name=purpose]`: "dialogue venue and travel",
		`#form-funding-request input[name=request_id]`: "FR-1", `#form-funding-request textarea[name=rationale]`: "mediation costs",
	}, `#form-funding-request button[type=submit]`)
	alice.waitJS("the request awaiting a decision", `document.querySelector("#decide-FR-1") && document.querySelector("#funding .four-eyes")`, 30*time.Second)
	alice.submit("self-approval", map[string]string{`#decide-FR-1 textarea[name=rationale]`: "urgent"}, `#decide-FR-1 button[value=true]`)
	alice.waitJS("the four-eyes refusal on screen", `document.querySelector("#error") && document.querySelector("#error").innerText.includes("rule four-eyes")`, 30*time.Second)
	alice.shot("four-eyes-refused")
	alice.run("approvals inbox", chromedp.Navigate(base+"/console/approvals"))
	alice.waitJS("her own request marked as not approvable", `document.querySelector('article.own[data-request="FR-1"]') && document.querySelector("article.own").innerText.includes("Not approvable by you") && !document.querySelector("#approve-FR-1")`, 30*time.Second)
	alice.shot("inbox-own-request")

	// The duty officer's crisis page is open and follows along live.
	duty.run("crisis page", chromedp.Navigate(base+"/console/crises/"+id))
	duty.waitJS("live updates connected", `document.body.getAttribute("data-live-ready") === "1"`, 20*time.Second)
	if err := duty.eval(`window.__noReload = true`); err != nil {
		t.Fatal(err)
	}

	// The approver, in a second browser context, approves from the inbox.
	approver := tab("approver")
	signInAs(approver, "approver")
	approver.run("approvals inbox", chromedp.Navigate(base+"/console/approvals"))
	approver.waitJS("the request to approve", `document.querySelector("#approve-FR-1")`, 30*time.Second)
	approver.shots("inbox")
	approver.submit("approve", map[string]string{`#approve-FR-1 textarea[name=rationale]`: "within the ceiling"}, `#approve-FR-1 button[value=true]`)
	approver.waitJS("approved", `document.querySelector("#notice") && !document.querySelector("#approve-FR-1")`, 30*time.Second)
	approver.shot("approved")

	duty.waitJS("the stage moved to sustained follow-up live", `[...document.querySelectorAll(".current-stage")].some(e => e.innerText.includes("sustained follow-up")) && window.__noReload === true`, 60*time.Second)
	duty.waitJS("the approval in the funding list", `document.querySelector("#funding").innerText.includes("approved by approver")`, 30*time.Second)
	duty.shot("crisis-live-follow-up")

	// A control refused on screen names the rule and keeps what was typed;
	// an escalation goes through.
	duty.submit("skip an ended stage", map[string]string{`#form-control select[name=control]`: "skip-stage", `#form-control select[name=stage]`: "warning",
		`#form-control textarea[name=reason]`: "by mistake"}, `#form-control button[type=submit]`)
	duty.waitJS("the refusal, with its rule, the form kept", `document.body.innerText.includes("rule skip-running-or-ahead") && document.querySelector("#form-control-error") && document.querySelector("#form-control textarea[name=reason]").value === "by mistake" && document.querySelector("#form-control select[name=stage]").value === "warning" && !location.pathname.endsWith("/control")`, 30*time.Second)
	duty.shot("control-refused")
	duty.submit("escalate", map[string]string{`#form-control select[name=control]`: "escalate", `#form-control textarea[name=reason]`: "militias mobilising"}, `#form-control button[type=submit]`)
	duty.waitJS("escalated", `location.search.includes("done=escalate") && document.querySelector(".sev").innerText.includes("severity 5")`, 30*time.Second)

	// Sustained follow-up is no dead end: the page says when the next
	// check-in is due and offers the check-in now, its recommendation not
	// chosen for the desk officer; a hand-over ends follow-up.
	duty.waitJS("the follow-up status and the check-in form", `document.querySelector("#follow-up-status") && document.querySelector("#follow-up-status").innerText.includes("next check-in due") && document.querySelector("#form-follow-up-check-in") && document.querySelector("#form-follow-up-check-in select[name=recommendation]").value === ""`, 30*time.Second)
	duty.shots("crisis-follow-up")
	duty.waitJS("commitments implemented", `(() => { const e = document.querySelector("#form-follow-up-check-in input[name=commitments_implemented]"); e.checked = true; return e.checked })()`, 10*time.Second)
	duty.submit("follow-up check-in", map[string]string{`#form-follow-up-check-in select[name=recommendation]`: "hand-over",
		`#form-follow-up-check-in input[name=tensions]`: "none reported", `#form-follow-up-check-in textarea[name=rationale]`: "peacebuilding office takes over"}, `#form-follow-up-check-in button[type=submit]`)
	duty.waitJS("check-in recorded", `location.search.includes("done=follow-up-check-in")`, 30*time.Second)
	duty.waitJS("the closure stage in the header, the closure form", `document.querySelector("#current-stage") && document.querySelector("#current-stage").innerText === "closure" && document.querySelector("#form-closure")`, 60*time.Second)
	duty.waitJS("no outcome chosen for the head of department", `document.querySelector("#form-closure select[name=outcome]").value === ""`, 10*time.Second)
	duty.shots("crisis-closure")
	duty.run("board", chromedp.Navigate(base+"/console/"))
	duty.waitJS("the crisis in the closure column", `document.querySelector('section[aria-labelledby="col-closure"] article[data-crisis="`+id+`"]')`, 30*time.Second)
	duty.shots("board-closure")
	duty.run("crisis page", chromedp.Navigate(base+"/console/crises/"+id))
	duty.waitJS("the closure form", `document.querySelector("#form-closure")`, 30*time.Second)
	duty.submit("closure", map[string]string{`#form-closure select[name=outcome]`: "averted", `#form-closure textarea[name=lessons]`: "regional lead worked",
		`#form-closure textarea[name=rationale]`: "agreement signed"}, `#form-closure button[type=submit]`)
	duty.waitJS("closed", `document.querySelector("#current-stage") && document.querySelector("#current-stage").innerText === "closed"`, 60*time.Second)
	// A closed crisis offers no control and no sharing; nothing counts down.
	duty.waitJS("no controls or sharing once closed", `!document.querySelector("#controls") && !document.querySelector("#sharing") && !document.querySelector("#deadlines .countdown")`, 30*time.Second)
	// Post/redirect/get: the address is the crisis page's, and a reload sends nothing.
	closedDecisions := duty.evalString(`document.querySelectorAll("#decisions li").length + ""`)
	duty.run("reload after closing", chromedp.Reload())
	duty.waitJS("the same decisions after a reload", `location.pathname === "/console/crises/`+id+`" && document.querySelectorAll("#decisions li").length + "" === "`+closedDecisions+`" && !document.querySelector("#error")`, 30*time.Second)
	duty.shots("crisis-closed")
	duty.run("figures", chromedp.Navigate(base+"/console/figures"))
	duty.waitJS("the figures of the closed crisis", `document.querySelector("#figures-table") && document.querySelector("#figures-table").innerText.includes("`+id+`") && document.querySelector(".chart svg rect")`, 30*time.Second)
	duty.shot("figures")
	duty.run("board", chromedp.Navigate(base+"/console/"))
	duty.waitJS("the restricted crisis on the duty officer's board", `document.querySelector('article[data-crisis="`+quiet+`"]')`, 30*time.Second)

	// The analyst (public clearance) never sees the restricted crisis: not on
	// the board, not by its address.
	analyst := tab("analyst")
	signInAs(analyst, "analyst")
	analyst.waitJS("a public crisis is listed", `document.querySelector(".board")`, 10*time.Second)
	if txt := analyst.text("main"); strings.Contains(txt, quiet) || strings.Contains(txt, "Quiet channel") {
		t.Fatalf("the analyst's board shows the restricted crisis:\n%s", txt)
	}
	analyst.shot("board")
	analyst.run("restricted crisis by address", chromedp.Navigate(base+"/console/crises/"+quiet))
	analyst.waitJS("not found", `document.querySelector("#error-message") && document.querySelector("#error-message").innerText.includes("No such crisis")`, 10*time.Second)
	if txt := analyst.text("body"); strings.Contains(txt, "Quiet channel") {
		t.Fatalf("the analyst's page shows the restricted crisis:\n%s", txt)
	}
	analyst.shot("restricted-not-found")

	// Keyboard: the first Tab reaches the skip link, which moves focus to
	// the page's content.
	analyst.run("board", chromedp.Navigate(base+"/console/"))
	analyst.waitJS("the board", `document.querySelector(".board")`, 30*time.Second)
	analyst.run("tab to the skip link", chromedp.KeyEvent(kb.Tab))
	analyst.waitJS("the skip link focused and visible", `document.activeElement && document.activeElement.classList.contains("skip") && document.activeElement.getBoundingClientRect().left >= 0`, 10*time.Second)
	analyst.shot("skip-link")
	analyst.run("follow the skip link", chromedp.KeyEvent(kb.Enter))
	analyst.waitJS("focus on the content", `document.activeElement && document.activeElement.id === "main"`, 10*time.Second)

	// Warnings: the analyst's signals cross a situation's threshold and early
	// warning opens its crisis (restricted, as early warning's crises are by
	// default). The duty officer's inbox shows the situation's score with
	// its explanation and the crisis its warning opened; the analyst, not
	// cleared for it, reads the score and the signals but never the crisis.
	analystAPI := apiCaller{t: t, url: base, token: readToken(t, s.TokenFile("analyst"))}
	now := time.Now().UTC()
	var sigs []string
	for i, what := range []string{"soldiers surround the presidential palace", "state television off the air", "border closed by the military"} {
		sigs = append(sigs, fmt.Sprintf(`{"sourceId": "CONSOLE-ML-%d-%d", "countryCode": "ML", "crisisType": "CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE", "weight": 10, "observedAt": %q, "summary": %q}`,
			now.Unix(), i, now.Add(time.Duration(i-3)*time.Hour).Format(time.RFC3339), what))
	}
	if code, _, raw := analystAPI.call("POST", "/v1/signals", `{"signals": [`+strings.Join(sigs, ",")+`]}`); code != http.StatusOK {
		t.Fatalf("signals: %d %s", code, raw)
	}
	situation := `document.querySelector('[data-situation="ML/unconstitutional-change"]')`
	duty.run("warnings inbox", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/console/warnings"))
	duty.waitJS("the situation above its threshold, with the crisis its warning opened", situation+` && `+situation+`.querySelector(".badge.above") && `+situation+`.querySelector('.crises-of a[href^="/console/crises/"]') && `+situation+`.innerText.includes("opened it")`, 90*time.Second)
	duty.waitJS("the score's explanation", situation+`.querySelector("details.explain") && `+situation+`.querySelectorAll("details.explain tbody tr").length === 3 && `+situation+`.innerText.includes("Score 30.0")`, 30*time.Second)
	duty.waitJS("open the explanation", `(() => { const d = document.querySelector('[data-situation="ML/unconstitutional-change"] details.explain'); if (!d) return false; d.open = true; return d.open })()`, 30*time.Second)
	duty.shots("warnings")
	duty.waitJS("follow the link to the situation's page", `(() => { const a = document.querySelector('[data-situation="ML/unconstitutional-change"] h2 a'); if (a) a.click(); return !!a })()`, 30*time.Second)
	duty.waitJS("the situation's page", `location.pathname === "/console/situations/ML/unconstitutional-change" && document.querySelector("details.explain[open]")`, 30*time.Second)
	duty.shots("situation")
	duty.waitJS("follow the link to the crisis the warning opened", `(() => { const a = document.querySelector('.crises-of a[href^="/console/crises/"]'); if (a) a.click(); return !!a })()`, 30*time.Second)
	duty.waitJS("the crisis's warnings, linked back to the situation", `location.pathname.startsWith("/console/crises/") && document.querySelector("#warnings").innerText.includes("person_analyst") && document.querySelector('#situation-link[href="/console/situations/ML/unconstitutional-change"]')`, 30*time.Second)

	analyst.run("warnings inbox", chromedp.Navigate(base+"/console/warnings"))
	analyst.waitJS("the look-up form", `document.querySelector("#lookup-form")`, 30*time.Second)
	analyst.submit("look up the situation", map[string]string{`#lookup-form input[name=country]`: "ML", `#lookup-form select[name=type]`: "unconstitutional-change"}, `#lookup-form button[type=submit]`)
	// The inbox may list the situation already: wait for the look-up's own
	// page (its query in the address), or what follows runs on the page
	// being left (axe-core injected into it is gone once the next loads).
	analyst.waitJS("the score and its signals", `location.search.includes("country=ML") && document.readyState === "complete" && `+situation+` && `+situation+`.innerText.includes("Score 30.0") && `+situation+`.querySelectorAll("details.explain tbody tr").length === 3`, 30*time.Second)
	if txt := analyst.text("main"); strings.Contains(txt, "/console/crises/") || analyst.evalString(situation+`.querySelectorAll('a[href^="/console/crises/"]').length + ""`) != "0" {
		t.Fatalf("the analyst's warnings page links the restricted crisis:\n%s", txt)
	}
	analyst.shots("warnings-uncleared")
	// The scorecard of the rules in force, from the inbox's link: the rules'
	// version, the data named (the shipped synthetic sample), the rules
	// beside the two baselines and the sweep.
	analyst.run("the scorecard", chromedp.Click(chromedp.CSS("#scorecard-link")))
	analyst.waitJS("the scorecard", `location.pathname === "/console/warning/scorecard" && document.readyState === "complete" && document.querySelector("#rules-version").innerText !== "" && document.querySelector("#scorecard-data").innerText.includes("synthetic") && document.querySelectorAll("#scorecard-table thead th[data-predictor]").length === 3 && document.querySelectorAll("#sweep-table tbody tr").length > 1 && /AUPR/.test(document.querySelector("#scorecard-table").innerText) && /Brier/.test(document.querySelector("#scorecard-table").innerText)`, 120*time.Second)
	analyst.shots("scorecard")

	// Phone first: at 390×844 the pending action comes first, then the
	// deadlines, then the rest (sharing and controls after them).
	second := openedIDHTTP(t, func() map[string]any {
		code, out, raw := dutyAPI.call("POST", "/v1/crises", `{"crisis": {"title": "Mutiny at the Kati barracks", "countryCode": "ML", "crisisType": "CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}}`)
		if code != http.StatusCreated {
			t.Fatalf("open the second crisis: %d %s", code, raw)
		}
		return out
	}())
	waitPendingHTTP(t, dutyAPI, second, "triage")
	duty.run("phone width", chromedp.EmulateViewport(phoneWidth, phoneHeight), chromedp.Navigate(base+"/console/crises/"+second))
	duty.waitJS("the triage form", `document.querySelector("#form-triage")`, 30*time.Second)
	duty.waitJS("the pending action first, then deadlines, then the rest", `(() => {
		const top = id => { const e = document.getElementById(id); return e ? e.getBoundingClientRect().top : Infinity; };
		const p = top("pending"), d = top("deadlines");
		return p < d && ["sharing", "controls", "funding", "decisions", "timeline", "partners", "warnings"].every(id => !document.getElementById(id) || top(id) > d);
	})()`, 10*time.Second)
	duty.shot("crisis-phone-order")
	duty.run("desktop width", chromedp.EmulateViewport(1280, 800))

	// A session that ends keeps the draft: the page says the session ended
	// (live updates off, not "on"), a form sent then goes to sign-in, and
	// signing in again brings the form back as it was typed.
	carolTok, err := s.Issuer().Mint(authn.Claims{Subject: "carol", Name: "Carol (duty officer)", Roles: []string{"duty-officer"}, Clearance: "public"}, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	carol := tab("carol")
	carol.run("token sign-in", chromedp.Navigate(base+"/console/signin?next="+url.QueryEscape("/console/crises/"+second)), chromedp.WaitVisible(chromedp.CSS("#token")))
	carol.submit("token sign-in", map[string]string{"#token": carolTok}, "#signin-token")
	carol.waitJS("the crisis page", `location.pathname === "/console/crises/`+second+`" && document.querySelector("#form-triage")`, 30*time.Second)
	carol.waitJS("live updates on", `document.body.getAttribute("data-live-ready") === "1"`, 20*time.Second)
	carol.run("type the triage", chromedp.SendKeys(chromedp.CSS(`#form-triage textarea[name=assessment]`), "soldiers hold the barracks"),
		chromedp.SendKeys(chromedp.CSS(`#form-triage textarea[name=rationale]`), "credible reports from the mission"))
	carol.waitJS("the session ended, said on the page", `document.body.getAttribute("data-session-ended") === "1" && document.querySelector("#signin-again") && !document.querySelector("#live-status").innerText.includes("Live updates: on")`, 90*time.Second)
	carol.shot("session-ended")
	carol.run("send the form after the session ended", chromedp.Click(chromedp.CSS(`#form-triage button[type=submit]`)))
	carol.waitJS("sign in again, told why", `location.pathname === "/console/signin" && document.querySelector("#notice") && document.querySelector("#notice").innerText.includes("Your session ended")`, 30*time.Second)
	carol.shots("signin-expired")
	carolTok, err = s.Issuer().Mint(authn.Claims{Subject: "carol", Name: "Carol (duty officer)", Roles: []string{"duty-officer"}, Clearance: "public"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	carol.submit("token sign-in", map[string]string{"#token": carolTok}, "#signin-token")
	carol.waitJS("back on the crisis page, the draft put back", `location.pathname === "/console/crises/`+second+`" && document.querySelector("#form-triage textarea[name=assessment]").value === "soldiers hold the barracks" && document.querySelector("#form-triage textarea[name=rationale]").value === "credible reports from the mission" && document.querySelector("#form-triage .draft-note")`, 30*time.Second)
	carol.shots("crisis-draft-restored")
	carol.run("send it", chromedp.Click(chromedp.CSS(`#form-triage button[type=submit]`)))
	carol.waitJS("triage recorded, the draft dropped", `location.search.includes("done=triage") && localStorage.getItem("demarche-draft:`+second+`/triage") === null`, 30*time.Second)

	// Drills stay off the board unless asked for, as one card each; a
	// finished drill shows no countdown and is no "recently closed" crisis.
	code, out, raw := dutyAPI.call("POST", "/v1/crises", `{"crisis": {"title": "Drill: coup in the capital", "countryCode": "GN", "crisisType": "CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}, "drill": {"decisionDelay": "1s", "timeScale": 0.000001}}`)
	if code != http.StatusCreated {
		t.Fatalf("open a drill: %d %s", code, raw)
	}
	drill := openedIDHTTP(t, out)
	duty.run("board", chromedp.Navigate(base+"/console/"))
	duty.waitJS("the board without the drill", `document.querySelector("#drill-toggle") && document.querySelector(".board") && !document.querySelector('article[data-crisis="`+drill+`"]')`, 30*time.Second)
	duty.run("board with drills", chromedp.Navigate(base+"/console/?drills=1"))
	duty.waitJS("the drill, one card", `document.querySelectorAll('article[data-crisis="`+drill+`"]').length === 1`, 60*time.Second)
	duty.shots("board-drills")
	duty.waitJS("the finished drill among the closed, with no countdown", `(() => { const c = document.querySelector('.closed-list article[data-crisis="`+drill+`"]'); return c && !c.querySelector(".countdown") && !c.innerText.includes("overdue") && document.querySelectorAll('article[data-crisis="`+drill+`"]').length === 1 })()`, 180*time.Second)
	duty.run("board", chromedp.Navigate(base+"/console/"))
	duty.waitJS("no drill among the recently closed", `document.querySelector(".board") && !document.querySelector('article[data-crisis="`+drill+`"]') && document.querySelector('.closed-list article[data-crisis="`+id+`"]')`, 30*time.Second)
	duty.shots("board-no-drills")
	t.Logf("screenshots in %s", art)
}

// TestConsoleOIDCSignIn signs in to the console in Chromium through an
// OpenID Connect issuer on another site than the console (localhost against
// 127.0.0.1, as a real identity provider is; the browser leaves the
// issuer's page for the callback, as after a real sign-in): the login cookie comes back
// with the issuer's redirect (SameSite=Lax), the session cookie
// (SameSite=Strict) set by the callback is sent on the console's next page,
// the page shows who signed in with the issuer's roles, and signing out ends
// the session and offers the issuer's own sign-out.
func TestConsoleOIDCSignIn(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test on the embedded stack; skipped with -short")
	}
	chrome := chromium()
	if chrome == "" {
		t.Skip("no Chromium found (apt-get install chromium, or set DEMARCHE_CHROMIUM): the console's browser test is skipped")
	}
	art := filepath.Join("testdata", "artefacts", "console")
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, t.TempDir())
	defer s.Stop()
	const clientID, secret = "demarche-console", "console-secret"
	idp := oidctest.New(clientID, secret, map[string]any{"sub": "amina", "name": "Amina Diallo",
		"roles": []string{"duty-officer", "analyst"}, "clearance": "restricted"}, oidctest.Options{Host: "localhost", Consent: true})
	defer idp.Close()
	ctx := context.Background()
	v, err := authn.NewOIDC(ctx, idp.URL, authn.Audience)
	if err != nil {
		t.Fatal(err)
	}
	port, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.Start(ctx, gateway.Config{Host: "127.0.0.1", Port: port, NATSURL: s.NATSURLFor(natsauth.Gateway),
		TemporalAddress: s.TemporalAddress(), Namespace: s.Namespace(), Verifier: v,
		ConsoleOIDC: &gateway.ConsoleOIDC{Issuer: idp.URL, ClientID: clientID, ClientSecret: secret,
			RedirectURL: fmt.Sprintf("http://127.0.0.1:%d/console/oidc/callback", port)}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Stop()

	b := startBrowser(t, chrome, art)("oidc")
	b.run("a page before signing in", chromedp.Navigate(gw.URL()+"/console/warnings"))
	b.waitJS("the sign-in page offers the organisation's issuer, and no demo identity", `location.pathname === "/console/signin" && document.querySelector("#signin-oidc") && !document.querySelector("#signin-duty")`, 30*time.Second)
	b.shots("signin")
	b.waitJS("follow the issuer's sign-in", `(() => { const a = document.querySelector("#signin-oidc"); if (a) a.click(); return !!a })()`, 10*time.Second)
	b.waitJS("approve at the issuer", `location.origin === "`+idp.URL+`" && (() => { const a = document.querySelector("#approve"); if (a) a.click(); return !!a })()`, 30*time.Second)
	b.waitJS("back on the page asked for, signed in by the issuer", `location.origin === "`+gw.URL()+`" && location.pathname === "/console/warnings" && document.querySelector("#whoami") && document.querySelector("#whoami").innerText.includes("Amina Diallo") && document.querySelector("#whoami").innerText.includes("cleared restricted")`, 60*time.Second)
	b.shot("signed-in")
	b.waitJS("sign out", `(() => { const f = document.querySelector(".who form"); if (f) f.submit(); return !!f })()`, 10*time.Second)
	b.waitJS("signed out, with the issuer's sign-out offered", `location.pathname === "/console/signin" && document.querySelector("#end-session") && document.querySelector("#end-session").href.startsWith("`+idp.URL+`/logout?client_id=`+clientID+`")`, 30*time.Second)
	b.run("the console again", chromedp.Navigate(gw.URL()+"/console/"))
	b.waitJS("asked to sign in again", `location.pathname === "/console/signin" && !document.querySelector("#whoami")`, 30*time.Second)
}
