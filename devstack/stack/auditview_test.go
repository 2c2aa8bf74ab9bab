package stack_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/workflows/crisis"
)

// consoleGet reads a console page as the token's session: status and body.
func consoleGet(t *testing.T, base, token, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.AddCookie(&http.Cookie{Name: "demarche_session", Value: token})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body) // a short read fails the checks on the body below
	return resp.StatusCode, string(b)
}

// TestConsoleAuditorAndTimeline: the auditor's page shows a real crisis's
// chain status, and a verification run from the page (a CSRF-checked post,
// then a redirect) is recorded on the chain and read back; the evidence
// bundle downloads and verifies offline with the stack's audit key; the duty
// officer and the analyst are refused the page. A comment from the console
// appears on the timeline and in the JSON and CSV exports; the partner's
// export of the same crisis has neither the comment nor the decision's
// rationale. With Chromium, the auditor's page and the printed report are
// shot at 1280×800 (DEMARCHE_SHOTS_DIR, else testdata/artefacts/console).
func TestConsoleAuditorAndTimeline(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	base := s.APIURL()
	tok := func(who string) string { return readToken(t, s.TokenFile(who)) }
	duty := apiCaller{t: t, url: base, token: tok("duty")}
	ecowas := apiCaller{t: t, url: base, token: tok("ecowas")}
	auditorAPI := apiCaller{t: t, url: base, token: tok("auditor")}

	code, opened, raw := duty.call("POST", "/v1/crises", `{"crisis": {"title": "Audit view test", "countryCode": "NE", "crisisType": "CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE", "severity": 3, "confidentiality": "CONFIDENTIALITY_RESTRICTED", "sharedWith": ["ECOWAS"]}}`)
	if code != http.StatusCreated {
		t.Fatalf("open: %d %s", code, raw)
	}
	id := openedIDHTTP(t, opened)
	const planted = "PLANTED-RATIONALE-only-for-insiders"
	waitPendingHTTP(t, duty, id, "triage")
	if code, _, raw := duty.call("POST", "/v1/crises/"+id+"/decisions", `{"rationale": "`+planted+`", "triage": {"assessment": "credible"}}`); code != http.StatusOK {
		t.Fatalf("triage: %d %s", code, raw)
	}

	// A comment from the console's timeline page (post/redirect/get).
	const comment = "Called the ECOWAS desk: COMMENT-7f3"
	_, page := consoleGet(t, base, tok("duty"), "/console/crises/"+id+"/timeline")
	m := csrfField.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `id="form-comment"`) {
		t.Fatalf("the timeline page has no comment form:\n%.2000s", page)
	}
	if code, loc := consolePost(t, base, tok("duty"), "/console/crises/"+id+"/comment", url.Values{"csrf": {m[1]}, "key": {"comment-1"}, "text": {comment}}); code != http.StatusSeeOther || !strings.Contains(loc, "done=comment") {
		t.Fatalf("comment: %d %s", code, loc)
	}
	if _, page := consoleGet(t, base, tok("duty"), "/console/crises/"+id+"/timeline"); !strings.Contains(page, comment) || !strings.Contains(page, `data-kind="comment"`) {
		t.Fatalf("the comment is not on the timeline:\n%.3000s", page)
	}
	// The CLI: a comment and the CSV report, through the same route.
	if out, err := runCLI(t, s, "crisis", "comment", id, "--text", "CLI-COMMENT-from-the-terminal"); err != nil || !strings.Contains(out, "comment recorded (2 in all)") {
		t.Fatalf("crisis comment: %v\n%s", err, out)
	}
	if out, err := runCLI(t, s, "crisis", "report", id, "--format", "csv"); err != nil || !strings.Contains(out, ",comment,CLI-COMMENT-from-the-terminal,duty,") {
		t.Fatalf("crisis report --format csv: %v\n%s", err, out)
	}
	// A partner may not comment (the policy table): refused before the crisis.
	if code, _, raw := ecowas.call("POST", "/v1/crises/"+id+"/controls/comment", `{"text": "hello"}`); code != http.StatusForbidden {
		t.Errorf("a partner's comment: %d %s", code, raw)
	}

	// The exports: JSON and CSV carry the comment and the rationale for the
	// duty officer; the partner's carry neither.
	get := func(c apiCaller, format string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/v1/crises/"+id+"/report?format="+format, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body) // checked below
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("report %s: %d %s", format, resp.StatusCode, b)
		}
		return string(b)
	}
	var rep struct {
		PartnerView bool `json:"partnerView"`
		Timeline    []struct{ Kind, What, Principal, Rationale string }
	}
	if err := json.Unmarshal([]byte(get(duty, "json")), &rep); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	var sawComment, sawRationale bool
	for _, e := range rep.Timeline {
		kinds[e.Kind] = true
		sawComment = sawComment || (e.Kind == "comment" && e.What == comment && e.Principal == "duty")
		sawRationale = sawRationale || (e.Kind == "decision" && e.Rationale == planted)
	}
	if !sawComment || !sawRationale || rep.PartnerView || !kinds["started"] || !kinds["stage"] {
		t.Fatalf("duty's JSON report: comment %v, rationale %v, partner view %v, kinds %v", sawComment, sawRationale, rep.PartnerView, kinds)
	}
	rows, err := csv.NewReader(strings.NewReader(get(duty, "csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		found = found || (len(r) > 3 && r[1] == "comment" && r[2] == comment && r[3] == "duty")
	}
	if !found || rows[0][0] != "time" {
		t.Fatalf("duty's CSV has no comment row: %v", rows)
	}
	for _, f := range []string{"json", "csv", "html"} {
		body := get(ecowas, f)
		if strings.Contains(body, planted) || strings.Contains(body, comment) || strings.Contains(body, "credible") {
			t.Errorf("the partner's %s export shows internal text:\n%.2000s", f, body)
		}
		if !strings.Contains(body, id) {
			t.Errorf("the partner's %s export does not name the crisis", f)
		}
	}

	// The auditor's page: the chain verifies (once the audit service has
	// chained the crisis's events), and a run from the page is recorded.
	auditPath := "/console/crises/" + id + "/audit"
	waitFor(t, func() bool {
		_, p := consoleGet(t, base, tok("auditor"), auditPath)
		return strings.Contains(p, `<span class="badge ok">verified</span>`)
	})
	code, page = consoleGet(t, base, tok("auditor"), auditPath)
	for _, want := range []string{`id="run-verify"`, `id="evidence-link"`, `id="temporal-ui-link"`, planted, comment, "chain-anchored"} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("the auditor's page (%d) lacks %s:\n%.3000s", code, want, page)
		}
	}
	m = csrfField.FindStringSubmatch(page)
	if code, loc := consolePost(t, base, tok("auditor"), auditPath+"/verify", url.Values{"csrf": {m[1]}}); code != http.StatusSeeOther || !strings.Contains(loc, "done=verify") {
		t.Fatalf("verify from the page: %d %s", code, loc)
	}
	_, page = consoleGet(t, base, tok("auditor"), auditPath+"?done=verify")
	runOK := regexp.MustCompile(`class="run run-ok" data-kind="verify"><strong>verify</strong> by auditor, [^<]*? UTC: OK chain crisis\.` + regexp.QuoteMeta(id) + ` verifies`)
	if !runOK.MatchString(page) {
		t.Fatalf("the verify run is not read back from the chain:\n%.4000s", page)
	}
	// The same run over the API.
	if code, out, raw := auditorAPI.call("POST", "/v1/audit/verify/"+id, ""); code != http.StatusOK || out["ok"] != true ||
		!strings.Contains(fmt.Sprint(out["result"]), "no alarm about this crisis on the global chain") {
		t.Fatalf("verify over the API: %d %s", code, raw)
	}
	// An event forged for the crisis (a credential that may publish crisis
	// events, the wrong source) is refused by the audit service with an
	// alarm; the next verification names it, fails, and the page shows it.
	_, wjs := jsAs(t, s, natsauth.Worker)
	forged := eventbus.Event{ID: "forged-audit24", Subject: id, Source: "/mallory", Time: time.Now(),
		Origin: eventbus.Origin{WorkflowID: crisis.WorkflowID(id), RunID: "run-1", HistoryEventID: 7},
		Data:   &demarchev1.CrisisClosed{CrisisId: id, ClosedAt: timestamppb.Now(), Outcome: demarchev1.Outcome_OUTCOME_AVERTED}}
	if _, err := eventbus.NewPublisher(wjs, crisis.EventSource).Publish(context.Background(), eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "NE", CrisisID: id}, forged); err != nil {
		t.Fatal(err)
	}
	var result string
	waitFor(t, func() bool {
		code, out, _ := auditorAPI.call("POST", "/v1/audit/verify/"+id, "")
		result = fmt.Sprint(out["result"])
		return code == http.StatusOK && out["ok"] == false
	})
	if !strings.Contains(result, "alarm(s) about this crisis") || !strings.Contains(result, "forged-audit24") {
		t.Fatalf("the failed verification does not name the alarm: %s", result)
	}
	if _, page := consoleGet(t, base, tok("auditor"), auditPath); !strings.Contains(page, `<span class="badge bad">alarm</span>`) || !strings.Contains(page, `class="run run-failed"`) {
		t.Fatalf("the auditor's page does not show the alarm:\n%.4000s", page)
	}
	// The evidence bundle downloads and verifies offline with the stack's key.
	code, bundle := consoleGet(t, base, tok("auditor"), "/console/crises/"+id+"/evidence")
	if code != http.StatusOK {
		t.Fatalf("evidence: %d %.300s", code, bundle)
	}
	pub, err := os.ReadFile(s.AuditPublicKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	key, err := audit.ParsePublicKey(string(pub))
	if err != nil {
		t.Fatal(err)
	}
	// Unsigned manifest (the gateway holds no signing key): checked without
	// a trusted key, and its chain's head is the audit service's signature.
	br, err := audit.VerifyBundle(bytes.NewReader([]byte(bundle)), nil)
	if err != nil || br.CrisisID != id || br.Histories == 0 || br.Chain == nil || br.Chain.SignerKey != audit.KeyID(key) {
		t.Fatalf("the evidence bundle does not verify, or its chain is not signed by the stack's key %s: %v %+v", audit.KeyID(key), err, br)
	}

	// Without the auditor role: refused, naming the roles that may.
	for _, who := range []string{"duty", "analyst", "ecowas"} {
		if code, body := consoleGet(t, base, tok(who), auditPath); code != http.StatusForbidden || !strings.Contains(body, "needs one of the roles") {
			t.Errorf("%s on the auditor's page: %d, want 403", who, code)
		}
		if code, _, raw := (apiCaller{t: t, url: base, token: tok(who)}).call("POST", "/v1/audit/verify/"+id, ""); code != http.StatusForbidden {
			t.Errorf("%s verifies over the API: %d %s", who, code, raw)
		}
	}

	// Screenshots of the auditor's page and the printed report.
	chrome := chromium()
	if chrome == "" {
		t.Log("no Chromium: no screenshots")
		return
	}
	art := os.Getenv("DEMARCHE_SHOTS_DIR")
	if art == "" {
		art = filepath.Join("testdata", "artefacts", "console")
	}
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	b := startBrowser(t, chrome, art)("auditor")
	b.run("sign in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#signin-auditor")), chromedp.Click(chromedp.CSS("#signin-auditor")))
	b.waitJS("the board", `location.pathname === "/console/" && document.querySelector(".board")`, 30*time.Second)
	viewport := func(name string) {
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		defer cancel()
		buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(art, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.run("the auditor's page", chromedp.Navigate(base+auditPath), chromedp.WaitVisible(chromedp.CSS("#chain-status")))
	viewport("audit24-auditor-page")
	b.checkAxe("auditor-page")
	printMedia := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"})
		return err
	})
	b.run("the printed report", chromedp.Navigate(base+"/console/crises/"+id+"/report?format=html"), chromedp.WaitVisible(chromedp.CSS("#report-timeline")), printMedia)
	viewport("audit24-report-print")
}
