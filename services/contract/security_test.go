package contract

import (
	"encoding/json"
	"slices"
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
						InboxPrefix      string   `json:"inboxPrefix"`
						DurableConsumers []string `json:"durableConsumers"`
						Publish          []string `json:"publish"`
						PublishDenied    []string `json:"publishDenied"`
						Subscribe        []string `json:"subscribe"`
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
	if d := ids[string(natsauth.Audit)].DurableConsumers; !slices.Contains(d, natsauth.CrisisStream+".audit") {
		t.Errorf("audit's durables in the document: %v", d)
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
