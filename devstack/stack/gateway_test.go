package stack_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestHTTPAPI drives the gateway on the real stack: bad input names its
// fields and starts nothing; a crisis opens and takes a decision; a rule
// refusal is a 422; signals go to early warning.
func TestHTTPAPI(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	api := s.APIURL()
	tokens := map[string]string{}
	call := func(method, path, principal, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, api+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if principal != "" {
			if tokens[principal] == "" {
				tokens[principal] = testToken(t, s, principal)
			}
			req.Header.Set("Authorization", "Bearer "+tokens[principal])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil && len(b) > 0 && !bytes.HasPrefix(b, []byte("ok")) {
			t.Fatalf("%s %s: not JSON: %s", method, path, b)
		}
		return resp.StatusCode, out
	}

	code, out := call("POST", "/v1/crises", "duty", `{"crisis": {"title": "", "countryCode": "XX", "crisisType": "CRISIS_TYPE_GENERAL", "severity": 9, "confidentiality": "CONFIDENTIALITY_PUBLIC"}}`)
	fields, _ := json.Marshal(out["fields"])
	if code != http.StatusBadRequest || !strings.Contains(string(fields), "crisis.severity") || !strings.Contains(string(fields), "crisis.country_code") || !strings.Contains(string(fields), "crisis.title") {
		t.Fatalf("bad crisis: %d %v", code, out)
	}
	if code, out := call("GET", "/v1/crises", "duty", ""); code != http.StatusOK || len(out["crises"].([]any)) != 0 {
		t.Fatalf("bad input started something: %d %v", code, out)
	}

	code, out = call("POST", "/v1/crises", "duty", `{"crisis": {"title": "Clashes in Mopti", "countryCode": "ML", "crisisType": "CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}}`)
	if code != http.StatusCreated || out["playbook"] != "intercommunal-violence" {
		t.Fatalf("open: %d %v", code, out)
	}
	// The platform minted the id; a real crisis with a chosen id (its own
	// included) is refused, naming the field, whoever holds that id.
	id := out["crisis"].(map[string]any)["id"].(string)
	if !regexp.MustCompile(`^ML-\d{8}-[A-Z2-7]{5}$`).MatchString(id) {
		t.Fatalf("minted id %q is not of the form ML-YYYYMMDD-XXXXX", id)
	}
	if code, out := call("POST", "/v1/crises", "duty", `{"crisis": {"id": "`+id+`", "title": "again", "countryCode": "ML", "crisisType": "CRISIS_TYPE_GENERAL", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}}`); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["fields"]), "crisis.id") {
		t.Fatalf("opening a real crisis with a chosen id: %d %v", code, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out = call("POST", "/v1/crises/"+id+"/decisions", "duty", `{"rationale": "confirmed by OCHA", "triage": {"assessment": "credible"}}`)
		if code == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code != http.StatusOK || out["principal"] != "duty" || out["kind"] != "triage" {
		t.Fatalf("decision: %d %v", code, out)
	}
	if code, out := call("POST", "/v1/crises/"+id+"/decisions", "duty", `{"rationale": "x", "closure": {"outcome": "OUTCOME_AVERTED", "lessons": ["l"]}}`); code != http.StatusUnprocessableEntity || !strings.Contains(out["error"].(string), "rule closure-last") {
		t.Fatalf("premature closure: %d %v", code, out)
	}
	// A decision without an Idempotency-Key gets a UUID v7 request id; one with a key is named by it.
	for key, want := range map[string]string{"": "", "key-1": "key-1"} {
		req, _ := http.NewRequest("POST", api+"/v1/crises/"+id+"/decisions", strings.NewReader(`{"rationale": "x", "closure": {"outcome": "OUTCOME_AVERTED", "lessons": ["l"]}}`))
		req.Header.Set("Authorization", "Bearer "+tokens["duty"])
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		id := resp.Header.Get("X-Request-Id")
		if want != "" && id != want {
			t.Errorf("X-Request-Id %q, want the Idempotency-Key %q", id, want)
		}
		if u, err := uuid.Parse(id); want == "" && (err != nil || u.Version() != 7) {
			t.Errorf("X-Request-Id %q is not a UUID v7 (%v)", id, err)
		}
	}
	// Operator controls: an invalid one is refused naming the rule or the
	// field, and leaves no trace in the history; a valid one answers the state.
	tc := temporalClient(t, s)
	before := historyLength(t, tc, id)
	for _, c := range []struct {
		path, body, says string
		code             int
	}{
		{"/controls/reopen-stage", `{"reason": "again", "stage": "STAGE_FACT_FINDING"}`, "rule reopen-ended: stage fact-finding is running", http.StatusUnprocessableEntity},
		{"/controls/reopen-stage", `{"reason": "again", "stage": "STAGE_ENVOY_DEPLOYMENT"}`, "rule reopen-reached: stage envoy-deployment has not run yet", http.StatusUnprocessableEntity},
		{"/controls/skip-stage", `{"reason": "done", "stage": "STAGE_WARNING"}`, "rule skip-running-or-ahead", http.StatusUnprocessableEntity},
		{"/controls/de-escalate", `{"reason": ""}`, "reason", http.StatusBadRequest},
		{"/controls/promote", `{}`, "no control", http.StatusNotFound},
	} {
		code, out := call("POST", "/v1/crises/"+id+c.path, "duty", c.body)
		if code != c.code || !strings.Contains(fmt.Sprint(out), c.says) {
			t.Errorf("%s %s: %d %v, want %d saying %q", c.path, c.body, code, out, c.code, c.says)
		}
	}
	if after := historyLength(t, tc, id); after != before {
		t.Fatalf("refused controls changed the history: %d -> %d events", before, after)
	}
	if code, out := call("POST", "/v1/crises/"+id+"/controls/escalate", "duty", `{"reason": "clashes spreading"}`); code != http.StatusOK || out["crisis"].(map[string]any)["severity"] != float64(4) {
		t.Fatalf("escalate: %d %v", code, out)
	}
	if code, out := call("GET", "/v1/crises/"+id, "duty", ""); code != http.StatusOK || len(out["decisions"].([]any)) != 1 {
		t.Fatalf("state: %d %v", code, out)
	}
	if code, _ := call("GET", "/v1/crises/NOPE-1234", "duty", ""); code != http.StatusNotFound {
		t.Fatalf("unknown crisis: %d", code)
	}

	code, out = call("POST", "/v1/signals", "duty", `{"signals": [{"sourceId": "EW-1", "countryCode": "SN", "crisisType": "CRISIS_TYPE_ELECTION_VIOLENCE", "weight": 3, "observedAt": "2026-11-20T10:00:00Z", "summary": "clashes at a rally"}, {"sourceId": "EW-1", "countryCode": "SN", "crisisType": "CRISIS_TYPE_ELECTION_VIOLENCE", "weight": 3, "observedAt": "2026-11-20T10:00:00Z", "summary": "same again"}]}`)
	if code != http.StatusOK || out["accepted"] != float64(1) || out["duplicates"] != float64(1) {
		t.Fatalf("signals: %d %v", code, out)
	}
	if code, out := call("GET", "/v1/situations/SN/election-violence", "duty", ""); code != http.StatusOK || out["score"] != float64(3) {
		t.Fatalf("score: %d %v", code, out)
	}
}
