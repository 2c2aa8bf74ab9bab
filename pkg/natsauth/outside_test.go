package natsauth_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
)

// TestPartnersAndSignalSources attacks a real (embedded) NATS server as a
// partner organisation and as a signal source would: each reads or writes
// its own subjects and nothing else.
func TestPartnersAndSignalSources(t *testing.T) {
	au, eu, acled := natsauth.PartnerIdentity("AU"), natsauth.PartnerIdentity("EU"), natsauth.SignalSourceIdentity("acled")
	creds, err := natsauth.Ensure(filepath.Join(t.TempDir(), "creds"), au, eu, acled)
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
	allowed := func(id natsauth.Identity, do func(*nats.Conn) error) bool {
		t.Helper()
		nc := connect(id)
		if err := do(nc); err != nil {
			return false
		}
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		err := nc.LastError()
		if err != nil && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("%s: %v", id, err)
		}
		return err == nil
	}
	sub := func(id natsauth.Identity, subject string) bool {
		return allowed(id, func(nc *nats.Conn) error { _, err := nc.SubscribeSync(subject); return err })
	}
	pub := func(id natsauth.Identity, subject string) bool {
		return allowed(id, func(nc *nats.Conn) error { return nc.Publish(subject, []byte("probe")) })
	}
	for _, c := range []struct {
		id      natsauth.Identity
		subject string
		want    bool
	}{
		{au, "demarche.partner.AU.>", true},
		{au, "demarche.partner.AU.africa.GN.GN-1.crisis_opened", true},
		{au, "demarche.partner.EU.>", false},
		{au, "demarche.partner.>", false},
		{au, "demarche.crisis.>", false},
		{au, "demarche.>", false},
		{au, "_INBOX.>", false},
		{au, natsauth.InboxPrefix(eu) + ".>", false},
		{eu, "demarche.partner.EU.>", true},
		{acled, "demarche.signals.>", false},
		{acled, "demarche.>", false},
	} {
		if got := sub(c.id, c.subject); got != c.want {
			t.Errorf("%s subscribing to %s: allowed=%v, want %v", c.id, c.subject, got, c.want)
		}
	}
	for _, c := range []struct {
		id      natsauth.Identity
		subject string
		want    bool
	}{
		{acled, "demarche.signals.acled", true},
		{acled, "demarche.signals.ucdp", false},
		{acled, "demarche.crisis.africa.GN.GN-1.warning_raised", false},
		{acled, "$JS.API.STREAM.DELETE.DEMARCHE_SIGNALS", false},
		{au, "demarche.partner.AU.africa.GN.GN-1.crisis_opened", false},
		{au, "demarche.partners.ack", false},
		{au, "demarche.signals.AU", false},
		{au, "$JS.API.STREAM.PURGE." + natsauth.PartnerStream("AU"), false},
		{au, "$JS.API.STREAM.INFO." + natsauth.PartnerStream("AU"), true},
		{au, "$JS.API.STREAM.INFO." + natsauth.PartnerStream("EU"), false},
		{au, "$JS.API.STREAM.INFO.DEMARCHE_PARTNERS", false},
		{au, "$JS.API.STREAM.NAMES", false},
		{au, "$JS.API.STREAM.LIST", false},
		// nats consumer ls --names on its own stream, never another's, and
		// never CONSUMER.LIST (the webhook consumer's state).
		{au, "$JS.API.CONSUMER.NAMES." + natsauth.PartnerStream("AU"), true},
		{au, "$JS.API.CONSUMER.NAMES." + natsauth.PartnerStream("EU"), false},
		{au, "$JS.API.CONSUMER.NAMES." + natsauth.CrisisStream, false},
		{au, "$JS.API.CONSUMER.LIST." + natsauth.PartnerStream("AU"), false},
		// its own consumer's deletion stays refused (a declared durable: the
		// audit's consumer watch would raise an alarm); no ordered consumers.
		{au, "$JS.API.CONSUMER.DELETE." + natsauth.PartnerStream("AU") + ".AU", false},
		{au, "$JS.API.CONSUMER.CREATE." + natsauth.PartnerStream("AU") + ".Xy3kQ_1.demarche.partner.AU.>", false},
		{au, "$JS.ACK." + natsauth.PartnerStream("AU") + ".partners-webhook-AU.1.1.1.1765000000000000000.0", false},
	} {
		if got := pub(c.id, c.subject); got != c.want {
			t.Errorf("%s publishing on %s: allowed=%v, want %v", c.id, c.subject, got, c.want)
		}
	}

	// JetStream: a partner pulls its own deliveries through its durable
	// consumer on its own stream, and cannot make one that reads another's.
	ctx := context.Background()
	prov := connect(natsauth.Provisioner)
	pjs, _ := jetstream.New(prov)
	for _, org := range []string{"AU", "EU"} {
		if _, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: natsauth.PartnerStream(org), Subjects: []string{"demarche.partner." + org + ".>"}}); err != nil {
			t.Fatal(err)
		}
	}
	pjs2, _ := jetstream.New(connect(natsauth.Partners))
	for _, org := range []string{"AU", "EU"} {
		if _, err := pjs2.Publish(ctx, "demarche.partner."+org+".africa.GN.GN-1.crisis_opened", []byte(org)); err != nil {
			t.Fatal(err)
		}
	}
	ajs, _ := jetstream.New(connect(au))
	// A refused request gets no answer: each waits out its own short deadline.
	refused := func() context.Context {
		c, cancel := context.WithTimeout(ctx, time.Second)
		t.Cleanup(cancel)
		return c
	}
	if _, err := ajs.CreateOrUpdateConsumer(refused(), natsauth.PartnerStream("EU"), jetstream.ConsumerConfig{Durable: "AU", FilterSubject: "demarche.partner.EU.>", AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
		t.Fatal("AU made a consumer of EU's deliveries")
	}
	if _, err := ajs.CreateOrUpdateConsumer(refused(), natsauth.PartnerStream("AU"), jetstream.ConsumerConfig{Durable: "EU", FilterSubject: "demarche.partner.AU.>", AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
		t.Fatal("AU made a consumer under EU's name")
	}
	if _, err := ajs.Stream(refused(), natsauth.PartnerStream("EU")); err == nil {
		t.Fatal("AU read EU's stream info")
	}
	st, err := ajs.Stream(refused(), natsauth.PartnerStream("AU"))
	if err != nil {
		t.Fatalf("AU's own stream info: %v", err)
	}
	if info, err := st.Info(refused(), jetstream.WithSubjectFilter(">")); err != nil || len(info.State.Subjects) != 1 {
		t.Fatalf("AU's stream lists %v (%v), want its own subject alone", info.State.Subjects, err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cons, err := ajs.CreateOrUpdateConsumer(short, natsauth.PartnerStream("AU"), jetstream.ConsumerConfig{Durable: "AU", FilterSubject: "demarche.partner.AU.>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("AU's own consumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil || string(msg.Data()) != "AU" {
		t.Fatalf("AU's delivery: %v", err)
	}
	if err := msg.DoubleAck(short); err != nil {
		t.Fatalf("AU acknowledging: %v", err)
	}
	if err := ajs.DeleteStream(refused(), natsauth.PartnerStream("AU")); err == nil {
		t.Fatal("a partner deleted the stream")
	}
}

func TestOutsideIdentitiesAreOneToken(t *testing.T) {
	for _, bad := range []natsauth.Identity{natsauth.PartnerIdentity("AU.>"), natsauth.PartnerIdentity("*"), natsauth.SignalSourceIdentity(""), natsauth.SignalSourceIdentity("operator"), "mallory"} {
		if err := bad.Check(); err == nil {
			t.Errorf("%q accepted", bad)
		}
		if _, err := natsauth.Ensure(t.TempDir(), bad); err == nil {
			t.Errorf("Ensure accepted %q", bad)
		}
	}
}
