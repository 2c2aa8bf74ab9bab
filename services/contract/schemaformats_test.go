package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/contract/schemacheck"
	"github.com/demarche/demarche/services/partners"
)

// TestPartnerDecodesEveryEventInEveryFormat: on a NATS server with
// Démarche's permissions, a partner organisation (and the subscriber and the
// observer) asks demarche.schema.get with its own credential and inbox, in
// each format, for every event type (by its ce-dataschema, as an event
// carries it), and decodes the event's real wire body with standard decoders
// only: protodesc + dynamicpb for the FileDescriptorSet in binary and in
// protobuf JSON, a JSON Schema 2020-12 validator for the JSON Schema.
func TestPartnerDecodesEveryEventInEveryFormat(t *testing.T) {
	if natsauth.SchemaGetSubject != natsrpc.SchemaGet {
		t.Fatalf("natsauth grants %s, the service answers %s", natsauth.SchemaGetSubject, natsrpc.SchemaGet)
	}
	partner := natsauth.PartnerIdentity("ECOWAS")
	connect, ask := schemaOnAServer(t, partner)
	pnc := connect(partner)
	for _, et := range eventbus.Types() {
		ev, err := ExampleEvent(et)
		if err != nil {
			t.Fatal(err)
		}
		wire, err := eventbus.Encode(eventbus.SubjectRoot+".africa.GN."+ExampleCrisis+"."+et.Token, ev)
		if err != nil {
			t.Fatal(err)
		}
		name := wire.Header.Get(eventbus.HeaderDataSchema) // what a subscriber has in hand
		for _, format := range append([]string{""}, demarchev1.SchemaFormats...) {
			reply := ask(pnc, `{"name":"`+name+`","format":"`+format+`"}`, nil)
			if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
				t.Fatalf("%s as %q: %s %s", name, format, code, reply.Header.Get(micro.ErrorHeader))
			}
			f, _ := demarchev1.SchemaFormat(format)
			if err := schemacheck.Check(f, reply.Header.Get("Content-Type"), reply.Data, reply.Header.Get(HeaderMessage), wire.Data, ev.Data); err != nil {
				t.Errorf("%s: %v", et.CEType, err)
			}
			if got := reply.Header.Get(HeaderCEType); got != et.CEType {
				t.Errorf("%s as %q: %s %q", name, format, HeaderCEType, got)
			}
		}
	}

	// A binary request, as pkg/natsrpc's Protobuf() sends, by ce-type; the
	// subscriber's and the observer's credentials ask too.
	req, _ := proto.Marshal(&demarchev1.GetSchemaRequest{Name: "org.demarche.crisis.stage_entered.v1", Format: demarchev1.SchemaFormatDescriptor})
	for _, id := range []natsauth.Identity{natsauth.Subscriber, natsauth.Observer, partner} {
		reply := ask(connect(id), string(req), nats.Header{"Content-Type": {natsrpc.ContentTypeProtobuf}})
		if reply.Header.Get("Content-Type") != "application/x-protobuf" || reply.Header.Get(HeaderMessage) != "demarche.v1.StageEntered" {
			t.Errorf("%s: binary request answered %v", id, reply.Header)
		}
	}

	// Clear errors: which field, what is allowed.
	for _, c := range []struct{ body, code, says string }{
		{`{"name":"demarche.v1.StageEntered","format":"xml"}`, "400", `format: is "xml" (allowed: descriptor-json, descriptor, jsonschema`},
		{`{"name":"type.googleapis.com/demarche.v1.Nope"}`, "404", "name: no message or event type \"type.googleapis.com/demarche.v1.Nope\" (allowed: a ce-dataschema"},
		{`{"name":"org.demarche.crisis.nope.v1"}`, "404", "org.demarche.crisis.stage_entered.v1"},
		{`{}`, "400", "name: is required"},
		{`{"nom":"x"}`, "400", "undecodable request: want a demarche.v1.GetSchemaRequest"},
	} {
		reply := ask(pnc, c.body, nil)
		if got, desc := reply.Header.Get(micro.ErrorCodeHeader), reply.Header.Get(micro.ErrorHeader); got != c.code || !strings.Contains(desc, c.says) {
			t.Errorf("%s: %s %q, want %s saying %q", c.body, got, desc, c.code, c.says)
		}
	}
}

// schemaOnAServer starts a NATS server with Démarche's permissions (and
// partner's) and the schema service on it with its own credential; connect
// connects as an identity with its own inbox prefix, ask asks
// demarche.schema.get.
func schemaOnAServer(t *testing.T, partner natsauth.Identity) (connect func(natsauth.Identity) *nats.Conn, ask func(*nats.Conn, string, nats.Header) *nats.Msg) {
	t.Helper()
	creds, err := natsauth.Ensure(filepath.Join(t.TempDir(), "creds"), partner)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Users: creds}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	url := func(id natsauth.Identity) string { u, _ := creds[id].URL(srv.URL()); return u }
	svc, err := Start(context.Background(), url(natsauth.Schema), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	connect = func(id natsauth.Identity) *nats.Conn {
		nc, err := nats.Connect(url(id), nats.CustomInboxPrefix(natsauth.InboxPrefix(id)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	ask = func(nc *nats.Conn, body string, header nats.Header) *nats.Msg {
		t.Helper()
		m := &nats.Msg{Subject: natsrpc.SchemaGet, Data: []byte(body), Header: header}
		reply, err := nc.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		return reply
	}
	return connect, ask
}

// TestNodeDecodesEveryEventInEveryFormat: a decoder in another language,
// as a partner's engineer would write it (Node.js: @bufbuild/protobuf for the
// descriptor sets, ajv for the JSON Schema; testdata/node-decode, with its
// lockfile), decodes every event type's real wire body with the schema a
// partner fetched over NATS with its own credential, in each format, to the
// same protobuf JSON as Go's. Skipped when node or npm is missing; npm ci
// needs the npm registry.
func TestNodeDecodesEveryEventInEveryFormat(t *testing.T) {
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		t.Skip("node and npm are needed for the non-Go decoder check (Debian: apt-get install nodejs npm)")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "decode.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "node-decode", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci (testdata/node-decode): %v\n%s", err, out)
	}

	partner := natsauth.PartnerIdentity("AU")
	connect, ask := schemaOnAServer(t, partner)
	pnc := connect(partner)
	type nodeCase struct {
		Format      string          `json:"format"`
		ContentType string          `json:"contentType"`
		Message     string          `json:"message"`
		Schema      []byte          `json:"schema"`
		Wire        []byte          `json:"wire"`
		Want        json.RawMessage `json:"want"`
	}
	var cases []nodeCase
	partnerCases := 0
	for _, et := range eventbus.Types() {
		ev, err := ExampleEvent(et)
		if err != nil {
			t.Fatal(err)
		}
		wire, err := eventbus.Encode(eventbus.SubjectRoot+".africa.GN."+ExampleCrisis+"."+et.Token, ev)
		if err != nil {
			t.Fatal(err)
		}
		want, err := protojson.Marshal(ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, format := range demarchev1.SchemaFormats {
			reply := ask(pnc, `{"name":"`+wire.Header.Get(eventbus.HeaderDataSchema)+`","format":"`+format+`"}`, nil)
			if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
				t.Fatalf("%s as %s: %s %s", et.CEType, format, code, reply.Header.Get(micro.ErrorHeader))
			}
			cases = append(cases, nodeCase{format, reply.Header.Get("Content-Type"), reply.Header.Get(HeaderMessage), reply.Data, wire.Data, want})
			// A partner's copy of the event (what its stream and webhook
			// carry) decodes with the same schema.
			if copied, _, err := partnerExample(et); err == nil {
				cw, err := eventbus.Encode(partners.PartnerSubject("AU", eventbus.RouteOf(&demarchev1.Crisis{Id: ExampleCrisis, CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA}), et.Token), copied)
				if err != nil {
					t.Fatalf("the partner's copy of %s: %v", et.CEType, err)
				}
				cwant, _ := protojson.Marshal(copied.Data)
				cases = append(cases, nodeCase{format, reply.Header.Get("Content-Type"), reply.Header.Get(HeaderMessage), reply.Data, cw.Data, cwant})
				partnerCases++
			}
		}
	}
	if partnerCases == 0 {
		t.Fatal("no partner copy among the cases")
	}
	b, _ := json.Marshal(cases)
	file := filepath.Join(dir, "cases.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(node, "decode.mjs", file)
	run.Dir = dir
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("the Node decoder: %v\n%s", err, out)
	}
	want := fmt.Sprintf("decode: %d passed, 0 failed", len(cases))
	if !strings.Contains(string(out), want) {
		t.Fatalf("the Node decoder said %s, want %q", out, want)
	}
	t.Logf("%s (%d event types, %d formats; %d of the cases partners' copies)", want, len(eventbus.Types()), len(demarchev1.SchemaFormats), partnerCases)
}

// The AsyncAPI document says who may ask demarche.schema.get (partners
// included, from natsauth's table) and documents one reply per format with
// its content type.
func TestAsyncAPIDocumentsSchemaFormatsAndCallers(t *testing.T) {
	doc := AsyncAPI()
	op := doc["operations"].(map[string]any)[SubjectGet].(map[string]any)
	callers := op["x-demarche-permissions"].(map[string]any)["identities"].([]any)
	want := []any{"gateway", "operator", "observer", "subscriber", "partner-{ORG}"}
	if fmt.Sprint(callers) != fmt.Sprint(want) {
		t.Errorf("demarche.schema.get may be called by %v in the document, want %v", callers, want)
	}
	partner := doc["components"].(map[string]any)["securitySchemes"].(map[string]any)["nats"].(map[string]any)["x-demarche-identities"].(map[string]any)["partner-{ORG}"].(map[string]any)
	if !slices.Contains(partner["publish"].([]any), any(natsrpc.SchemaGet)) {
		t.Errorf("partner-{ORG}'s permissions in the document lack %s: %v", natsrpc.SchemaGet, partner["publish"])
	}
	msgs := doc["components"].(map[string]any)["messages"].(map[string]any)
	var types []string
	for _, r := range op["reply"].(map[string]any)["messages"].([]any) {
		name := strings.TrimPrefix(r.(map[string]any)["$ref"].(string), "#/channels/"+SubjectGet+".reply/messages/")
		types = append(types, msgs[SubjectGet+".reply."+name].(map[string]any)["contentType"].(string))
	}
	slices.Sort(types)
	var wantTypes []string
	for _, f := range demarchev1.SchemaFormats {
		wantTypes = append(wantTypes, demarchev1.SchemaContentTypes[f])
	}
	slices.Sort(wantTypes)
	if !slices.Equal(types, wantTypes) {
		t.Errorf("demarche.schema.get's replies are %v, want one per format %v", types, wantTypes)
	}
}
