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
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

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

// A client with nothing but the event in hand asks the schema service for its
// ce-dataschema and decodes the body with the descriptor set, for every event type.
func TestSchemaFetchDecodesEveryEvent(t *testing.T) {
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
	for _, et := range append(CrisisEvents(), SignalEvent()) {
		ev, err := ExampleEvent(et)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := eventbus.Encode("demarche.crisis.africa.GN."+ExampleCrisis+"."+et.Token, ev)
		if err != nil {
			t.Fatal(err)
		}
		// What a foreign client does: plain NATS, plain JSON.
		req, _ := json.Marshal(map[string]string{"name": msg.Header.Get(eventbus.HeaderDataSchema)})
		reply, err := nc.Request(SubjectGet, req, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
			t.Fatalf("%s: %s %s", et.CEType, code, reply.Header.Get("Nats-Service-Error"))
		}
		var resp struct {
			Message       string          `json:"message"`
			CeType        string          `json:"ceType"`
			DescriptorSet json.RawMessage `json:"descriptorSet"`
			JSONSchema    string          `json:"jsonSchema"`
		}
		if err := json.Unmarshal(reply.Data, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.CeType != et.CEType || resp.Message != string(et.Message) {
			t.Errorf("%s: answered %s / %s", et.CEType, resp.Message, resp.CeType)
		}
		set := &descriptorpb.FileDescriptorSet{}
		if err := protojson.Unmarshal(resp.DescriptorSet, set); err != nil {
			t.Fatal(err)
		}
		files, err := protodesc.NewFiles(set)
		if err != nil {
			t.Fatalf("%s: descriptor set does not stand alone: %v", et.CEType, err)
		}
		d, err := files.FindDescriptorByName(protoreflect.FullName(resp.Message))
		if err != nil {
			t.Fatal(err)
		}
		dyn := dynamicpb.NewMessage(d.(protoreflect.MessageDescriptor))
		if err := proto.Unmarshal(msg.Data, dyn); err != nil {
			t.Fatalf("%s: %v", et.CEType, err)
		}
		got, _ := proto.MarshalOptions{Deterministic: true}.Marshal(dyn)
		want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(ev.Data)
		if !bytes.Equal(got, want) || len(dyn.GetUnknown()) > 0 {
			t.Errorf("%s: decoded with the fetched schema, the body differs", et.CEType)
		}
		var schema map[string]any
		if err := json.Unmarshal([]byte(resp.JSONSchema), &schema); err != nil || schema["$defs"] == nil {
			t.Errorf("%s: JSON Schema: %v", et.CEType, err)
		}
	}
	// Unknown names are a 404, no name a 400.
	for name, code := range map[string]string{"type.googleapis.com/demarche.v1.Nope": "404", "": "400"} {
		req, _ := json.Marshal(map[string]string{"name": name})
		reply, err := nc.Request(SubjectGet, req, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := reply.Header.Get("Nats-Service-Error-Code"); got != code {
			t.Errorf("name %q: code %q, want %s", name, got, code)
		}
	}
	reply, err := nc.Request(SubjectAsyncAPI, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := AsyncAPIJSON(); !bytes.Equal(reply.Data, want) {
		t.Error("demarche.schema.asyncapi does not answer the document")
	}
}
