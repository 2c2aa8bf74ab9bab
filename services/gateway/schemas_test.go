package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/contract"
	"github.com/demarche/demarche/services/contract/schemacheck"
)

// openAPIDoc is docs/openapi.json, the committed document partners read,
// ready to compile its schemas (JSON Schema 2020-12, OpenAPI 3.1's dialect).
type openAPIDoc struct {
	raw map[string]any
	c   *jsonschema.Compiler
}

func loadOpenAPI(t *testing.T) *openAPIDoc {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("openapi.json", doc); err != nil {
		t.Fatal(err)
	}
	return &openAPIDoc{raw: doc.(map[string]any), c: c}
}

func pointer(tokens ...string) string {
	var b strings.Builder
	for _, tok := range tokens {
		b.WriteString("/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
	}
	return b.String()
}

// check validates one live answer of GET path (an OpenAPI path template)
// against the document: its status is declared, its Content-Type is one the
// status declares, and a JSON body conforms to that content's schema (a
// binary one to a string schema of its media type). It returns the media type.
func (d *openAPIDoc) check(t *testing.T, path string, status int, contentType string, body []byte) string {
	t.Helper()
	responses := d.raw["paths"].(map[string]any)[path].(map[string]any)["get"].(map[string]any)["responses"].(map[string]any)
	resp, ok := responses[itoa(status)].(map[string]any)
	if !ok {
		t.Fatalf("GET %s answered %d, which the OpenAPI document does not declare", path, status)
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatalf("GET %s: Content-Type %q: %v", path, contentType, err)
	}
	content, ok := resp["content"].(map[string]any)[mt].(map[string]any)
	if !ok {
		t.Fatalf("GET %s %d: Content-Type %s is not declared (declared: %v)", path, status, mt, keys(resp["content"].(map[string]any)))
	}
	if mt == "application/x-protobuf" {
		if s := content["schema"].(map[string]any); s["type"] != "string" || s["contentMediaType"] != mt {
			t.Errorf("GET %s %d %s: the schema %v does not describe a binary body", path, status, mt, s)
		}
		return mt
	}
	sch, err := d.c.Compile("openapi.json#" + pointer("paths", path, "get", "responses", itoa(status), "content", mt, "schema"))
	if err != nil {
		t.Fatalf("compile the schema of GET %s %d %s: %v", path, status, mt, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("GET %s %d %s: not JSON: %v", path, status, mt, err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("GET %s %d %s: the answer does not match the OpenAPI document: %v", path, status, mt, err)
	}
	return mt
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestSchemaRoutes: the gateway answers the contract routes by asking the
// schema service over NATS; the schema route answers every event type in
// each format, each decoded by standard decoders, and every answer (errors
// too) matches what docs/openapi.json declares for the route: the format
// parameter's values, the status, the content type and the body's schema.
func TestSchemaRoutes(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	sc, err := contract.Start(context.Background(), srv.URL(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Stop()
	iss := issuer(t)
	api := httptest.NewServer(NewHandler(nc, nil, iss.Verifier(), zap.NewNop()))
	defer api.Close()
	token := mint(t, iss, "analyst", "analyst")
	get := func(path string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", api.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := get("/v1/asyncapi.json")
	var doc map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi: %d %.200s", resp.StatusCode, body)
	}

	spec := loadOpenAPI(t)
	const route = "/v1/schemas/{name}"
	var enum []string
	for _, p := range spec.raw["paths"].(map[string]any)[route].(map[string]any)["get"].(map[string]any)["parameters"].([]any) {
		if p := p.(map[string]any); p["name"] == "format" {
			for _, v := range p["schema"].(map[string]any)["enum"].([]any) {
				enum = append(enum, v.(string))
			}
		}
	}
	if !slices.Equal(enum, demarchev1.SchemaFormats) {
		t.Fatalf("the OpenAPI format parameter allows %v, the service %v", enum, demarchev1.SchemaFormats)
	}
	seen := map[string]bool{}
	for _, et := range eventbus.Types() {
		ev, err := contract.ExampleEvent(et)
		if err != nil {
			t.Fatal(err)
		}
		wire, err := eventbus.Encode(eventbus.SubjectRoot+".africa.GN."+contract.ExampleCrisis+"."+et.Token, ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, format := range append([]string{""}, demarchev1.SchemaFormats...) {
			path := "/v1/schemas/" + wire.Header.Get(eventbus.HeaderDataSchema)
			if format != "" {
				path += "?format=" + format
			}
			resp, body := get(path)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %.300s", path, resp.StatusCode, body)
			}
			seen[spec.check(t, route, 200, resp.Header.Get("Content-Type"), body)] = true
			f, _ := demarchev1.SchemaFormat(format)
			if err := schemacheck.Check(f, resp.Header.Get("Content-Type"), body, resp.Header.Get(natsrpc.SchemaHeaderMessage), wire.Data, ev.Data); err != nil {
				t.Errorf("GET %s: %v", path, err)
			}
			if got := resp.Header.Get(natsrpc.SchemaHeaderCEType); got != et.CEType {
				t.Errorf("GET %s: %s %q", path, natsrpc.SchemaHeaderCEType, got)
			}
		}
	}
	if len(seen) != len(demarchev1.SchemaFormats) {
		t.Errorf("answers came in %v, want one content type per format", seen)
	}

	// By message name and by ce-type too.
	for _, name := range []string{"demarche.v1.StageEntered", "org.demarche.crisis.stage_entered.v1"} {
		if resp, _ := get("/v1/schemas/" + name + "?format=descriptor"); resp.StatusCode != 200 || resp.Header.Get(natsrpc.SchemaHeaderMessage) != "demarche.v1.StageEntered" {
			t.Errorf("GET %s: %d %s", name, resp.StatusCode, resp.Header.Get(natsrpc.SchemaHeaderMessage))
		}
	}
	// Clear errors, in the document's Error shape.
	for _, c := range []struct {
		path   string
		status int
		says   string
		field  string
	}{
		{"/v1/schemas/demarche.v1.StageEntered?format=xml", 400, `is "xml" (allowed: descriptor-json, descriptor, jsonschema`, "format"},
		{"/v1/schemas/type.googleapis.com/demarche.v1.Nope", 404, `name: no message or event type "type.googleapis.com/demarche.v1.Nope" (allowed:`, ""},
	} {
		resp, body := get(c.path)
		var e struct {
			Error  string `json:"error"`
			Fields []struct{ Field, Reason string }
		}
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode != c.status || !strings.Contains(e.Error, c.says) {
			t.Errorf("GET %s: %d %s, want %d saying %q", c.path, resp.StatusCode, body, c.status, c.says)
			continue
		}
		spec.check(t, route, c.status, resp.Header.Get("Content-Type"), body)
		if c.field != "" && (len(e.Fields) != 1 || e.Fields[0].Field != c.field || !strings.Contains(e.Fields[0].Reason, c.says)) {
			t.Errorf("GET %s: %s does not name the field %s and what is allowed", c.path, body, c.field)
		}
	}
}
