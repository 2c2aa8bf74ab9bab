package cluster_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/conf"
	"golang.org/x/crypto/bcrypt"

	"github.com/demarche/demarche/devstack/cluster"
	"github.com/demarche/demarche/pkg/natsauth"
	democli "github.com/demarche/demarche/services/cli"
)

// runDemarche runs a demarche command as an operator types it.
func runDemarche(t *testing.T, args ...string) {
	t.Helper()
	app := democli.NewRoot()
	app.SetArgs(args)
	app.SetOut(io.Discard)
	app.SetErr(io.Discard)
	if err := app.Execute(); err != nil {
		t.Fatalf("demarche %v: %v", args, err)
	}
}

// copyTree copies the files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == "secrets" && p != src {
				return filepath.SkipDir // an operator's own, git-ignored
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// composeSecretsDir prepares deploy/compose's secrets as its header says an
// operator does (demarche admin credentials, demarche admin certificates,
// the PostgreSQL password, the audit signing key) in a copy of deploy/ under a temporary
// folder, and returns the copy's compose folder.
func composeSecretsDir(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	copyTree(t, "../../deploy", filepath.Join(root, "deploy"))
	dir := filepath.Join(root, "deploy", "compose")
	secrets := filepath.Join(dir, "secrets")
	runDemarche(t, "admin", "credentials", "--dir", secrets)
	runDemarche(t, "admin", "certificates", "--dir", secrets)
	// A password with every character an env or YAML parser likes to eat.
	if err := os.WriteFile(filepath.Join(secrets, "temporal-postgres-password"), []byte(`p$ss "w0rd' #$2a$11$x ${HOME}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "audit-signing.key"), []byte(base64.StdEncoding.EncodeToString(seed)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The project's .env: what docker compose reads beside compose.yaml.
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("DEMARCHE_OIDC_ISSUER=https://id.example.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// compose's own loader (compose-go, what docker compose runs) reads
// compose.yaml, its .env and every env_file: every secret reaches its
// container byte for byte, and every NATS user's bcrypt hash reaches
// nats-server whole. Compose's env-file parser expands "$" in a
// double-quoted value, which cut 22 of 29 hashes to "$2a$11" before the
// servers were given a file of their own; the check runs the chain a
// container runs: generator, compose's loader, the files and environment of
// the container, nats-server's configuration parser, bcrypt. It also
// checks, on the project as compose sees it, that every container of the
// demarche image is locked down.
func TestComposeSecretsRoundTrip(t *testing.T) {
	dir := composeSecretsDir(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir), cli.WithEnvFiles(), cli.WithDotEnv, cli.WithName("demarche"))
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose's loader refuses compose.yaml: %v", err)
	}
	// Every container of the demarche image runs as in k8s/: no capability,
	// no privilege escalation, a read-only root with a scratch /tmp.
	for _, svc := range project.Services {
		if svc.Image != "demarche:local" {
			continue
		}
		if !svc.ReadOnly || !slices.Equal(svc.CapDrop, []string{"ALL"}) || !slices.Contains(svc.SecurityOpt, "no-new-privileges:true") || !slices.Contains(svc.Tmpfs, "/tmp") {
			t.Errorf("service %s: read_only %v, cap_drop %v, security_opt %v, tmpfs %v: want true, [ALL], no-new-privileges:true, /tmp", svc.Name, svc.ReadOnly, svc.CapDrop, svc.SecurityOpt, svc.Tmpfs)
		}
	}
	creds, err := natsauth.Ensure(filepath.Join(dir, "secrets"), natsauth.DeployIdentities()...)
	if err != nil {
		t.Fatal(err)
	}
	// The hashes as written (the same file k8s projects): what every node
	// must read, byte for byte.
	written, err := natsauth.ReadPasswords(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}

	// Every secret a service mounts is a file of secrets/ (compose passes a
	// file secret through untouched), and no secret travels in the environment.
	secretValues := map[string]string{}
	for name, sec := range project.Secrets {
		if sec.File == "" || sec.Environment != "" || sec.Content != "" {
			t.Errorf("compose secret %s: not a file (file %q, environment %q): a secret in a variable goes through compose's interpolation", name, sec.File, sec.Environment)
			continue
		}
		rel, err := filepath.Rel(filepath.Join(dir, "secrets"), sec.File)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("compose secret %s comes from %s, outside secrets/", name, sec.File)
			continue
		}
		b, err := os.ReadFile(sec.File)
		if err != nil {
			t.Errorf("compose secret %s: %s is not written by the steps of compose.yaml's header: %v", name, rel, err)
			continue
		}
		secretValues[name] = strings.TrimSpace(string(b))
	}
	for _, svc := range project.Services {
		for _, ref := range svc.Secrets {
			if _, ok := project.Secrets[ref.Source]; !ok {
				t.Errorf("service %s mounts the undeclared secret %s", svc.Name, ref.Source)
			}
		}
		for k, v := range svc.Environment {
			if v == nil {
				continue
			}
			for name, sv := range secretValues {
				if len(sv) >= 16 && strings.Contains(*v, sv) {
					t.Errorf("service %s: the secret %s is in its environment (%s): pass it as a file", svc.Name, name, k)
				}
			}
		}
	}

	// NATS: each node's container, as compose builds it (bind mounts and
	// secrets at their targets, the environment compose resolved), parsed by
	// nats-server's parser: every user of authorization.conf with a hash of
	// its own password.
	verified := map[string]bool{}
	for _, node := range cluster.NATSNodes {
		svc, ok := project.Services[node]
		if !ok {
			t.Errorf("compose.yaml has no service %s", node)
			continue
		}
		root := t.TempDir()
		place := func(src, target string) {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatalf("%s: %s: %v", node, target, err)
			}
			dst := filepath.Join(root, filepath.FromSlash(target))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeBind {
				place(v.Source, v.Target)
			}
		}
		for _, ref := range svc.Secrets {
			target := ref.Target
			if !strings.HasPrefix(target, "/") {
				target = "/run/secrets/" + cmp.Or(target, ref.Source)
			}
			place(project.Secrets[ref.Source].File, target)
		}
		var confFile string
		for i, a := range svc.Command {
			if a == "-c" && i+1 < len(svc.Command) {
				confFile = svc.Command[i+1]
			}
		}
		if confFile == "" {
			t.Fatalf("%s: command %q names no configuration file", node, svc.Command)
		}
		// The container's environment is what compose resolved, nothing else.
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "DEMARCHE_NATS_") {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
		}
		for k, v := range svc.Environment {
			if v != nil {
				t.Setenv(k, *v)
			}
		}
		parsed, err := conf.ParseFile(filepath.Join(root, filepath.FromSlash(confFile)))
		if err != nil {
			t.Errorf("%s: nats-server's parser refuses its configuration in the container compose builds: %v", node, err)
			continue
		}
		users := map[string]string{}
		if auth, ok := parsed["authorization"].(map[string]any); ok {
			list, _ := auth["users"].([]any)
			for _, u := range list {
				if m, ok := u.(map[string]any); ok {
					user, _ := m["user"].(string)
					pw, _ := m["password"].(string)
					users[user] = pw
				}
			}
		}
		for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
			hash, ok := users[id.User()]
			if !ok {
				t.Errorf("%s: no user %s", node, id.User())
				continue
			}
			if verified[hash] {
				continue // the same hash on another node: bcrypt is slow on purpose
			}
			verified[hash] = true
			if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(creds[id].Password)); err != nil {
				t.Errorf("%s: %s's password hash %q does not match its password (%v): compose did not pass it whole", node, id.User(), hash, err)
			}
			if want := written[id]; want != hash {
				t.Errorf("%s: %s's hash %q, %s says %q", node, id.User(), hash, natsauth.PasswordsFile, want)
			}
		}
	}
}
