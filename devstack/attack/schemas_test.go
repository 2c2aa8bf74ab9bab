package attack_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

const wallSchemas = "schemas"

// TestPartnerSchemaFetchAndNoMore: on the running platform, a partner
// organisation's credential from the data folder asks demarche.schema.get
// and gets a descriptor set it can decode with (the schema service answers
// its own inbox); the same credential may not listen on the request subject
// (to answer others' requests with schemas of its making), read another
// partner's replies, or ask the other schema subject.
func TestPartnerSchemaFetchAndNoMore(t *testing.T) {
	s := startStack(t)
	au := natsauth.PartnerIdentity("AU")

	nc, errs := natsWatched(t, s, au)
	req, _ := json.Marshal(map[string]string{"name": "type.googleapis.com/demarche.v1.CrisisOpened", "format": demarchev1.SchemaFormatDescriptor})
	reply, err := nc.Request(natsrpc.SchemaGet, req, 10*time.Second)
	if err != nil {
		t.Fatalf("partner-AU asking %s: %v", natsrpc.SchemaGet, err)
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("partner-AU asking %s: %s %s", natsrpc.SchemaGet, code, reply.Header.Get(micro.ErrorHeader))
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(reply.Data, set); err != nil {
		t.Fatal(err)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := files.FindDescriptorByName("demarche.v1.CrisisOpened"); err != nil || reply.Header.Get("Content-Type") != "application/x-protobuf" {
		t.Fatalf("partner-AU's answer: %v %v", err, reply.Header)
	}
	attempt(t, wallSchemas, "ask demarche.schema.get (format descriptor) with its own credential", "partner-AU", "answered: a FileDescriptorSet holding demarche.v1.CrisisOpened")

	for _, c := range []struct {
		what    string
		subject string
		do      func() error
	}{
		{"listen on demarche.schema.get (queue group schema) to answer others' requests", natsrpc.SchemaGet,
			func() error { _, err := nc.QueueSubscribeSync(natsrpc.SchemaGet, "schema"); return err }},
		{"read partner-ECOWAS's replies", natsauth.InboxPrefix(natsauth.PartnerIdentity("ECOWAS")) + ".>",
			func() error {
				_, err := nc.SubscribeSync(natsauth.InboxPrefix(natsauth.PartnerIdentity("ECOWAS")) + ".>")
				return err
			}},
		{"ask demarche.schema.asyncapi (get alone is granted)", natsrpc.SchemaAsyncAPI,
			func() error { return nc.Publish(natsrpc.SchemaAsyncAPI, nil) }},
	} {
		if err := c.do(); err != nil {
			t.Fatal(err)
		}
		if err := nc.FlushTimeout(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		why, refused := violation(t, errs, c.subject)
		if !refused {
			t.Errorf("partner-AU could %s", c.what)
			continue
		}
		attempt(t, wallSchemas, c.what, "partner-AU", "refused by NATS: "+why)
	}
}
