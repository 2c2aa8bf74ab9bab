package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/demarche/demarche/pkg/backup"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsx"
)

// devFolder makes a small data folder as `demarche dev` leaves it stopped:
// an encrypted JetStream store with a stream (and consumers) and a bucket,
// credentials, a store key and a stand-in Temporal database.
func devFolder(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	creds, err := natsauth.Ensure(filepath.Join(dir, backup.CredentialsDir))
	if err != nil {
		t.Fatal(err)
	}
	key, err := natsembed.EnsureStoreKey(filepath.Join(dir, natsembed.StoreKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(dir, "nats"), Users: creds, StoreKey: key}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	url, _ := creds[natsauth.Provisioner].URL(srv.URL())
	nc, js, err := natsx.Connect(url, "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: natsauth.LedgerStream, Subjects: []string{"demarche.ledger.>"}}); err != nil {
		t.Fatal("create stream: ", err)
	}
	furl, _ := creds[natsauth.Funding].URL(srv.URL())
	fnc, fjs, err := natsx.Connect(furl, "test-funding", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer fnc.Close()
	for i := range 50 {
		if _, err := fjs.Publish(ctx, fmt.Sprintf("demarche.ledger.f%d", i%3), []byte(fmt.Sprintf("line %d", i))); err != nil {
			t.Fatal("publish: ", err)
		}
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, natsauth.LedgerStream, jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: natsauth.FundingBucket}); err != nil {
		t.Fatal(err)
	}
	kv, err := fjs.KeyValue(ctx, natsauth.FundingBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "fund.a", []byte("opened")); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{backup.TemporalDatabase: "sqlite stand-in", "codec-key.json": `{"k":1}`, "auth/issuer.key": "issuer"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBackupRestoreDevFolder(t *testing.T) {
	ctx := context.Background()
	data := devFolder(t)
	out := filepath.Join(t.TempDir(), "bk")
	var progress bytes.Buffer
	res, err := backup.Backup(ctx, backup.Options{Out: out, DataDir: data, Progress: &progress}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Log(progress.String())
	if res.KeyFile != out+".key" {
		t.Fatalf("key file %q, want %s.key", res.KeyFile, out)
	}
	if st, err := os.Stat(res.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, st.Mode())
	}
	got := map[string]backup.StreamEntry{}
	for _, s := range res.Manifest.Streams {
		got[s.Name] = s
	}
	if s := got[natsauth.LedgerStream]; s.Messages != 50 || s.LastSeq != 50 || s.Consumers != 1 || len(s.SHA256) != 64 {
		t.Fatalf("ledger in the manifest: %+v", s)
	}
	if s, ok := got[natsauth.KV(natsauth.FundingBucket)]; !ok || s.Messages != 1 {
		t.Fatalf("bucket in the manifest: %+v", s)
	}
	// Nothing secret in clear: the store key is in the encrypted file only.
	storeKey, _ := os.ReadFile(filepath.Join(data, natsembed.StoreKeyFile))
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, bytes.TrimSpace(storeKey)) || bytes.Contains(b, []byte("line 7")) {
				t.Errorf("%s holds a secret or a message in clear", p)
			}
		}
		return nil
	})

	// A non-empty folder is refused, and left as it was.
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "keep"), []byte("x"), 0o600)
	if _, err := backup.Restore(ctx, backup.RestoreOptions{From: out, DataDir: full}, zap.NewNop()); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty folder: %v", err)
	}
	// A wrong key is refused, naming both public keys.
	wrong := filepath.Join(t.TempDir(), "wrong.key")
	wid, err := backup.NewIdentityFile(wrong)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	_, err = backup.Restore(ctx, backup.RestoreOptions{From: out, DataDir: target, IdentityFile: wrong}, zap.NewNop())
	if !errors.Is(err, backup.ErrWrongKey) || !strings.Contains(err.Error(), wid.Recipient().String()) || !strings.Contains(err.Error(), res.Manifest.Recipients[0]) {
		t.Fatalf("restore with a wrong key: %v", err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("a refused restore wrote %s", target)
	}

	// The right one (found beside the backup) restores every stream and file.
	rr, err := backup.Restore(ctx, backup.RestoreOptions{From: out, DataDir: target, Progress: &progress}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Streams) != len(res.Manifest.Streams) {
		t.Fatalf("%d streams restored, %d backed up", len(rr.Streams), len(res.Manifest.Streams))
	}
	for _, f := range []string{backup.TemporalDatabase, "codec-key.json", "auth/issuer.key", natsembed.StoreKeyFile} {
		a, _ := os.ReadFile(filepath.Join(data, f))
		b, err := os.ReadFile(filepath.Join(target, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s not restored as it was: %v", f, err)
		}
	}
	creds, err := natsauth.Ensure(filepath.Join(target, backup.CredentialsDir))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(target, natsembed.StoreKeyFile))
	srv, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(target, "nats"), Users: creds, StoreKey: strings.TrimSpace(string(key))}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	url, _ := creds[natsauth.Provisioner].URL(srv.URL())
	nc, js, err := natsx.Connect(url, "test", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s, err := js.Stream(ctx, natsauth.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetMsg(ctx, 8)
	if err != nil || string(msg.Data) != "line 7" {
		t.Fatalf("message 8 after restore: %v %v", err, msg)
	}
	if _, err := s.Consumer(ctx, "reader"); err != nil {
		t.Fatalf("the durable consumer is not back: %v", err)
	}
	kv, err := js.KeyValue(ctx, natsauth.FundingBucket)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "fund.a"); err != nil || string(e.Value()) != "opened" {
		t.Fatalf("bucket after restore: %v", err)
	}
	// The restored folder is no longer empty: a second restore is refused.
	if _, err := backup.Restore(ctx, backup.RestoreOptions{From: out, DataDir: target}, zap.NewNop()); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("second restore: %v", err)
	}
}

// TestBackupRestoreCluster: a cluster's streams through NATS alone, as the
// provisioner (backup) and the restorer (restore), to a recipient given; a
// cluster backup without one is refused, and so is a restore over a stream
// that exists.
func TestBackupRestoreCluster(t *testing.T) {
	ctx := context.Background()
	data := devFolder(t) // its store, served as a cluster would be
	creds, err := natsauth.Ensure(filepath.Join(data, backup.CredentialsDir))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(data, natsembed.StoreKeyFile))
	srv, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(data, "nats"), Users: creds, StoreKey: strings.TrimSpace(string(key))}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	prov, _ := creds[natsauth.Provisioner].URL(srv.URL())
	out := filepath.Join(t.TempDir(), "bk")
	if _, err := backup.Backup(ctx, backup.Options{Out: out, NATSURL: prov}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "--recipient") {
		t.Fatalf("cluster backup without a recipient: %v", err)
	}
	idFile := filepath.Join(t.TempDir(), "ops.key")
	id, err := backup.NewIdentityFile(idFile)
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Backup(ctx, backup.Options{Out: out, NATSURL: prov, Recipients: []string{id.Recipient().String()}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if res.KeyFile != "" || res.Manifest.Kind != backup.KindCluster || len(res.Manifest.Files) != 0 || len(res.Manifest.Streams) != 2 {
		t.Fatalf("cluster backup: key %q, manifest %+v", res.KeyFile, res.Manifest)
	}
	// Over the same server, whose streams exist: refused.
	rest, _ := creds[natsauth.Restorer].URL(srv.URL())
	if _, err := backup.Restore(ctx, backup.RestoreOptions{From: out, IdentityFile: idFile, NATSURL: rest}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("restore over existing streams: %v", err)
	}
	srv.Stop()

	// Into a new, empty server: every stream back, as the restorer.
	fresh := t.TempDir()
	srv2, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(fresh, "nats"), Users: creds}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Stop()
	// The provisioner may not restore.
	prov2, _ := creds[natsauth.Provisioner].URL(srv2.URL())
	if _, err := backup.Restore(ctx, backup.RestoreOptions{From: out, IdentityFile: idFile, NATSURL: prov2}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "only the restorer") {
		t.Fatalf("the provisioner restoring a stream: %v", err)
	}
	rest2, _ := creds[natsauth.Restorer].URL(srv2.URL())
	rr, err := backup.Restore(ctx, backup.RestoreOptions{From: out, IdentityFile: idFile, NATSURL: rest2}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Streams) != 2 || rr.Streams[0].Messages+rr.Streams[1].Messages != 51 {
		t.Fatalf("restored: %+v", rr.Streams)
	}
}
