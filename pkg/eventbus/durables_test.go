package eventbus_test

import (
	"strings"
	"testing"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
)

// TestDurablesAgreeWithPermissions: the durables the audit service watches
// (eventbus.Durables) are exactly those NATS lets an identity own
// (natsauth.AllDurables), each declared with the same owner, so a consumer
// that permissions allow is never an alarm and one the watch expects can
// always be made.
func TestDurablesAgreeWithPermissions(t *testing.T) {
	owned := 0
	for owner, cs := range natsauth.AllDurables(natsauth.DefaultPartners) {
		for _, c := range cs {
			if _, isPartner := owner.Partner(); isPartner {
				continue // a partner's own consumer on its stream: the partner's business
			}
			owned++
			spec := eventbus.SpecOf(c.Stream, c.Name)
			if spec == nil {
				t.Errorf("%s's durable %s is allowed by natsauth but not declared in eventbus.Durables", owner, c)
				continue
			}
			if spec.Owner != string(owner) {
				t.Errorf("durable %s: owner %s in natsauth, %s in eventbus.Durables", c, owner, spec.Owner)
			}
		}
	}
	for _, d := range eventbus.Durables {
		found := false
		for owner, cs := range natsauth.AllDurables(natsauth.DefaultPartners) {
			for _, c := range cs {
				_, isPartner := owner.Partner()
				sameOwner := string(owner) == d.Owner || isPartner && d.Owner == "partner"
				sameStream := c.Stream == d.Stream || d.StreamPrefix && strings.HasPrefix(c.Stream, d.Stream)
				if sameOwner && sameStream && (c.Name == d.Durable || d.Prefix && strings.HasPrefix(c.Name, d.Durable)) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("eventbus.Durables declares %s.%s for %s, which natsauth does not let it own", d.Stream, d.Durable, d.Owner)
		}
	}
	if owned < 5 {
		t.Fatalf("only %d durables owned: natsauth.AllDurables lost its table?", owned)
	}
}
