package attack_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/pkg/natsauth"
)

// TestRestoreIsTheRestorersAlone: restoring a stream replaces its history,
// so only the restorer identity (`demarche admin restore`) may: every other
// credential's restore request, or its snapshot chunks (the provisioner,
// whose $JS.API.> lets it ask), is refused by a permission naming the
// subject; the restorer itself may not delete, purge or snapshot a stream,
// nor publish an event, and the server refuses its restore over a stream
// that exists. The ledger is as it was.
func TestRestoreIsTheRestorersAlone(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	obsConn, _ := natsWatched(t, s, natsauth.Observer)
	obs, err := jetstream.New(obsConn)
	if err != nil {
		t.Fatal(err)
	}
	ledger := func() jetstream.StreamState {
		t.Helper()
		st, err := obs.Stream(ctx, natsauth.LedgerStream)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().State
	}
	before := ledger()
	info, err := obs.Stream(ctx, natsauth.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(info.CachedInfo().Config)
	restoreReq, _ := json.Marshal(map[string]json.RawMessage{"config": cfg, "state": json.RawMessage(`{"messages":0}`)})
	restoreSubject := "$JS.API.STREAM.RESTORE." + natsauth.LedgerStream

	for _, id := range []natsauth.Identity{natsauth.Worker, natsauth.Funding, natsauth.Audit, natsauth.Operator, natsauth.Observer, natsauth.Gateway} {
		nc, errs := natsWatched(t, s, id)
		go func() { _, _ = nc.Request(restoreSubject, restoreReq, time.Second) }()
		msg, ok := violation(t, errs, restoreSubject)
		if !ok {
			t.Errorf("%s: a stream restore request was not refused", id)
			attempt(t, "nats", "restore the ledger stream (replace its history)", string(id), "NOT REFUSED")
			continue
		}
		attempt(t, "nats", "restore the ledger stream (replace its history)", string(id), "refused: "+msg)
	}

	// The provisioner may ask ($JS.API.>), and the server refuses a stream
	// that exists; the chunks it would send are refused by permission.
	prov, perrs := natsWatched(t, s, natsauth.Provisioner)
	r, err := prov.Request(restoreSubject, restoreReq, 5*time.Second)
	if err != nil || !strings.Contains(string(r.Data), "error") {
		t.Fatalf("the provisioner's restore over the existing ledger was not refused by the server: %v %s", err, r.Data)
	}
	attempt(t, "nats", "restore over the existing ledger stream", string(natsauth.Provisioner), "refused by the server: "+string(r.Data))
	chunk := "$JS.SNAPSHOT.RESTORE." + natsauth.LedgerStream + ".forged"
	if err := prov.Publish(chunk, []byte("forged archive")); err != nil {
		t.Fatal(err)
	}
	if msg, ok := violation(t, perrs, chunk); !ok {
		t.Errorf("the provisioner's restore chunk was not refused")
		attempt(t, "nats", "send a restore's snapshot chunks", string(natsauth.Provisioner), "NOT REFUSED")
	} else {
		attempt(t, "nats", "send a restore's snapshot chunks", string(natsauth.Provisioner), "refused: "+msg)
	}

	// The restorer: only the restore subjects.
	rest, rerrs := natsWatched(t, s, natsauth.Restorer)
	r, err = rest.Request(restoreSubject, restoreReq, 5*time.Second)
	if err != nil || !strings.Contains(string(r.Data), "error") {
		t.Fatalf("the restorer's restore over the existing ledger was not refused by the server: %v %s", err, r.Data)
	}
	attempt(t, "nats", "restore over the existing ledger stream", string(natsauth.Restorer), "refused by the server: "+string(r.Data))
	for what, subject := range map[string]string{
		"delete the ledger stream":   "$JS.API.STREAM.DELETE." + natsauth.LedgerStream,
		"purge the audit stream":     "$JS.API.STREAM.PURGE." + natsauth.AuditStream,
		"snapshot the ledger stream": "$JS.API.STREAM.SNAPSHOT." + natsauth.LedgerStream,
		"publish a crisis event":     "demarche.crisis.africa.ne.x.opened",
	} {
		go func() { _, _ = rest.Request(subject, []byte(`{}`), time.Second) }()
		msg, ok := violation(t, rerrs, subject)
		if !ok {
			t.Errorf("restorer: %s was not refused", what)
			attempt(t, "nats", what, string(natsauth.Restorer), "NOT REFUSED")
			continue
		}
		attempt(t, "nats", what, string(natsauth.Restorer), "refused: "+msg)
	}
	if after := ledger(); after.Msgs != before.Msgs || after.LastSeq != before.LastSeq {
		t.Fatalf("the ledger changed: %d messages (last %d), before %d (last %d)", after.Msgs, after.LastSeq, before.Msgs, before.LastSeq)
	}
}
