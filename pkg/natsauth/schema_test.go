package natsauth_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
)

// TestSchemaFetchRights: the schema service's get is asked by those who
// decode events (the gateway, the operator, the observer, the subscriber and
// every partner organisation, with its own credential) and by nobody else;
// a partner asks get alone (not the AsyncAPI document's subject nor anything
// else under demarche.schema); the schema service answers exactly their
// inboxes, a partner let in from outside's too, and no signal source's.
func TestSchemaFetchRights(t *testing.T) {
	newOrg := natsauth.PartnerIdentity("NEWORG") // not in DefaultPartners
	outside := append(natsauth.DeployIdentities(), newOrg)
	askers := []natsauth.Identity{natsauth.Gateway, natsauth.Operator, natsauth.Observer, natsauth.Subscriber}
	for _, id := range append(slices.Clone(natsauth.Identities), outside...) {
		p := natsauth.PermissionsOf(id, outside...)
		_, partner := id.Partner()
		want := slices.Contains(askers, id) || partner
		if got := allowed(p, natsauth.SchemaGetSubject); got != want {
			t.Errorf("%s may ask %s: %v, want %v", id, natsauth.SchemaGetSubject, got, want)
		}
		if partner {
			for _, s := range []string{"demarche.schema.asyncapi", "demarche.schema.put", "$SRV.PING.schema"} {
				if allowed(p, s) {
					t.Errorf("%s may publish on %s: a partner asks %s alone", id, s, natsauth.SchemaGetSubject)
				}
			}
			// Listening on the request subject would let it answer others'
			// requests with schemas of its own making.
			if subscribes(p, natsauth.SchemaGetSubject) {
				t.Errorf("%s may listen on %s", id, natsauth.SchemaGetSubject)
			}
			if !subscribes(p, natsauth.InboxPrefix(id)+".r1") {
				t.Errorf("%s cannot read the answer on its own inbox", id)
			}
		}
	}
	schema := natsauth.PermissionsOf(natsauth.Schema, outside...)
	for inbox, want := range map[string]bool{
		natsauth.InboxPrefix(natsauth.PartnerIdentity("AU")) + ".r1":         true,
		natsauth.InboxPrefix(natsauth.PartnerIdentity("ECOWAS")) + ".r1":     true,
		natsauth.InboxPrefix(newOrg) + ".r1":                                 true,
		natsauth.InboxPrefix(natsauth.Observer) + ".r1":                      true,
		natsauth.InboxPrefix(natsauth.Subscriber) + ".r1":                    true,
		natsauth.InboxPrefix(natsauth.SignalSourceIdentity("acled")) + ".r1": false,
		natsauth.InboxPrefix(natsauth.Worker) + ".r1":                        false,
		"_INBOX.r1":                       false,
		"demarche.partner.AU.africa.GN.x": false,
	} {
		if got := allowed(schema, inbox); got != want {
			t.Errorf("the schema service may publish on %s: %v, want %v", inbox, got, want)
		}
	}
	// Without NEWORG let in, its inbox is nobody's to answer.
	if allowed(natsauth.PermissionsOf(natsauth.Schema), natsauth.InboxPrefix(newOrg)+".r1") {
		t.Error("the schema service answers a partner that was never let in")
	}
}

// TestPartnerFetchesSchemasOnAServer: on a real (embedded) server, a partner
// organisation asks demarche.schema.get with its own credential and inbox
// and gets the schema identity's answer; it may not ask the AsyncAPI
// subject, and a signal source may ask neither.
func TestPartnerFetchesSchemasOnAServer(t *testing.T) {
	au, acled := natsauth.PartnerIdentity("AU"), natsauth.SignalSourceIdentity("acled")
	creds, err := natsauth.Ensure(filepath.Join(t.TempDir(), "creds"), au, acled)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Users: creds}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	connect := func(id natsauth.Identity) *nats.Conn {
		t.Helper()
		u, _ := creds[id].URL(srv.URL())
		nc, err := nats.Connect(u, nats.CustomInboxPrefix(natsauth.InboxPrefix(id)), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	schema := connect(natsauth.Schema)
	for _, subject := range []string{natsauth.SchemaGetSubject, "demarche.schema.asyncapi"} {
		if _, err := schema.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte("schema of " + m.Subject)) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := schema.Flush(); err != nil {
		t.Fatal(err)
	}
	partner := connect(au)
	reply, err := partner.Request(natsauth.SchemaGetSubject, []byte(`{"name":"demarche.v1.CrisisOpened"}`), 5*time.Second)
	if err != nil || string(reply.Data) != "schema of "+natsauth.SchemaGetSubject {
		t.Fatalf("partner-AU asking %s: %v", natsauth.SchemaGetSubject, err)
	}
	// Refused requests get no answer: a short wait each.
	if _, err := partner.Request("demarche.schema.asyncapi", nil, 500*time.Millisecond); err == nil {
		t.Error("partner-AU was answered on demarche.schema.asyncapi")
	}
	if _, err := connect(acled).Request(natsauth.SchemaGetSubject, []byte(`{}`), 500*time.Millisecond); err == nil {
		t.Error("a signal source was answered on " + natsauth.SchemaGetSubject)
	}
}
