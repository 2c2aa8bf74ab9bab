package temporalembed_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/temporalembed"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/services/cli"
)

// The Temporal API key rotation of docs/operations.md, step by step, on the
// production server's shape (a key-hashes file, restarted on the same
// database): `admin credentials --rotate-temporal observer`, restart the
// server (old and new key both accepted), `--retire-temporal observer`,
// restart the server (the old key refused, the new one accepted).
func TestTemporalKeyRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server three times")
	}
	secrets := t.TempDir()
	admin := func(args ...string) string {
		t.Helper()
		root := cli.NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"admin", "credentials", "--dir", secrets}, args...))
		if err := root.Execute(); err != nil {
			t.Fatalf("admin credentials %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	admin()
	tdir := filepath.Join(secrets, temporalx.CredentialsDir)
	// The observer's key as the service holds it before the rotation.
	oldDir := t.TempDir()
	copyFile(t, temporalx.KeyFile(tdir, temporalx.IdentityObserver), temporalx.KeyFile(oldDir, temporalx.IdentityObserver))

	db := filepath.Join(t.TempDir(), "temporal.db")
	var srv *temporalembed.Server
	start := func() {
		t.Helper()
		var err error
		port := 0
		if srv != nil {
			_, p, _ := strings.Cut(srv.HostPort(), ":")
			port, _ = strconv.Atoi(p)
			if err := srv.Stop(); err != nil {
				t.Fatal(err)
			}
		}
		srv, err = temporalembed.Start(temporalembed.Options{DatabaseFile: db, Port: port, Namespace: "demarche", LogLevel: "error",
			KeyHashesFile: filepath.Join(tdir, temporalx.KeyHashesFile)}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
	}
	start()
	t.Cleanup(func() { _ = srv.Stop() })
	// works says whether the observer's key in dir is accepted.
	works := func(dir string) error {
		t.Helper()
		defer temporalx.SetCredentialsFor(srv.HostPort(), dir)()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := temporalx.Dial(ctx, srv.HostPort(), "demarche", zap.NewNop(), temporalx.As(temporalx.IdentityObserver))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "demarche"})
		return err
	}
	if err := works(oldDir); err != nil {
		t.Fatalf("the observer's key before the rotation: %v", err)
	}

	// 1. A new key; the hashes file lists both.
	out := admin("--rotate-temporal", temporalx.IdentityObserver)
	if !strings.Contains(out, "rotating observer's Temporal key") {
		t.Fatalf("--rotate-temporal said %q", out)
	}
	hashes, err := temporalx.LoadKeyHashes(filepath.Join(tdir, temporalx.KeyHashesFile))
	if err != nil || len(hashes[temporalx.IdentityObserver]) != 2 {
		t.Fatalf("key-hashes during the rotation: %d hashes for the observer (%v), want 2", len(hashes[temporalx.IdentityObserver]), err)
	}
	// A second rotation before the first is retired is refused.
	root := cli.NewRoot()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"admin", "credentials", "--dir", secrets, "--rotate-temporal", temporalx.IdentityObserver})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "not finished") {
		t.Fatalf("a second rotation before retiring: %v, want refused", err)
	}
	// 2. Restart the server: either key is accepted (the service moves over).
	start()
	if err := works(oldDir); err != nil {
		t.Fatalf("old key during the rotation: %v", err)
	}
	if err := works(tdir); err != nil {
		t.Fatalf("new key during the rotation: %v", err)
	}
	// 3. Retire the old key, restart the server: the old key is refused.
	admin("--retire-temporal", temporalx.IdentityObserver)
	start()
	if err := works(oldDir); err == nil || !strings.Contains(strings.ToLower(err.Error()), "unauthenticated") && !strings.Contains(err.Error(), "API key") {
		t.Fatalf("old key after it was retired: %v, want refused", err)
	}
	if err := works(tdir); err != nil {
		t.Fatalf("new key after the rotation: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
