package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
)

// TestNATSPasswordRotation follows docs/operations.md's rotation of one NATS
// identity's password on a running server, to the letter: `demarche admin
// credentials --dir DIR` made the credentials and the hash file the server
// includes (deploy/nats/authorization.conf, unchanged, beside it); then
// `demarche admin credentials --dir DIR --rotate eventlog` and a reload of
// the server (what `nats-server --signal reload` does: Server.Reload, the
// configuration files parsed again). The old password is refused, the new one
// accepted, the service connected as eventlog comes back by itself with the
// new password, and the other identities' connections are never dropped.
func TestNATSPasswordRotation(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	app := &App{Log: zap.NewNop()}
	var out bytes.Buffer
	app.Out = &out
	credentials := func(args ...string) {
		t.Helper()
		out.Reset()
		cmd := newAdminCredentialsCmd(app)
		cmd.SetArgs(append([]string{"--dir", secrets}, args...))
		if err := cmd.Execute(); err != nil {
			t.Fatalf("admin credentials %s: %v", strings.Join(args, " "), err)
		}
	}
	credentials()

	// The server's folder: its configuration, the generated
	// authorization.conf, and the hash file as a mounted secret.
	confDir := filepath.Join(dir, "nats")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	auth, err := os.ReadFile("../../deploy/nats/authorization.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "authorization.conf"), auth, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(natsauth.PasswordsFileName(secrets), filepath.Join(confDir, natsauth.PasswordsFile)); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(confDir, "nats-server.conf")
	if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:-1\ninclude ./authorization.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}

	// Services connected as eventlog, worker and funding, the way every
	// Démarche process connects (--nats-creds: the URL with the file's
	// credentials, natsx.Connect).
	connect := func(id natsauth.Identity) *nats.Conn {
		t.Helper()
		u, err := natsauth.WithCredentialsFile(srv.ClientURL(), natsauth.FileName(secrets, id))
		if err != nil {
			t.Fatal(err)
		}
		nc, _, err := natsx.Connect(u, "test-"+string(id), zap.NewNop())
		if err != nil {
			t.Fatalf("%s connects: %v", id, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	eventlog, worker, funding := connect(natsauth.EventLog), connect(natsauth.Worker), connect(natsauth.Funding)
	old, err := natsauth.Load(natsauth.FileName(secrets, natsauth.EventLog))
	if err != nil {
		t.Fatal(err)
	}

	// The documented procedure.
	credentials("--rotate", "eventlog")
	if !strings.Contains(out.String(), "rotated eventlog") {
		t.Fatalf("admin credentials --rotate eventlog says: %s", out.String())
	}
	rotated, err := natsauth.Load(natsauth.FileName(secrets, natsauth.EventLog))
	if err != nil || rotated.Password == old.Password {
		t.Fatalf("eventlog's credentials file after the rotation: same password or %v", err)
	}
	if err := srv.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}

	dial := func(c natsauth.Credentials) error {
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(c.Identity.User(), c.Password), natsx.InboxOption("nats://"+c.Identity.User()+":x@h:1"), nats.NoReconnect())
		if err == nil {
			nc.Close()
		}
		return err
	}
	if err := dial(old); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("the old password after the reload: %v, want an authorization violation", err)
	}
	if err := dial(rotated); err != nil {
		t.Fatalf("the new password after the reload: %v", err)
	}
	// The eventlog connection was closed by the server (its password is no
	// longer valid) and comes back with the new one, read from its file.
	deadline := time.Now().Add(time.Minute)
	for eventlog.Stats().Reconnects == 0 || !eventlog.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatalf("eventlog did not reconnect with its new password: status %v, reconnects %d, last error %v", eventlog.Status(), eventlog.Stats().Reconnects, eventlog.LastError())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := eventlog.Flush(); err != nil {
		t.Fatalf("eventlog after the rotation: %v", err)
	}
	var conns int
	cz, err := srv.Connz(&server.ConnzOptions{Username: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cz.Conns {
		if c.AuthorizedUser == natsauth.EventLog.User() {
			conns++
		}
	}
	if conns != 1 {
		t.Fatalf("%d connections as %s after the rotation, want 1", conns, natsauth.EventLog.User())
	}
	// The others: never disconnected.
	for id, nc := range map[natsauth.Identity]*nats.Conn{natsauth.Worker: worker, natsauth.Funding: funding} {
		if nc.Stats().Reconnects != 0 || !nc.IsConnected() || nc.Flush() != nil {
			t.Errorf("%s was disturbed by eventlog's rotation: status %v, reconnects %d", id, nc.Status(), nc.Stats().Reconnects)
		}
	}
	// A second run of admin credentials changes no hash: nothing to reload.
	before, err := os.ReadFile(natsauth.PasswordsFileName(secrets))
	if err != nil {
		t.Fatal(err)
	}
	credentials()
	after, err := os.ReadFile(natsauth.PasswordsFileName(secrets))
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("admin credentials rewrote the hashes of unchanged passwords (%v)", err)
	}
}
