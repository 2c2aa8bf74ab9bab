package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/services/cli"
)

// TestBenchAgainstADeploymentNeedsItsFlags: --nats-url or --temporal-address
// on the command line names a deployment; without both, or without the
// folders of the credentials the bench acts with, it says which flag is
// missing before it writes anything; one identity's credential is refused
// (the bench acts as several). The URL it records carries no password.
func TestBenchAgainstADeploymentNeedsItsFlags(t *testing.T) {
	dir := t.TempDir()
	natsDir, temporalDir := filepath.Join(dir, "secrets"), filepath.Join(dir, "secrets", temporalx.CredentialsDir)
	if _, err := natsauth.Ensure(natsDir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	run := func(args ...string) error {
		root := cli.NewRoot(NewCmd)
		root.SetArgs(append([]string{"bench", "--out", out, "--log-level", "error"}, args...))
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		return root.Execute()
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-url", "nats://n1:4222"}, "both --nats-url and --temporal-address"},
		{[]string{"--temporal-address", "t:7233"}, "both --nats-url and --temporal-address"},
		{[]string{"--nats-url", "nats://n1:4222", "--temporal-address", "t:7233"}, "--nats-credentials"},
		{[]string{"--nats-credentials", natsDir}, "give its --nats-url and --temporal-address too"},
		{[]string{"--nats-url", "nats://n1:4222", "--temporal-address", "t:7233", "--nats-credentials", natsDir, "--temporal-credentials", temporalDir}, "gateway's API key"},
		{[]string{"--nats-url", "nats://n1:4222", "--temporal-address", "t:7233", "--nats-creds", natsauth.FileName(natsDir, natsauth.Bench)}, "acts as several"},
		{[]string{"--nats-url", "nats://n1:4222", "--temporal-address", "t:7233", "--data-dir", dir}, "--data-dir"},
	} {
		err := run(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench %s: %v, want an error saying %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused command wrote its output folder")
	}
	if got := withoutCredentials("nats://demarche-bench:s3cret@n1:4222, nats://n2:4222"); got != "nats://n1:4222,nats://n2:4222" {
		t.Errorf("withoutCredentials: %s", got)
	}
}
