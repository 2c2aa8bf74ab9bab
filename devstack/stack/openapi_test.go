package stack_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/services/gateway"
)

// TestAPIAnswersMatchOpenAPI sends real requests through the gateway on the
// real stack and checks each answer against the OpenAPI document: every
// field of the answer is in the schema of its route and status, with the
// type and enum values the document gives.
func TestAPIAnswersMatchOpenAPI(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	duty := apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile("duty"))}
	auditor := apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile("auditor"))}
	doc := gateway.OpenAPI()
	b, _ := json.Marshal(doc) // as clients read it
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	defs := spec["components"].(map[string]any)["schemas"].(map[string]any)
	// The checker itself catches what it must.
	state := map[string]any{"$ref": "#/components/schemas/demarche.v1.CrisisState"}
	for _, bad := range []string{`{"bogus": 1}`, `{"currentStage": "STAGE_NOPE"}`, `{"currentStage": "STAGE_WARNING"}`, `{"timeline": {"a": 1}}`, `{"crisis": {"severity": "high"}}`} {
		var v any
		_ = json.Unmarshal([]byte(bad), &v)
		if len(conform(defs, state, v, "$")) == 0 {
			t.Fatalf("the conformance check passes %s", bad)
		}
	}
	check := func(c apiCaller, method, path, pattern, body string, want int) map[string]any {
		t.Helper()
		code, out, raw := c.call(method, path, body)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, raw, want)
		}
		op := spec["paths"].(map[string]any)[pattern].(map[string]any)[strings.ToLower(method)].(map[string]any)
		resp, ok := op["responses"].(map[string]any)[fmt.Sprint(code)].(map[string]any)
		if !ok {
			t.Fatalf("%s %s: status %d is not in the document", method, pattern, code)
		}
		schema := resp["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
		var v any
		_ = json.Unmarshal([]byte(raw), &v)
		for _, p := range conform(defs, schema, v, "$") {
			t.Errorf("%s %s (%d): %s", method, path, code, p)
		}
		return out
	}
	open := `{"crisis": {"title": "Clashes in Mopti", "countryCode": "ML", "crisisType": "CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE", "severity": 3, "confidentiality": "CONFIDENTIALITY_RESTRICTED"}}`
	opened := check(duty, "POST", "/v1/crises", "/v1/crises", open, http.StatusCreated)
	id, _ := opened["crisis"].(map[string]any)["id"].(string) // minted by the platform
	check(duty, "POST", "/v1/crises", "/v1/crises", `{"crisis": {"severity": 9}}`, http.StatusBadRequest)
	check(duty, "GET", "/v1/whoami", "/v1/whoami", "", http.StatusOK)
	check(duty, "GET", "/v1/crises", "/v1/crises", "", http.StatusOK)
	check(duty, "GET", "/v1/crises?q=mopti&region=africa&severity_min=2&status=open&drills=false", "/v1/crises", "", http.StatusOK)
	check(duty, "GET", "/v1/crises?opened_from=someday", "/v1/crises", "", http.StatusBadRequest)
	check(duty, "GET", "/v1/lessons?type=intercommunal-violence", "/v1/lessons", "", http.StatusOK)
	check(duty, "GET", "/v1/lessons?outcome=won", "/v1/lessons", "", http.StatusBadRequest)
	check(apiCaller{t: t, url: s.APIURL(), token: readToken(t, s.TokenFile("ecowas"))}, "GET", "/v1/lessons", "/v1/lessons", "", http.StatusForbidden)
	// One JSON style: enums as short values, durations as strings, times in RFC 3339.
	got := check(duty, "GET", "/v1/crises/"+id, "/v1/crises/{id}", "", http.StatusOK)
	c, _ := got["crisis"].(map[string]any)
	if c["confidentiality"] != "restricted" || c["crisisType"] != "intercommunal-violence" || c["region"] != "africa" || got["currentStage"] != "warning" {
		t.Errorf("enums are not short readable values: %v", got)
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(c["openedAt"])); err != nil {
		t.Errorf("openedAt is not RFC 3339: %v", c["openedAt"])
	}
	// Bodies take the short values as well as the full names.
	check(duty, "POST", "/v1/crises", "/v1/crises", `{"crisis": {"title": "Short values", "countryCode": "ML", "crisisType": "intercommunal-violence", "severity": 2, "confidentiality": "public"}}`, http.StatusCreated)
	check(duty, "POST", "/v1/crises", "/v1/crises", `{"crisis": {"title": "x", "countryCode": "ML", "crisisType": "riot", "severity": 2}}`, http.StatusBadRequest)
	check(duty, "POST", "/v1/crises/"+id+"/sharing", "/v1/crises/{id}/sharing", `{"reason": "ECOWAS mediates", "share": ["ECOWAS"]}`, http.StatusOK)
	check(duty, "POST", "/v1/crises/"+id+"/sharing", "/v1/crises/{id}/sharing", `{"reason": "again", "share": ["ECOWAS"]}`, http.StatusUnprocessableEntity)
	check(duty, "POST", "/v1/crises/"+id+"/sharing", "/v1/crises/{id}/sharing", `{"reason": "who?", "share": ["NOPE"]}`, http.StatusBadRequest)
	check(duty, "GET", "/v1/crises/NOPE-123", "/v1/crises/{id}", "", http.StatusNotFound)
	waitPendingHTTP(t, duty, id, "triage")
	check(duty, "POST", "/v1/crises/"+id+"/decisions", "/v1/crises/{id}/decisions", `{"rationale": "x", "triage": {"assessment": "credible"}}`, http.StatusOK)
	check(duty, "POST", "/v1/crises/"+id+"/decisions", "/v1/crises/{id}/decisions", `{"rationale": "x", "closure": {"outcome": "OUTCOME_AVERTED", "lessons": ["l"]}}`, http.StatusUnprocessableEntity)
	check(duty, "POST", "/v1/crises/"+id+"/controls/escalate", "/v1/crises/{id}/controls/{control}", `{"reason": "spreading"}`, http.StatusOK)
	check(auditor, "POST", "/v1/crises/"+id+"/controls/escalate", "/v1/crises/{id}/controls/{control}", `{"reason": "x"}`, http.StatusForbidden)
	check(duty, "POST", "/v1/signals", "/v1/signals", `{"signals": [{"sourceId": "EW-9", "countryCode": "SN", "crisisType": "CRISIS_TYPE_ELECTION_VIOLENCE", "weight": 3, "observedAt": "2026-11-20T10:00:00Z", "summary": "clashes"}]}`, http.StatusOK)
	check(duty, "GET", "/v1/situations/SN/election-violence", "/v1/situations/{country}/{type}", "", http.StatusOK)
	check(duty, "POST", "/v1/roster/search", "/v1/roster/search", `{}`, http.StatusOK)
	check(auditor, "POST", "/v1/funding/balance", "/v1/funding/balance", `{}`, http.StatusOK)
	check(auditor, "POST", "/v1/audit/chain", "/v1/audit/chain", `{"crisisId": "`+id+`"}`, http.StatusOK)
	check(duty, "GET", "/v1/schemas/demarche.v1.StageEntered", "/v1/schemas/{name}", "", http.StatusOK)
	check(apiCaller{t: t, url: s.APIURL()}, "GET", "/v1/crises", "/v1/crises", "", http.StatusUnauthorized)
}

// conform lists where v departs from schema (a subset of JSON Schema: $ref,
// allOf, oneOf, type, properties, additionalProperties, items, enum).
func conform(defs map[string]any, schema map[string]any, v any, at string) []string {
	if ref, ok := schema["$ref"].(string); ok {
		def, ok := defs[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		if !ok {
			return []string{at + ": unresolved " + ref}
		}
		return conform(defs, def, v, at)
	}
	var out []string
	if all, ok := schema["allOf"].([]any); ok {
		for _, s := range all {
			out = append(out, conform(defs, s.(map[string]any), v, at)...)
		}
	}
	if one, ok := schema["oneOf"].([]any); ok {
		matched := false
		for _, s := range one {
			matched = matched || len(conform(defs, s.(map[string]any), v, at)) == 0
		}
		if !matched {
			out = append(out, at+": matches none of oneOf")
		}
	}
	if v == nil {
		return out // null: an unset message field
	}
	if types := typesOf(schema["type"]); len(types) > 0 && !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
		return append(out, fmt.Sprintf("%s: %s, want %v", at, jsonType(v), types))
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		out = append(out, fmt.Sprintf("%s: %v is not one of %v", at, v, enum))
	}
	switch val := v.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		for k, fv := range val {
			ps, known := props[k].(map[string]any)
			switch {
			case known:
				out = append(out, conform(defs, ps, fv, at+"."+k)...)
			case schema["additionalProperties"] == false:
				out = append(out, at+"."+k+": not in the schema")
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, e := range val {
				out = append(out, conform(defs, items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return out
}

func typesOf(t any) []string {
	switch t := t.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			out = append(out, e.(string))
		}
		return out
	}
	return nil
}

func jsonType(v any) string {
	switch v := v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if v == math.Trunc(v) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}
