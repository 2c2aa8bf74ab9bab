package stack_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/eventlog"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/services/gateway/claims"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/services/roster"
)

// TestNATSPermissions attacks the running stack's NATS as natscli would:
// without credentials, and as each identity on the subjects natsauth.Table
// gives it and on those it gives others. It walks the table itself: every
// rule's subject is allowed to the identities it names, and every publish
// rule is refused to a service it does not name.
func TestNATSPermissions(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()

	t.Run("no credentials, wrong password: refused", func(t *testing.T) {
		if nc, err := nats.Connect(s.NATSURL()); err == nil {
			nc.Close()
			t.Fatal("an unauthenticated client connected")
		}
		bad := natsauth.Credentials{Identity: natsauth.Funding, Password: "guess"}
		u, _ := bad.URL(s.NATSURL())
		if nc, err := nats.Connect(u); err == nil {
			nc.Close()
			t.Fatal("a wrong password connected")
		}
	})

	t.Run("credentials files are the owner's alone", func(t *testing.T) {
		for _, id := range natsauth.Identities {
			fi, err := os.Stat(s.CredentialsFile(id))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v, mode %v; want 0600", id, err, fi.Mode().Perm())
			}
		}
	})

	conns := map[natsauth.Identity]*nats.Conn{}
	for _, id := range natsauth.Identities {
		nc, err := nats.Connect(s.NATSURLFor(id), natsx.InboxOption(s.NATSURLFor(id)), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		defer nc.Close()
		conns[id] = nc
	}
	// concrete turns a table subject into one it matches.
	concrete := func(subject string) string {
		subject = strings.ReplaceAll(subject, "*", "x")
		return strings.ReplaceAll(subject, ">", "probe")
	}
	// probe connects afresh as id, does one thing and flushes: the server
	// answers a refused publish or subscription with -ERR before the PONG,
	// so the connection's last error tells whether it was allowed.
	probe := func(id natsauth.Identity, do func(*nats.Conn) error) bool {
		t.Helper()
		nc, err := nats.Connect(s.NATSURLFor(id), natsx.InboxOption(s.NATSURLFor(id)), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		defer nc.Close()
		if err := do(nc); err != nil {
			t.Fatal(err)
		}
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if err := nc.LastError(); err != nil {
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Fatalf("%s: unexpected error %v", id, err)
			}
			return false
		}
		return true
	}
	publishAllowed := func(id natsauth.Identity, subject string) bool {
		return probe(id, func(nc *nats.Conn) error { return nc.Publish(subject, nil) })
	}
	subscribeAllowed := func(id natsauth.Identity, subject string) bool {
		return probe(id, func(nc *nats.Conn) error { _, err := nc.SubscribeSync(subject); return err })
	}

	t.Run("each rule of the table holds", func(t *testing.T) {
		for _, r := range natsauth.Table {
			subject := concrete(r.Subject)
			if strings.HasPrefix(subject, "$JS.API.") || strings.HasPrefix(subject, "$KV.") || strings.HasPrefix(subject, "$JS.ACK.") || strings.HasPrefix(subject, "demarche.ledger.") ||
				strings.HasPrefix(subject, "demarche.audit.") || strings.HasPrefix(subject, "demarche.crisis.") || strings.HasPrefix(subject, "demarche.partner.") {
				// Allowed publishes here would write to a stream or call the
				// JetStream API: those are probed through refusals below.
				if r.Access&natsauth.Sub != 0 {
					for _, id := range r.Who {
						if !subscribeAllowed(id, subject) {
							t.Errorf("%s may not subscribe to %s (rule %q)", id, subject, r.Why)
						}
					}
				}
				continue
			}
			for _, id := range r.Who {
				if r.Access&natsauth.Pub != 0 && !publishAllowed(id, subject) {
					t.Errorf("%s may not publish on %s (rule %q)", id, subject, r.Why)
				}
				if r.Access&natsauth.Sub != 0 && !subscribeAllowed(id, subject) {
					t.Errorf("%s may not subscribe to %s (rule %q)", id, subject, r.Why)
				}
			}
		}
	})

	// Owned subjects: publishing on them is refused to every service but
	// their owners.
	owned := []struct {
		subject string
		owners  []natsauth.Identity
	}{
		{"demarche.crisis.africa.GN.GN-FORGED.crisis_closed", []natsauth.Identity{natsauth.Worker}},
		{"demarche.crisis.africa.GN.GN-FORGED.warning_raised", []natsauth.Identity{natsauth.Worker, natsauth.EarlyWarning}},
		{"demarche.ledger.flexible-financing", []natsauth.Identity{natsauth.Funding}},
		{"demarche.audit.crisis.GN-FORGED", []natsauth.Identity{natsauth.Audit}},
		{"demarche.audit.global", []natsauth.Identity{natsauth.Audit}},
		{"demarche.partner.AU.africa.GN.GN-FORGED.crisis_opened", []natsauth.Identity{natsauth.Partners}},
		{"$KV.DEMARCHE_ROSTER.booked.env-amara-diallo", []natsauth.Identity{natsauth.Roster}},
		{"$KV.DEMARCHE_FUNDING.paid.forged", []natsauth.Identity{natsauth.Funding}},
		{"$KV.DEMARCHE_CLAIMS.GN-FORGED.triage", []natsauth.Identity{natsauth.Gateway}},
		{"demarche.claims.GN-FORGED", []natsauth.Identity{natsauth.Gateway}},
	}
	outside := natsauth.DeployIdentities()
	t.Run("owned subjects refused to everyone else", func(t *testing.T) {
		for _, o := range owned {
			for _, id := range append(slices.Clone(natsauth.Identities), outside...) {
				if id == natsauth.Provisioner {
					continue
				}
				owner := false
				for _, w := range o.owners {
					owner = owner || w == id
				}
				if owner {
					continue // not probed: it would write a real record
				}
				if publishAllowed(id, o.subject) {
					t.Errorf("%s may publish on %s, owned by %v", id, o.subject, o.owners)
				}
			}
		}
	})

	t.Run("streams and buckets: no edit, purge or delete but by the provisioner", func(t *testing.T) {
		ctx := context.Background()
		var wg sync.WaitGroup
		for _, id := range natsauth.Identities {
			if id == natsauth.Provisioner {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				js, err := jetstream.New(conns[id])
				if err != nil {
					t.Error(err)
					return
				}
				for _, stream := range []string{funding.LedgerStream, audit.StreamName, audit.AnchorStream, eventbus.StreamName, "KV_" + roster.Bucket} {
					refused := func(what string, err error) {
						if err == nil {
							t.Errorf("%s could %s %s", id, what, stream)
						}
					}
					short, cancel := context.WithTimeout(ctx, time.Second)
					st, err := js.Stream(short, stream)
					if err != nil {
						cancel()
						t.Errorf("%s cannot even read %s: %v", id, stream, err)
						continue
					}
					cfg := st.CachedInfo().Config
					cfg.MaxMsgsPerSubject = 2
					_, err = js.UpdateStream(short, cfg)
					refused("edit", err)
					refused("purge", st.Purge(short))
					refused("delete", js.DeleteStream(short, stream))
					_, err = js.CreateStream(short, jetstream.StreamConfig{Name: "FORGED_" + string(id), Subjects: []string{"forged." + string(id)}})
					refused("create a stream beside", err)
					cancel()
				}
			}()
		}
		wg.Wait()
		// The data is all still there.
		js, _ := jetstream.New(conns[natsauth.Observer])
		st, err := js.Stream(ctx, funding.LedgerStream)
		if err != nil || st.CachedInfo().Config.MaxMsgsPerSubject == 2 {
			t.Fatalf("ledger stream after the attempts: %v", err)
		}
	})

	t.Run("partner organisations and signal sources: their own subjects alone", func(t *testing.T) {
		reg, err := partners.LoadRegistry("")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range reg.Partners() {
			names = append(names, p.Name)
		}
		slices.Sort(names)
		want := slices.Sorted(slices.Values(natsauth.DefaultPartners))
		if !slices.Equal(names, want) || natsauth.PartnerStream("AU") != partners.PartnerStream("AU") {
			t.Fatalf("registry partners %v, natsauth %v; stream %s vs %s", names, want, partners.PartnerStream("AU"), natsauth.PartnerStream("AU"))
		}
		for _, id := range outside {
			if fi, err := os.Stat(s.CredentialsFile(id)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v", id, err)
			}
		}
		au, eu, acled := natsauth.PartnerIdentity("AU"), natsauth.PartnerIdentity("EU"), natsauth.SignalSourceIdentity("acled")
		if !subscribeAllowed(au, "demarche.partner.AU.>") {
			t.Error("AU cannot read its own deliveries")
		}
		for _, subject := range []string{"demarche.partner.EU.>", "demarche.partner.>", "demarche.crisis.>", "_INBOX.>", natsauth.InboxPrefix(eu) + ".>"} {
			if subscribeAllowed(au, subject) {
				t.Errorf("AU may read %s", subject)
			}
		}
		for _, subject := range []string{"demarche.signals.ucdp", "demarche.signals.acled.x", "demarche.crisis.africa.GN.GN-FORGED.warning_raised", "demarche.partners.ack"} {
			if publishAllowed(acled, subject) {
				t.Errorf("acled may publish on %s", subject)
			}
		}
		if subscribeAllowed(acled, "demarche.>") {
			t.Error("a signal source may read events")
		}
	})

	t.Run("natsauth names the services' streams, buckets and durables", func(t *testing.T) {
		for got, want := range map[string]string{
			natsauth.CrisisStream: eventbus.StreamName, natsauth.DeadLetterStream: eventbus.DeadLetterStreamName,
			natsauth.SignalsStream: earlywarning.SignalsStream, natsauth.LedgerStream: funding.LedgerStream,
			natsauth.AuditStream: audit.StreamName, natsauth.AnchorStream: audit.AnchorStream, natsauth.PartnerStream("AU"): partners.PartnerStream("AU"),
			natsauth.RosterBucket: roster.Bucket, natsauth.FundingBucket: funding.Bucket,
			natsauth.PartnerCrisesBucket: partners.CrisisBucket, natsauth.PartnerPendingBucket: partners.PendingBucket,
			natsauth.SignalsBucket: earlywarning.SignalsBucket, natsauth.SituationsBucket: earlywarning.SituationBucket, natsauth.RulesBucket: earlywarning.RulesBucket, natsauth.DialoguesBucket: earlywarning.DialoguesBucket, natsauth.SignalStoreBucket: earlywarning.StoreBucket,
			natsauth.ClaimsBucket:         claims.Bucket,
			natsauth.WebhookDurablePrefix: partners.WebhookDurablePrefix,
		} {
			if got != want {
				t.Errorf("natsauth says %s, the service %s", got, want)
			}
		}
		for owner, name := range map[natsauth.Identity]string{natsauth.Audit: audit.Durable, natsauth.EventLog: eventlog.Durable,
			natsauth.Partners: partners.Durable, natsauth.EarlyWarning: earlywarning.SignalsDurable} {
			if !slices.ContainsFunc(natsauth.Durables[owner], func(c natsauth.Consumer) bool { return c.Name == name }) {
				t.Errorf("%s's durable %s is not in natsauth.Durables", owner, name)
			}
		}
	})

	t.Run("every durable consumer on the stack is its owner's, by name", func(t *testing.T) {
		js, _ := jetstream.New(conns[natsauth.Observer])
		all := natsauth.AllDurables(natsauth.DefaultPartners)
		known := func(c natsauth.Consumer) bool {
			for _, cs := range all {
				if slices.Contains(cs, c) {
					return true
				}
			}
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		seen := 0
		for name := range js.StreamNames(ctx).Name() {
			st, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			lister := st.ListConsumers(ctx)
			for info := range lister.Info() {
				if info.Config.Durable == "" {
					continue // ordered, library-named
				}
				seen++
				if c := (natsauth.Consumer{Stream: name, Name: info.Name}); !known(c) {
					t.Errorf("durable consumer %s is in no identity's natsauth.Durables", c)
				}
			}
			if err := lister.Err(); err != nil {
				t.Fatalf("consumers of %s: %v", name, err)
			}
		}
		if seen < 4 {
			t.Fatalf("%d durable consumers listed: the services' are missing", seen)
		}
	})

	t.Run("each identity reads its own inbox alone", func(t *testing.T) {
		for _, id := range natsauth.Identities {
			if !subscribeAllowed(id, natsauth.InboxPrefix(id)+".x") {
				t.Errorf("%s cannot read its own inbox", id)
			}
			if subscribeAllowed(id, "_INBOX.>") {
				t.Errorf("%s may read _INBOX.>", id)
			}
			other := natsauth.Worker
			if id == natsauth.Worker {
				other = natsauth.Gateway
			}
			if subscribeAllowed(id, natsauth.InboxPrefix(other)+".>") {
				t.Errorf("%s may read %s's inbox", id, other)
			}
		}
	})

	t.Run("money and bookings move for the worker alone", func(t *testing.T) {
		for _, subject := range []string{"demarche.funding.request", "demarche.funding.decide", "demarche.funding.disburse", "demarche.roster.reserve", "demarche.roster.release"} {
			for _, id := range append(slices.Clone(natsauth.Identities), outside...) {
				if id == natsauth.Worker || id == natsauth.Provisioner {
					continue
				}
				if publishAllowed(id, subject) {
					t.Errorf("%s may request %s", id, subject)
				}
			}
		}
	})

	t.Run("the observer reads but cannot write", func(t *testing.T) {
		obs := conns[natsauth.Observer]
		if !subscribeAllowed(natsauth.Observer, "demarche.crisis.>") {
			t.Fatal("observer cannot watch events")
		}
		for _, subject := range []string{"demarche.roster.reserve", "demarche.funding.disburse", "demarche.signals.probe"} {
			if publishAllowed(natsauth.Observer, subject) {
				t.Fatalf("observer may publish on %s", subject)
			}
		}
		if _, err := obs.Request("demarche.funding.balance", []byte(`{}`), 5*time.Second); err != nil {
			t.Fatalf("observer cannot read balances: %v", err)
		}
	})
}
