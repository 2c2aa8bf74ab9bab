package attack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/natsauth"
)

// natsWatched connects as id (with its own inbox prefix) and hands back the
// connection's asynchronous errors: nats-server answers a refused publish
// or subscription with a "permissions violation" naming the subject, not to
// the request itself.
func natsWatched(t *testing.T, s *stack.Stack, id natsauth.Identity) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 64)
	nc, err := nats.Connect(s.NATSURLFor(id), nats.CustomInboxPrefix(natsauth.InboxPrefix(id)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", id, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// violation waits for the permissions violation naming subject and returns
// it; the attempt failed to be refused when none comes.
func violation(t *testing.T, errs <-chan error, subject string) (string, bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-errs:
			msg := err.Error()
			if strings.Contains(strings.ToLower(msg), "permissions violation") && strings.Contains(msg, subject) {
				return msg, true
			}
		case <-deadline:
			return "", false
		}
	}
}

// TestNatsConsumersInboxesAndMutatingSubjects: with each internal credential
// `demarche dev` writes, the manipulations the issue found — edit the audit
// consumer's filter, delete the eventlog consumer, pull and acknowledge the
// partners consumer's messages, read others' replies, move money or book
// experts — are each refused by a permission naming the subject, and nothing
// changed: the consumers are as provisioned, no ledger line, no booking.
func TestNatsConsumersInboxesAndMutatingSubjects(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	watch, _ := natsWatched(t, s, natsauth.Observer)
	obs, err := jetstream.New(watch)
	if err != nil {
		t.Fatal(err)
	}
	consumerConfig := func(stream, name string) jetstream.ConsumerConfig {
		t.Helper()
		c, err := obs.Consumer(ctx, stream, name)
		if err != nil {
			t.Fatalf("consumer %s.%s: %v", stream, name, err)
		}
		return c.CachedInfo().Config
	}
	msgs := func(stream string) uint64 {
		t.Helper()
		st, err := obs.Stream(ctx, stream)
		if err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		return st.CachedInfo().State.Msgs
	}
	// The walls leave the platform working: the services made their own
	// consumers (read above, as the observer may), and the observer reads
	// the stream through an ordered consumer.
	oc, err := obs.OrderedConsumer(ctx, natsauth.CrisisStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"demarche.crisis.>"}})
	if err != nil {
		t.Fatalf("the observer's ordered consumer: %v", err)
	}
	if _, err := oc.Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond)); err != nil {
		t.Fatalf("the observer's ordered consumer: %v", err)
	}
	attempt(t, "nats", "read the crisis stream with an ordered consumer", "observer", "allowed")
	auditBefore := consumerConfig(natsauth.CrisisStream, "audit")
	eventlogBefore := consumerConfig(natsauth.CrisisStream, "eventlog")
	partnersBefore := consumerConfig(natsauth.CrisisStream, "partners")
	ledgerBefore, rosterBefore := msgs(natsauth.LedgerStream), msgs(natsauth.KV(natsauth.RosterBucket))

	for _, id := range []natsauth.Identity{natsauth.Observer, natsauth.Operator, natsauth.Roster, natsauth.Gateway, natsauth.Partners, natsauth.EventLog, natsauth.EarlyWarning} {
		t.Run(string(id), func(t *testing.T) {
			nc, errs := natsWatched(t, s, id)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			refused := func(what, subject string, do func() error) {
				t.Helper()
				done := make(chan error, 1)
				go func() { done <- do() }()
				msg, ok := violation(t, errs, subject)
				<-done
				if !ok {
					t.Errorf("%s: %s was not refused (no permissions violation for %s)", id, what, subject)
					attempt(t, "nats", what, string(id), "NOT REFUSED")
					return
				}
				attempt(t, "nats", what, string(id), "refused: "+msg)
			}
			short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }

			// Edit the audit consumer's filter: its events of Europe never chained.
			forged := auditBefore
			forged.FilterSubject, forged.FilterSubjects = "demarche.crisis.europe.>", nil
			refused("edit the audit consumer's filter", "$JS.API.CONSUMER.CREATE."+natsauth.CrisisStream+".audit.demarche.crisis.europe.>", func() error {
				c, cancel := short()
				defer cancel()
				_, err := js.CreateOrUpdateConsumer(c, natsauth.CrisisStream, forged)
				return err
			})
			// The same through the legacy forms: the name in the body alone, or DURABLE.CREATE.
			body, _ := json.Marshal(map[string]any{"stream_name": natsauth.CrisisStream, "config": map[string]any{"name": "audit",
				"filter_subject": "demarche.crisis.europe.>", "ack_policy": "explicit", "deliver_policy": "all"}})
			legacy := "$JS.API.CONSUMER.CREATE." + natsauth.CrisisStream
			refused("edit the audit consumer through the legacy ephemeral form (name in the body)", legacy, func() error {
				return nc.PublishRequest(legacy, nc.NewInbox(), body)
			})
			durable := "$JS.API.CONSUMER.DURABLE.CREATE." + natsauth.CrisisStream + ".audit"
			refused("edit the audit consumer through DURABLE.CREATE", durable, func() error {
				return nc.PublishRequest(durable, nc.NewInbox(), body)
			})

			if id == natsauth.EarlyWarning {
				// Its index of open crises reads crisis_opened and crisis_closed
				// alone (natsauth.EventReads): no other event type, nor all.
				for what, subject := range map[string]string{
					"read the crisis stream's stage_entered events": "$JS.API.CONSUMER.CREATE." + natsauth.CrisisStream + ".Xy3kQ_1.demarche.crisis.*.*.*.stage_entered",
					"read every event of the crisis stream":         "$JS.API.CONSUMER.CREATE." + natsauth.CrisisStream + ".Xy3kQ_2",
					"read every event of the crisis stream (>)":     "$JS.API.CONSUMER.CREATE." + natsauth.CrisisStream + ".Xy3kQ_3.demarche.crisis.>",
				} {
					body, _ := json.Marshal(map[string]any{"stream_name": natsauth.CrisisStream, "config": map[string]any{"name": "Xy3kQ",
						"ack_policy": "none", "deliver_policy": "all", "mem_storage": true, "inactive_threshold": 5_000_000_000}}) // a map of plain values always encodes
					refused(what, subject, func() error { return nc.PublishRequest(subject, nc.NewInbox(), body) })
				}
			}

			// Delete a consumer that is not its own.
			victim := "eventlog"
			if id == natsauth.EventLog {
				victim = "audit"
			}
			refused("delete the "+victim+" consumer", "$JS.API.CONSUMER.DELETE."+natsauth.CrisisStream+"."+victim, func() error {
				c, cancel := short()
				defer cancel()
				return js.DeleteConsumer(c, natsauth.CrisisStream, victim)
			})

			// Pull and acknowledge another's consumer's messages.
			puller := "partners"
			if id == natsauth.Partners {
				puller = "eventlog"
			}
			next := "$JS.API.CONSUMER.MSG.NEXT." + natsauth.CrisisStream + "." + puller
			inbox := nc.NewInbox()
			got, err := nc.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			refused("pull the "+puller+" consumer's messages", next, func() error {
				return nc.PublishRequest(next, inbox, []byte(`{"batch":10,"expires":500000000}`))
			})
			if m, err := got.NextMsg(time.Second); err == nil {
				t.Errorf("%s pulled from %s: %s %q", id, puller, m.Subject, m.Data)
			}
			ack := "$JS.ACK." + natsauth.CrisisStream + "." + puller + ".1.1.1." + fmt.Sprint(time.Now().UnixNano()) + ".0"
			refused("acknowledge the "+puller+" consumer's message", ack, func() error { return nc.Publish(ack, []byte("+ACK")) })

			// Read everyone's replies, or another identity's.
			refused("subscribe to _INBOX.>", "_INBOX.>", func() error { _, err := nc.SubscribeSync("_INBOX.>"); return err })
			other := natsauth.Worker
			if id == natsauth.Worker {
				other = natsauth.Gateway
			}
			theirs := natsauth.InboxPrefix(other) + ".>"
			refused("subscribe to the "+string(other)+" inbox", theirs, func() error { _, err := nc.SubscribeSync(theirs); return err })

			// Read funding's requests and paid keys, or a ledger line by
			// sequence: message reads are their owner's alone.
			direct := "$JS.API.DIRECT.GET." + natsauth.KV(natsauth.FundingBucket) + ".$KV." + natsauth.FundingBucket + ".paid.flexible-financing"
			refused("read funding's bucket (direct get)", direct, func() error { return nc.PublishRequest(direct, nc.NewInbox(), nil) })
			get := "$JS.API.STREAM.MSG.GET." + natsauth.LedgerStream
			refused("read a ledger line by sequence", get, func() error { return nc.PublishRequest(get, nc.NewInbox(), []byte(`{"seq":1}`)) })

			// Move money, book or release experts.
			for subject, body := range map[string]string{
				"demarche.funding.request":  `{"crisisId":"GN-20261207-FAKE","fund":"flexible-financing","amountUsd":2900000,"requestedBy":"mallory","purpose":"forged"}`,
				"demarche.funding.decide":   `{"crisisId":"GN-20261207-FAKE","requestId":"r1","approved":true,"decidedBy":"mallory2"}`,
				"demarche.funding.disburse": `{"crisisId":"GN-20261207-FAKE","requestId":"r1"}`,
				"demarche.roster.reserve":   `{"crisisId":"GN-20261207-FAKE","role":"envoy","expertId":"env-amara-diallo","reservedBy":"mallory"}`,
				"demarche.roster.release":   `{"crisisId":"GN-20261207-FAKE","role":"envoy"}`,
			} {
				refused("request "+subject, subject, func() error { return nc.PublishRequest(subject, nc.NewInbox(), []byte(body)) })
			}
		})
	}

	// Nothing changed.
	if after := consumerConfig(natsauth.CrisisStream, "audit"); !sameFilters(after, auditBefore) {
		t.Errorf("the audit consumer's filter changed: %v %v → %v %v", auditBefore.FilterSubject, auditBefore.FilterSubjects, after.FilterSubject, after.FilterSubjects)
	}
	if after := consumerConfig(natsauth.CrisisStream, "eventlog"); !sameFilters(after, eventlogBefore) {
		t.Error("the eventlog consumer changed")
	}
	if after := consumerConfig(natsauth.CrisisStream, "partners"); !sameFilters(after, partnersBefore) {
		t.Error("the partners consumer changed")
	}
	if n := msgs(natsauth.LedgerStream); n != ledgerBefore {
		t.Errorf("ledger lines %d → %d", ledgerBefore, n)
	}
	if n := msgs(natsauth.KV(natsauth.RosterBucket)); n != rosterBefore {
		t.Errorf("roster bucket writes %d → %d", rosterBefore, n)
	}
	attempt(t, "nats", "after all of the above: audit, eventlog and partners consumers as provisioned, ledger and roster unwritten", "observer (reads)", "unchanged")
}

func sameFilters(a, b jetstream.ConsumerConfig) bool {
	return a.FilterSubject == b.FilterSubject && slices.Equal(a.FilterSubjects, b.FilterSubjects) && a.AckPolicy == b.AckPolicy && a.MaxDeliver == b.MaxDeliver
}
