package contract

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
)

// The document's security section is pkg/natsauth's table, not a copy: every
// identity with its inbox prefix, consumers and permissions, and each
// endpoint with exactly the identities that may call it.
func TestAsyncAPISecurityIsTheTable(t *testing.T) {
	b, err := AsyncAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			SecuritySchemes struct {
				NATS struct {
					Identities map[string]struct {
						InboxPrefix      string `json:"inboxPrefix"`
						DurableConsumers []struct {
							Stream, Name  string
							FilterSubject string `json:"filterSubject"`
						} `json:"durableConsumers"`
						JetStreamAPI  []string `json:"jetStreamAPI"`
						Publish       []string `json:"publish"`
						PublishDenied []string `json:"publishDenied"`
						Subscribe     []string `json:"subscribe"`
					} `json:"x-demarche-identities"`
				} `json:"nats"`
			} `json:"securitySchemes"`
		} `json:"components"`
		Operations map[string]struct {
			Permissions struct {
				Identities []string `json:"identities"`
			} `json:"x-demarche-permissions"`
			Channel map[string]string `json:"channel"`
		} `json:"operations"`
		Channels map[string]struct {
			Address *string `json:"address"`
		} `json:"channels"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	ids := doc.Components.SecuritySchemes.NATS.Identities
	for _, id := range natsauth.Identities {
		got, ok := ids[string(id)]
		p := natsauth.PermissionsOf(id)
		if !ok || got.InboxPrefix != natsauth.InboxPrefix(id) || !slices.Equal(got.Publish, p.Publish) ||
			!slices.Equal(got.Subscribe, p.Subscribe) || len(got.PublishDenied) != len(p.PublishDeny) {
			t.Errorf("identity %s: the document's security section is not natsauth's table", id)
		}
	}
	if d := ids[string(natsauth.Audit)].DurableConsumers; len(d) != 1 || d[0].Stream != natsauth.CrisisStream || d[0].Name != "audit" {
		t.Errorf("audit's durables in the document: %v", d)
	}
	// A partner's: its one consumer under its own code, filtered on its
	// subjects; no account info (the server refuses it).
	partner := ids["partner-{ORG}"]
	if d := partner.DurableConsumers; len(d) != 1 || d[0].Stream != "DEMARCHE_PARTNER_{ORG}" || d[0].Name != "{ORG}" || d[0].FilterSubject != "demarche.partner.{ORG}.>" {
		t.Errorf("partner durables in the document: %+v", d)
	}
	if partner.InboxPrefix != "_INBOX_partner-{ORG}" || !slices.Equal(partner.Publish, natsauth.PartnerPermissions("{ORG}").Publish) {
		t.Errorf("partner entry is not natsauth's: %+v", partner)
	}
	if slices.Contains(partner.JetStreamAPI, "$JS.API.INFO") || slices.Contains(partner.Publish, "$JS.API.INFO") {
		t.Error("the document grants a partner $JS.API.INFO, which the server refuses")
	}
	callers := map[string][]string{}
	for _, op := range doc.Operations {
		ch := doc.Channels[op.Channel["$ref"][len("#/channels/"):]]
		if ch.Address != nil && op.Permissions.Identities != nil {
			callers[*ch.Address] = op.Permissions.Identities
		}
	}
	for subject, want := range map[string][]string{
		natsrpc.FundingRequest: {"worker"}, natsrpc.FundingDisburse: {"worker"}, natsrpc.RosterReserve: {"worker"},
		natsrpc.FundingBalance: {"worker", "gateway", "operator", "observer"},
	} {
		if got := callers[subject]; !slices.Equal(got, want) {
			t.Errorf("%s may be called by %v in the document, want %v", subject, got, want)
		}
	}
}

// Every server says what it requires: dev too requires a credential (the
// embedded server refuses a connection without one), the cluster TLS too;
// and no operation promises $JS.API.INFO (partners are refused it).
func TestAsyncAPIServersRequireCredentials(t *testing.T) {
	doc := AsyncAPI()
	srv := doc["servers"].(map[string]any)
	for _, name := range []string{"dev", "cluster"} {
		s, ok := srv[name].(map[string]any)
		if !ok {
			t.Fatalf("no server %s", name)
		}
		sec, _ := s["security"].([]any)
		if len(sec) == 0 {
			t.Errorf("server %s lists no security", name)
		}
	}
	if n := len(srv["cluster"].(map[string]any)["security"].([]any)); n != 2 {
		t.Errorf("cluster security: %d schemes, want credentials and client certificate", n)
	}
	b, _ := json.Marshal(doc["operations"])
	if strings.Contains(string(b), `"$JS.API.INFO"`) {
		t.Error("an operation's x-demarche-permissions lists $JS.API.INFO")
	}
	// Nats-Msg-Id per subject, and the crisis example's header is ce-id.
	msg := doc["components"].(map[string]any)["messages"].(map[string]any)["CrisisOpened"].(map[string]any)
	h := msg["headers"].(map[string]any)["properties"].(map[string]any)
	for _, name := range []string{"Nats-Msg-Id", "Nats-Expected-Stream"} {
		d, _ := h[name].(map[string]any)["description"].(string)
		if !strings.Contains(d, "<PARTNER>") || !strings.Contains(d, "demarche.crisis") {
			t.Errorf("%s is not described per subject: %q", name, d)
		}
	}
	ex := msg["examples"].([]any)[0].(map[string]any)["headers"].(map[string]any)
	if ex["Nats-Msg-Id"] != ex["ce-id"] {
		t.Errorf("crisis event example: Nats-Msg-Id %v, ce-id %v", ex["Nats-Msg-Id"], ex["ce-id"])
	}
}

// The templates for outside identities are in the document, with the
// instances dev and deploy/nats give a user.
func TestAsyncAPIListsOutsideIdentities(t *testing.T) {
	ids := securityScheme()["x-demarche-identities"].(map[string]any)
	for _, name := range []string{"partner-{ORG}", "signals-{source}", "observer", "subscriber"} {
		e, ok := ids[name].(map[string]any)
		if !ok {
			t.Errorf("no identity %s in the document", name)
			continue
		}
		if strings.Contains(name, "{") && len(e["instances"].([]any)) == 0 {
			t.Errorf("%s lists no instances", name)
		}
	}
}
