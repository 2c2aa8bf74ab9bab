package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/jsonschema"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
)

// OpenAPI is the HTTP API's OpenAPI 3.1 document, generated from the route
// table and the schemas (docs/openapi.json is this, written by make docs; a
// test checks the committed file and real answers against it).
func OpenAPI() map[string]any {
	schemas := jsonschema.NewSet(func(n protoreflect.FullName) string { return "#/components/schemas/" + string(n) }).WithEnumValues(apijson.EnumValue)
	ref := func(m proto.Message) map[string]any { return schemas.Message(m.ProtoReflect().Descriptor()) }
	// The schema route answers google.protobuf.FileDescriptorSet in canonical
	// protobuf JSON: its enums are full names, not the API's short values.
	standard := jsonschema.NewSet(func(n protoreflect.FullName) string { return "#/components/schemas/" + string(n) })
	errorRef := map[string]any{"$ref": "#/components/schemas/Error"}
	paths := map[string]any{}
	params := regexp.MustCompile(`\{([a-z]+)(\.\.\.)?\}`)
	for _, rt := range Routes() {
		path := params.ReplaceAllString(rt.Pattern, "{$1}")
		op := map[string]any{
			"operationId": operationID(rt),
			"summary":     summaryOf(rt),
			"description": docOf(rt).description,
			"tags":        []any{docOf(rt).tag},
			"security":    []any{map[string]any{"bearer": []any{}}},
		}
		var ps []any
		for _, m := range params.FindAllStringSubmatch(rt.Pattern, -1) {
			ps = append(ps, map[string]any{"name": m[1], "in": "path", "required": true, "description": paramDoc(m[1]), "schema": map[string]any{"type": "string"}})
		}
		if qs, ok := queryParams[rt.Method+" "+rt.Pattern]; ok {
			for _, q := range qs {
				ps = append(ps, map[string]any{"name": q, "in": "query", "required": false, "description": paramDoc(q), "schema": map[string]any{"type": "string"}})
			}
		}
		if rt.Pattern == schemaPattern {
			ps = append(ps, schemaFormatParameter())
		}
		if rt.Pattern == "/v1/crises/{id}/report" {
			ps = append(ps, map[string]any{"name": "format", "in": "query", "required": false, "description": paramDoc("format"),
				"schema": map[string]any{"type": "string", "enum": []any{"json", "csv", "html"}, "default": "json"}})
		}
		if ps != nil {
			op["parameters"] = ps
		}
		codecPayloads := map[string]any{"type": "object", "description": "Temporal's remote codec format: {\"payloads\": [{\"metadata\": {name: base64}, \"data\": base64}]}",
			"properties": map[string]any{"payloads": map[string]any{"type": "array", "items": map[string]any{"type": "object"}}}}
		if isCodecRoute(rt.Pattern) {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": codecPayloads}}}
		} else if rt.Request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(rt.Request)}}}
		} else if rt.Pattern == "/v1/crises/{id}/controls/{control}" { // controls: the control's message
			var oneOf []any
			for _, name := range controlNames() {
				oneOf = append(oneOf, ref(app.ControlMessage(strings.TrimPrefix(name, "crisis."))))
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"oneOf": oneOf}}}}
		}
		ok := map[string]any{"description": "done"}
		if isCodecRoute(rt.Pattern) {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": codecPayloads}}
		} else if rt.Pattern == schemaPattern {
			ok = schemaAnswers(standard)
		} else if rt.Pattern == "/v1/crises/{id}/report" {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}},
				"text/csv": map[string]any{"schema": map[string]any{"type": "string"}}, "text/html": map[string]any{"schema": map[string]any{"type": "string"}}}
		} else if rt.Pattern == "/v1/audit/evidence/{id}" {
			ok["content"] = map[string]any{"application/gzip": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}
		} else if rt.Response != nil {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.Response)}}
		} else {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		}
		responses := map[string]any{"200": ok}
		if rt.Pattern == "/v1/crises" && rt.Method == "POST" {
			responses["201"] = ok
		}
		for code, why := range map[string]string{
			"400": "bad input: each failing field is listed", "401": "no credential, or one expired, wrongly signed or for another audience",
			"403": "a role that may not (the error names the roles that may)", "404": "unknown, or not yours to see",
			"409": "a conflict (already open, booked elsewhere)", "422": "a rule refused it (the error names the rule)",
			"503": "a backend is not answering: retry",
		} {
			responses[code] = map[string]any{"description": why, "content": map[string]any{"application/json": map[string]any{"schema": errorRef}}}
		}
		if op["requestBody"] != nil {
			responses["413"] = map[string]any{"description": fmt.Sprintf("the body is larger than %d MiB (code invalid)", maxBody>>20),
				"content": map[string]any{"application/json": map[string]any{"schema": errorRef}}}
		}
		op["responses"] = responses
		item, _ := paths[path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		item[strings.ToLower(rt.Method)] = op
	}
	defs := schemas.Defs()
	for k, v := range standard.Defs() {
		if _, dup := defs[k]; dup {
			panic("OpenAPI: " + k + " is described both with the API's enum values and protobuf JSON's")
		}
		defs[k] = v
	}
	var codes []any // errs' one table: the codes errors are answered with
	for _, name := range errs.Names() {
		codes = append(codes, name)
	}
	defs["Error"] = map[string]any{
		"type": "object", "required": []any{"error", "code"},
		"properties": map[string]any{
			"error": map[string]any{"type": "string", "description": "what went wrong, in words (for people)"},
			"code":  map[string]any{"type": "string", "enum": codes},
			"fields": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
				"field": map[string]any{"type": "string"}, "reason": map[string]any{"type": "string"}}}},
		},
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Démarche HTTP API", "version": "1",
			"description": "The one door for people and partner systems. Every route needs a bearer token (OpenID Connect, or the dev issuer of demarche dev); bodies and answers are protobuf messages (proto/demarche/v1) in one JSON style: protobuf JSON field names, every field present, enum values as short readable values (\"stage\": \"good-offices\"; bodies also accept the full names such as STAGE_GOOD_OFFICES), durations as strings in seconds (\"3600s\"), timestamps in RFC 3339, 64-bit integers as strings. The one exception is GET /v1/schemas/{name}: it answers standard encodings only (a google.protobuf.FileDescriptorSet in canonical protobuf JSON or binary, or a JSON Schema), chosen by its format parameter.",
			"contact":     openAPIContact()},
		"servers":    openAPIServers(),
		"tags":       openAPITagList(),
		"paths":      paths,
		"components": map[string]any{"schemas": defs, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
	}
}

// OpenAPIJSON is the document as committed in docs/openapi.json.
func OpenAPIJSON() ([]byte, error) {
	b, err := json.MarshalIndent(OpenAPI(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (s *Service) getOpenAPI(w http.ResponseWriter, _ *http.Request, _ *authn.Principal) {
	b, err := OpenAPIJSON()
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b) // the client went away: no one to tell
}

func controlNames() []string {
	return []string{"crisis.escalate", "crisis.de-escalate", "crisis.skip-stage", "crisis.reopen-stage", "crisis.partner-role", "crisis.warn"}
}

func operationID(rt Route) string {
	id := strings.ToLower(rt.Method) + strings.NewReplacer("/v1/", "", "/", "-", "{", "", "}", "", "...", "", ".", "-").Replace(rt.Pattern)
	return strings.TrimSuffix(id, "-")
}

func summaryOf(rt Route) string {
	switch {
	case rt.Action != "":
		return "needs the " + string(rt.Action) + " action: " + roleNames(authz.Roles(rt.Action))
	case rt.Pattern == "/v1/crises":
		return "needs crisis.open (" + roleNames(authz.Roles(authz.OpenCrisis)) + "), or crisis.open-drill for a drill (" + roleNames(authz.Roles(authz.OpenDrill)) + ")"
	default:
		return "needs the control's own action (crisis.escalate, ...; see pkg/authz)"
	}
}

func roleNames(rs []demarchev1.Role) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Slug()
	}
	return strings.Join(out, ", ")
}
