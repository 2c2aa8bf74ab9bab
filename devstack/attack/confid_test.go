package attack_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/authn"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway"
	"github.com/demarche/demarche/workflows/crisis"
)

// Wall 5, confidentiality: the side routes that name crises (roster
// bookings, fund ledgers, situation scores, codec decryption) with every
// demo identity against a confidential crisis; the existence oracle of
// POST /v1/crises; a closed drill's id reused; DNS rebinding.

const confidWall = "confid"

// confidCaller is a principal with custom claims (s.Issuer().Mint).
func confidCaller(t *testing.T, s *stack.Stack, subject, clearance string, roles ...string) caller {
	t.Helper()
	tok, err := s.Issuer().Mint(authn.Claims{Subject: subject, Roles: roles, Clearance: clearance}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return caller{t: t, base: s.APIURL(), token: tok}
}

// confidWait polls until ok (bounded by the test's own deadline: no timed
// assertion, a stuck wait fails with what it waited for).
func confidWait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 3 minutes for %s", what)
		}
		time.Sleep(500 * time.Millisecond) // each poll of a confidential crisis is an audited read
	}
}

// confidPending waits until the crisis waits for a decision kind.
func confidPending(t *testing.T, c caller, id, kind string) {
	t.Helper()
	confidWait(t, id+" waiting for "+kind, func() bool {
		code, raw := c.do("GET", "/v1/crises/"+id, "")
		return code == http.StatusOK && strings.Contains(raw, `"kind":"`+kind+`"`)
	})
}

// confidReads are the read records of a crisis's audit chain ("" : the
// global chain), each "principal detail", read in one page (the
// service's largest).
func confidReads(t *testing.T, auditor caller, id string) []string {
	t.Helper()
	code, raw := auditor.do("POST", "/v1/audit/chain", fmt.Sprintf(`{"crisisId": %q, "limit": 2000}`, id))
	if code != http.StatusOK {
		t.Fatalf("audit chain %q: %d %s", id, code, raw)
	}
	var chain struct {
		Records []struct {
			Kind      string `json:"kind"`
			Principal string `json:"principal"`
			Detail    string `json:"detail"`
		} `json:"records"`
	}
	if err := json.Unmarshal([]byte(raw), &chain); err != nil {
		t.Fatalf("audit chain %q: %v: %.300s", id, err, raw)
	}
	if len(chain.Records) == 2000 {
		t.Fatalf("audit chain %q: more than a page (2000 records): the test reads too often", id)
	}
	var out []string
	for _, r := range chain.Records {
		if strings.Contains(strings.ToLower(r.Kind), "read") {
			out = append(out, r.Principal+" "+r.Detail)
		}
	}
	return out
}

func confidHasRead(reads []string, principal, detail string) bool {
	for _, r := range reads {
		if strings.HasPrefix(r, principal+" ") && strings.Contains(r, detail) {
			return true
		}
	}
	return false
}

// TestConfidSideRoutes: a confidential crisis, opened by the duty officer
// (cleared), with its envoy booked and USD 123,457 paid; then each side
// route with each demo identity: the uncleared see neither its id, nor its
// envoy, nor its amount; the cleared see them, and their read is in the
// crisis's audit chain.
func TestConfidSideRoutes(t *testing.T) {
	s := startStack(t)
	duty, auditor := demo(t, s, "duty"), demo(t, s, "auditor")
	// A funding officer cleared for it, for the four-eyes approval.
	fiona := confidCaller(t, s, "fiona", "confidential", "funding-officer")

	code, raw := duty.do("POST", "/v1/crises", `{"crisis": {"title": "Secret talks CONFID-7Q", "countryCode": "GN", "crisisType": "unconstitutional-change", "severity": 4, "confidentiality": "confidential"}}`)
	if code != http.StatusCreated {
		t.Fatalf("open the confidential crisis: %d %s", code, raw)
	}
	var opened struct {
		Crisis struct{ ID string } `json:"crisis"`
	}
	_ = json.Unmarshal([]byte(raw), &opened)
	id := opened.Crisis.ID
	if !regexp.MustCompile(`^GN-\d{8}-[A-Z2-7]{5}$`).MatchString(id) {
		t.Fatalf("the platform minted %q, want GN-YYYYMMDD-XXXXX", id)
	}
	const envoy, amount = "env-amara-diallo", "123457"
	for _, d := range []struct{ kind, body string }{
		{"triage", `{"rationale": "x", "triage": {"assessment": "x"}}`},
		{"good-offices", `{"rationale": "x", "goodOffices": {"option": "GOOD_OFFICES_OPTION_DEMARCHE"}}`},
		{"envoy-appointment", `{"rationale": "x", "envoyAppointment": {"envoy": "` + envoy + `", "standbyTeam": ["sb-fatou-sow"]}}`},
		{"standby-team-deployed", `{"rationale": "x", "standbyTeamDeployed": {"location": "Conakry"}}`},
		{"funding-request", `{"rationale": "x", "fundingRequest": {"requestId": "FR-CONFID", "fund": "flexible-financing", "amountUsd": ` + amount + `, "purpose": "talks"}}`},
	} {
		confidPending(t, duty, id, d.kind)
		if code, raw := duty.do("POST", "/v1/crises/"+id+"/decisions", d.body); code != http.StatusOK {
			t.Fatalf("%s: %d %s", d.kind, code, raw)
		}
	}
	confidPending(t, duty, id, "funding-decision")
	if code, raw := fiona.do("POST", "/v1/crises/"+id+"/decisions", `{"rationale": "x", "fundingDecision": {"requestId": "FR-CONFID", "approve": true}}`); code != http.StatusOK {
		t.Fatalf("approval: %d %s", code, raw)
	}
	confidWait(t, "the disbursement in the ledger", func() bool {
		_, raw := duty.do("POST", "/v1/funding/ledger", `{"fund": "flexible-financing"}`)
		return strings.Contains(raw, id)
	})
	// Early-warning signals for the situation: the crossing attaches to the
	// open crisis of that country and type, so the score names it.
	analyst := demo(t, s, "analyst")
	now := time.Now().UTC()
	var sigs []string
	for i := range 3 {
		sigs = append(sigs, fmt.Sprintf(`{"sourceId": "CONFID-%d-%d", "countryCode": "GN", "crisisType": "unconstitutional-change", "weight": 10, "observedAt": %q, "summary": "troops at the palace"}`,
			now.UnixNano(), i, now.Add(time.Duration(i-3)*time.Hour).Format(time.RFC3339)))
	}
	code, raw = analyst.do("POST", "/v1/signals", `{"signals": [`+strings.Join(sigs, ",")+`]}`)
	if code != http.StatusOK {
		t.Fatalf("signals: %d %s", code, raw)
	}
	// The signals fed the confidential crisis: the analyst's answer does not say which.
	if strings.Contains(raw, id) {
		t.Errorf("the analyst's signals answer names the confidential crisis they fed: %s", raw)
	} else {
		attempt(t, confidWall, "signals answer naming the confidential crisis they fed", "analyst", "answered without the crisis (cut to clearance)")
	}
	confidWait(t, "the score to name the crisis", func() bool {
		_, raw := duty.do("GET", "/v1/situations/GN/unconstitutional-change", "")
		return strings.Contains(raw, id)
	})

	// Clear payloads for the codec: one naming the crisis, one naming none.
	enc := func(clear string) string {
		t.Helper()
		body := fmt.Sprintf(`{"payloads": [{"metadata": {"encoding": %q}, "data": %q}]}`, base64.StdEncoding.EncodeToString([]byte("json/plain")), base64.StdEncoding.EncodeToString([]byte(clear)))
		code, raw := auditor.do("POST", "/v1/codec/"+s.Namespace()+"/encode", body)
		if code != http.StatusOK || strings.Contains(raw, "CONFID-7Q") {
			t.Fatalf("encode: %d %s", code, raw)
		}
		return raw
	}
	namedPayload := enc(`{"crisisId": "` + id + `", "title": "Secret talks CONFID-7Q"}`)
	anonPayload := enc(`"Secret talks CONFID-7Q"`)

	type route struct {
		name, method, path, body string
		header                   []string
	}
	routes := []route{
		{"roster assignments", "POST", "/v1/roster/assignments", `{}`, nil},
		{"funding ledger", "POST", "/v1/funding/ledger", `{"fund": "flexible-financing"}`, nil},
		{"situation score", "GET", "/v1/situations/GN/unconstitutional-change", "", nil},
		{"score history", "GET", "/v1/situations/GN/unconstitutional-change/history", "", nil},
		{"codec decode", "POST", "/v1/codec/" + s.Namespace() + "/decode", namedPayload, []string{gateway.WorkflowHeader, crisis.WorkflowID(id)}},
	}
	type seen struct{ who, route, detail string }
	var cleared []seen // checked against the crisis's chain at the end (one read of it)
	for _, who := range []string{"duty", "approver", "roster", "analyst", "auditor", "ecowas", "admin"} {
		c := demo(t, s, who)
		for _, r := range routes {
			code, raw := c.do(r.method, r.path, r.body, r.header...)
			leaked := strings.Contains(raw, id) || strings.Contains(raw, amount) || (r.name == "roster assignments" && strings.Contains(raw, envoy)) ||
				strings.Contains(raw, "CONFID-7Q")
			if r.name == "codec decode" && code == http.StatusOK {
				leaked = true // clear text came back (base64 in the answer)
			}
			switch {
			case code == http.StatusForbidden && strings.Contains(raw, "needs one of the roles"):
				attempt(t, confidWall, r.name+" of a confidential crisis", who, "refused 403 by the policy table")
			case code == http.StatusForbidden && r.name == "codec decode":
				attempt(t, confidWall, r.name+" of a confidential crisis", who, "refused 403: needs confidential clearance")
			case code != http.StatusOK:
				t.Errorf("%s %s: %d %s", who, r.name, code, raw)
			case !leaked:
				attempt(t, confidWall, r.name+" of a confidential crisis", who, "answered without its id, envoy or amount (cut to clearance)")
			default:
				// Seen: only by the cleared, and recorded in the crisis's
				// audit chain before the answer left.
				isCleared := false
				for _, id := range authn.DevIdentities {
					isCleared = isCleared || (id.Subject == who && id.Clearance == "confidential")
				}
				if !isCleared {
					t.Errorf("%s (not cleared) saw the confidential crisis on %s: %.300s", who, r.name, raw)
					continue
				}
				detail := r.method + " " + r.path
				if r.name == "codec decode" {
					detail = "codec decode: 1 payload(s)"
				}
				cleared = append(cleared, seen{who, r.name, detail})
			}
		}
	}
	reads := confidReads(t, auditor, id)
	t.Logf("the crisis's chain holds %d read records", len(reads))
	for _, c := range cleared {
		if !confidHasRead(reads, c.who, c.detail) {
			t.Errorf("%s read %s on %s: no read record in the crisis's audit chain", c.who, id, c.route)
			continue
		}
		attempt(t, confidWall, c.route+" of a confidential crisis", c.who, "shown to the cleared reader; read recorded in the crisis's audit chain")
	}
	// A decryption whose crisis cannot be told is recorded in the global chain.
	if code, raw := auditor.do("POST", "/v1/codec/"+s.Namespace()+"/decode", anonPayload); code != http.StatusOK {
		t.Fatalf("decode: %d %s", code, raw)
	}
	if !confidHasRead(confidReads(t, auditor, ""), "auditor", "codec decode: 1 payload(s), namespace "+s.Namespace()) {
		t.Errorf("a decryption naming no crisis is not in the global chain")
	}
	attempt(t, confidWall, "codec decode of a payload naming no crisis", "auditor", "recorded in the global audit chain")

	// The existence oracle: POST /v1/crises with the hidden crisis's id
	// answers as for an id nobody holds (a real crisis's id is never
	// chosen); the other routes taking a crisis id in the body answer the
	// same 404 as for a crisis that does not exist.
	alice := confidCaller(t, s, "alice", "restricted", "duty-officer", "drill-coordinator")
	const nobody = "GN-20000101-NOONE"
	same := func(a, b string) bool { return strings.ReplaceAll(a, id, nobody) == b }
	openWith := func(cid string) string {
		return fmt.Sprintf(`{"crisis": {"id": %q, "title": "Probe", "countryCode": "GN", "crisisType": "unconstitutional-change", "severity": 2, "confidentiality": "public"}}`, cid)
	}
	c1, r1 := alice.do("POST", "/v1/crises", openWith(id))
	c2, r2 := alice.do("POST", "/v1/crises", openWith(nobody))
	if c1 != c2 || !same(r1, r2) || c1 != http.StatusBadRequest || !strings.Contains(r1, "crisis.id") {
		t.Errorf("POST /v1/crises with a hidden id: %d %s; with an unused id: %d %s", c1, r1, c2, r2)
	}
	attempt(t, confidWall, "existence oracle: POST /v1/crises with a hidden crisis's id", "alice (duty officer, restricted)", fmt.Sprintf("%d naming crisis.id, the same as for an id nobody holds", c1))
	roster := demo(t, s, "roster")
	for _, probe := range []struct {
		who     caller
		name    string
		path    string
		bodyFmt string
	}{
		{roster, "roster", "/v1/roster/assignments", `{"crisisId": %q}`},
		{roster, "roster", "/v1/roster/search", `{"drill": true, "crisisId": %q}`},
		{demo(t, s, "ecowas"), "ecowas", "/v1/partners/ack-role", `{"crisisId": %q, "ack": {"partner": "ECOWAS", "role": "lead"}}`},
		{demo(t, s, "approver"), "approver", "/v1/crises/" + "%s" + "/decisions", `{"rationale": "x", "fundingDecision": {"requestId": "FR-CONFID", "approve": true}}`},
	} {
		path, body1, body2 := probe.path, fmt.Sprintf(probe.bodyFmt, id), fmt.Sprintf(probe.bodyFmt, nobody)
		p1, p2 := path, path
		if strings.Contains(path, "%s") {
			p1, p2, body1, body2 = fmt.Sprintf(path, id), fmt.Sprintf(path, nobody), probe.bodyFmt, probe.bodyFmt
		}
		c1, r1 := probe.who.do("POST", p1, body1)
		c2, r2 := probe.who.do("POST", p2, body2)
		if c1 != c2 || !same(r1, r2) || c1 != http.StatusNotFound {
			t.Errorf("%s %s with the hidden crisis: %d %s; with none: %d %s", probe.name, path, c1, r1, c2, r2)
			continue
		}
		attempt(t, confidWall, "existence oracle: "+p2+" naming a hidden crisis", probe.name, "404, the same as for a crisis that does not exist")
	}
	// Drill names live in their opener's namespace: alice naming duty's
	// drill gets her own drill, never an answer about duty's.
	code, raw = duty.do("POST", "/v1/crises", `{"crisis": {"id": "quiet-exercise", "title": "Quiet exercise", "countryCode": "GN", "crisisType": "general", "severity": 2, "confidentiality": "confidential"}, "drill": {"decisionDelay": "30s", "timeScale": 0.001}}`)
	dutyDrill, _ := crisis.DrillID("duty", "quiet-exercise")
	if code != http.StatusCreated || !strings.Contains(raw, dutyDrill) {
		t.Fatalf("duty's confidential drill: %d %s", code, raw)
	}
	code, raw = alice.do("POST", "/v1/crises", `{"crisis": {"id": "quiet-exercise", "title": "Probe", "countryCode": "GN", "crisisType": "general", "severity": 2, "confidentiality": "public"}, "drill": {"decisionDelay": "1s", "timeScale": 0.000001}}`)
	aliceDrill, _ := crisis.DrillID("alice", "quiet-exercise")
	if code != http.StatusCreated || !strings.Contains(raw, aliceDrill) || strings.Contains(raw, dutyDrill) {
		t.Errorf("alice naming duty's drill: %d %s", code, raw)
	}
	attempt(t, confidWall, "existence oracle: a drill named as someone else's hidden drill", "alice (drill coordinator, restricted)", "201, her own drill "+aliceDrill+": no answer about "+dutyDrill)
}

// TestConfidDrillIDs: a closed drill's id is never used again, for a drill
// or for a real crisis, through the gateway or straight through Temporal.
func TestConfidDrillIDs(t *testing.T) {
	s := startStack(t)
	duty := demo(t, s, "duty")
	body := `{"crisis": {"id": "reuse-1", "title": "Drill to close", "countryCode": "NE", "crisisType": "general", "severity": 2, "confidentiality": "public"}, "drill": {"decisionDelay": "1s", "timeScale": 0.000001}}`
	code, raw := duty.do("POST", "/v1/crises", body)
	id, _ := crisis.DrillID("duty", "reuse-1")
	if code != http.StatusCreated || !strings.Contains(raw, id) {
		t.Fatalf("open drill: %d %s", code, raw)
	}
	confidWait(t, "the drill to close", func() bool {
		_, raw := duty.do("GET", "/v1/crises/"+id, "")
		return strings.Contains(raw, `"closedAt":"`)
	})
	if code, raw := duty.do("POST", "/v1/crises", body); code != http.StatusConflict || !strings.Contains(raw, "never reused") {
		t.Errorf("the closed drill's name again: %d %s", code, raw)
	} else {
		attempt(t, confidWall, "reuse a closed drill's id for a new drill", "duty", "409: ids are never reused")
	}
	real := `{"crisis": {"id": "` + id + `", "title": "Real crisis", "countryCode": "NE", "crisisType": "general", "severity": 2, "confidentiality": "public"}}`
	if code, raw := duty.do("POST", "/v1/crises", real); code != http.StatusBadRequest || !strings.Contains(raw, "crisis.id") {
		t.Errorf("a real crisis with the closed drill's id: %d %s", code, raw)
	} else {
		attempt(t, confidWall, "reuse a closed drill's id for a real crisis (gateway)", "duty", "400 crisis.id: minted by the platform")
	}
	// Straight through Temporal, as the gateway's own identity: the
	// workflow id reuse policy rejects the closed id.
	tc := temporalAs(t, s, "gateway")
	in := crisis.NewCrisis(crisis.NewCrisisParams{ID: id, Title: "Reused", CountryCode: "NE", CrisisType: demarchev1.CrisisType_CRISIS_TYPE_GENERAL, Severity: 2,
		Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedBy: "mallory"}, time.Now())
	if _, err := crisis.Open(t.Context(), tc, &demarchev1.CrisisWorkflowInput{Crisis: in}); err == nil {
		t.Errorf("Temporal started a new run under the closed drill's id %s", id)
	} else {
		attempt(t, confidWall, "reuse a closed drill's id through Temporal", "gateway (Temporal)", "refused: "+strings.SplitN(err.Error(), "\n", 2)[0])
	}
}

// TestConfidDNSRebinding: with Host evil.example (a page whose name was made
// to resolve to 127.0.0.1), every door answers 421 before anything runs:
// the dev sign-in, a crisis read, the codec, a crisis opening; nothing is
// written. An Origin that is not the gateway's is refused even with the
// right Host.
func TestConfidDNSRebinding(t *testing.T) {
	s := startStack(t)
	duty, auditor := demo(t, s, "duty"), demo(t, s, "auditor")
	code, raw := duty.do("POST", "/v1/crises", `{"crisis": {"title": "Rebinding target", "countryCode": "ML", "crisisType": "general", "severity": 2, "confidentiality": "confidential"}}`)
	if code != http.StatusCreated {
		t.Fatalf("open: %d %s", code, raw)
	}
	var opened struct {
		Crisis struct{ ID string } `json:"crisis"`
	}
	_ = json.Unmarshal([]byte(raw), &opened)
	id := opened.Crisis.ID
	count := func() int {
		_, raw := duty.do("GET", "/v1/crises", "")
		return strings.Count(raw, `"crisisId"`)
	}
	before := count()
	evil := []string{"Host", "evil.example", "Origin", "http://evil.example"}
	anon := caller{t: t, base: s.APIURL()}
	form := url.Values{"identity": {"duty"}}.Encode()
	for _, r := range []struct {
		name   string
		c      caller
		cred   string
		method string
		path   string
		body   string
		header []string
	}{
		{"dev sign-in", anon, "none", "POST", "/console/signin", form, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, evil...)},
		{"read a confidential crisis", duty, "duty", "GET", "/v1/crises/" + id, "", evil},
		{"codec decode", auditor, "auditor", "POST", "/v1/codec/" + s.Namespace() + "/decode", `{"payloads": []}`, evil},
		{"open a crisis", duty, "duty", "POST", "/v1/crises", `{"crisis": {"title": "Rebound", "countryCode": "ML", "crisisType": "general", "severity": 2}}`, evil},
	} {
		code, raw := r.c.do(r.method, r.path, r.body, r.header...)
		if code != http.StatusMisdirectedRequest || !strings.Contains(raw, "host-check") || strings.Contains(raw, "Rebinding target") {
			t.Errorf("%s with Host evil.example: %d %.300s", r.name, code, raw)
			continue
		}
		attempt(t, confidWall, "DNS rebinding: "+r.name+" (Host evil.example)", r.cred, "421 misdirected request (rule host-check), before any route")
	}
	if after := count(); after != before {
		t.Errorf("a rebinding request wrote: %d crises before, %d after", before, after)
	}
	// The right Host with another site's Origin: the sign-in is refused.
	u, _ := url.Parse(s.APIURL())
	code, raw = anon.do("POST", "/console/signin", form, "Content-Type", "application/x-www-form-urlencoded", "Host", u.Host, "Origin", "http://evil.example")
	if code != http.StatusForbidden || strings.Contains(raw, "demarche_session") {
		t.Errorf("sign-in from another origin: %d %.300s", code, raw)
	} else {
		attempt(t, confidWall, "DNS rebinding: dev sign-in with Origin http://evil.example", "none", "403: Origin is not the gateway's configured origin")
	}
}
