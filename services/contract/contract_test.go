package contract

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natstest"
)

// The committed documents are what the code generates.
func TestDocsCurrent(t *testing.T) {
	files, err := Docs()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
		if err != nil {
			t.Errorf("docs/%s: %v: run 'make docs'", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("docs/%s disagrees with the schemas and subjects in code: run 'make docs' and commit the result", name)
		}
	}
}

// Every event type has an example that passes its rules, and a channel.
func TestEveryEventDocumented(t *testing.T) {
	doc := AsyncAPI()
	channels := doc["channels"].(map[string]any)
	for _, et := range append(CrisisEvents(), SignalEvent()) {
		ev, err := ExampleEvent(et)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eventbus.Encode("demarche.crisis.africa.GN."+ExampleCrisis+"."+et.Token, ev); err != nil {
			t.Errorf("example of %s: %v", et.CEType, err)
		}
	}
	for _, et := range CrisisEvents() {
		ch, ok := channels["crisis."+et.Token].(map[string]any)
		if !ok {
			t.Errorf("no channel for %s", et.CEType)
			continue
		}
		if want := eventbus.SubjectRoot + ".{region}.{country}.{crisisId}." + et.Token; ch["address"] != want {
			t.Errorf("%s: address %v, want %s", et.CEType, ch["address"], want)
		}
	}
}

// Every $ref points into the document, every channel parameter is declared,
// and every operation's messages belong to its channel.
func TestAsyncAPIConsistent(t *testing.T) {
	b, err := AsyncAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi %v", doc["asyncapi"])
	}
	resolve := func(ref string) any {
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")]
		}
		return cur
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok && resolve(r) == nil {
				t.Errorf("dangling $ref %s", r)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	param := regexp.MustCompile(`\{([A-Za-z]+)\}`)
	for id, c := range doc["channels"].(map[string]any) {
		ch := c.(map[string]any)
		addr, _ := ch["address"].(string)
		params, _ := ch["parameters"].(map[string]any)
		for _, m := range param.FindAllStringSubmatch(addr, -1) {
			if _, ok := params[m[1]]; !ok {
				t.Errorf("channel %s: parameter %s undeclared", id, m[1])
			}
		}
	}
	for id, o := range doc["operations"].(map[string]any) {
		op := o.(map[string]any)
		chRef := op["channel"].(map[string]any)["$ref"].(string)
		for _, m := range op["messages"].([]any) {
			if r := m.(map[string]any)["$ref"].(string); !strings.HasPrefix(r, chRef+"/messages/") {
				t.Errorf("operation %s: message %s is not its channel's", id, r)
			}
		}
		if _, ok := op["x-demarche-permissions"]; !ok {
			t.Errorf("operation %s says no permissions", id)
		}
	}
}

// The schema service serves the AsyncAPI document on demarche.schema.asyncapi.
// (Schemas: TestPartnerDecodesEveryEventInEveryFormat.)
func TestSchemaServiceServesAsyncAPI(t *testing.T) {
	srv := natstest.Server(t)
	svc, err := Start(t.Context(), srv.URL(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reply, err := nc.Request(SubjectAsyncAPI, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := AsyncAPIJSON(); !bytes.Equal(reply.Data, want) {
		t.Error("demarche.schema.asyncapi does not answer the document")
	}
}
