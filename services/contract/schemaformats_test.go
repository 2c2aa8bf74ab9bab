package contract

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/contract/schemacheck"
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
	creds, err := natsauth.Ensure(filepath.Join(t.TempDir(), "creds"), partner)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Users: creds}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	url := func(id natsauth.Identity) string { u, _ := creds[id].URL(srv.URL()); return u }
	svc, err := Start(context.Background(), url(natsauth.Schema), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	connect := func(id natsauth.Identity) *nats.Conn {
		nc, err := nats.Connect(url(id), nats.CustomInboxPrefix(natsauth.InboxPrefix(id)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	ask := func(nc *nats.Conn, body string, header nats.Header) *nats.Msg {
		t.Helper()
		m := &nats.Msg{Subject: natsrpc.SchemaGet, Data: []byte(body), Header: header}
		reply, err := nc.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		return reply
	}
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
