package natsauth_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/demarche/demarche/pkg/natsauth"
)

const deployFile = "../../deploy/nats/authorization.conf"

// TestDeployConfig keeps deploy/nats/authorization.conf equal to what the
// table says, and checks that nats-server accepts it with every identity and
// its permissions.
func TestDeployConfig(t *testing.T) {
	want := natsauth.ServerConfig(natsauth.DeployIdentities()...)
	if os.Getenv("DEMARCHE_UPDATE_DEPLOY") != "" {
		if err := os.WriteFile(deployFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(deployFile)
	if err != nil || string(got) != want {
		t.Fatalf("%s is not what pkg/natsauth.Table says (%v): run DEMARCHE_UPDATE_DEPLOY=1 go test ./pkg/natsauth", deployFile, err)
	}
	dir := t.TempDir()
	creds := map[natsauth.Identity]natsauth.Credentials{}
	for _, id := range append(natsauth.Identities, natsauth.DeployIdentities()...) {
		creds[id] = natsauth.Credentials{Identity: id, Password: "pw-" + string(id)}
	}
	if err := natsauth.WritePasswords(dir, creds); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("port: -1\ninclude ./authorization.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorization.conf"), got, 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration: %v", err)
	}
	if want := len(natsauth.Identities) + len(natsauth.DeployIdentities()); len(opts.Users) != want {
		t.Fatalf("%d users, want %d", len(opts.Users), want)
	}
	for _, u := range opts.Users {
		if id, _ := natsauth.IdentityOfUser(u.Username); bcrypt.CompareHashAndPassword([]byte(u.Password), []byte("pw-"+string(id))) != nil {
			t.Fatalf("user %s: the password hash is not the one of %s", u.Username, natsauth.PasswordsFile)
		}
		if u.Permissions == nil || u.Permissions.Publish == nil || len(u.Permissions.Subscribe.Allow) == 0 {
			t.Fatalf("user %s without permissions", u.Username)
		}
	}
}

// TestOnlyOwnersWrite pins the ownership rules of the table.
func TestOnlyOwnersWrite(t *testing.T) {
	for subject, owner := range map[string]natsauth.Identity{
		"demarche.crisis.>": natsauth.Worker, "demarche.ledger.>": natsauth.Funding,
		"demarche.audit.>": natsauth.Audit, "demarche.partner.>": natsauth.Partners, "$JS.API.>": natsauth.Provisioner,
	} {
		for _, id := range natsauth.Identities {
			p := natsauth.PermissionsOf(id)
			for _, s := range p.Publish {
				if s == subject && id != owner {
					t.Errorf("%s may publish on %s, owned by %s", id, subject, owner)
				}
			}
		}
	}
}

func TestCredentialsFiles(t *testing.T) {
	dir := t.TempDir()
	a, err := natsauth.Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsauth.Ensure(dir) // kept across restarts
	if err != nil || a[natsauth.Worker] != b[natsauth.Worker] || a[natsauth.Worker] == a[natsauth.Audit] {
		t.Fatalf("credentials not kept or shared: %v", err)
	}
	fi, err := os.Stat(natsauth.FileName(dir, natsauth.Observer))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode().Perm(), err)
	}
	u, err := natsauth.WithCredentialsFile("nats://127.0.0.1:4222", natsauth.FileName(dir, natsauth.Observer))
	if err != nil || u != "nats://demarche-observer:"+a[natsauth.Observer].Password+"@127.0.0.1:4222" {
		t.Fatalf("url %s, %v", u, err)
	}
}

func TestCredentialsGoInEverySeedURL(t *testing.T) {
	c := natsauth.Credentials{Identity: natsauth.Worker, Password: "s3cret"}
	got, err := c.URL("nats://n1:4222, nats://n2:4223,nats://n3:4224")
	if err != nil {
		t.Fatal(err)
	}
	want := "nats://demarche-worker:s3cret@n1:4222,nats://demarche-worker:s3cret@n2:4223,nats://demarche-worker:s3cret@n3:4224"
	if got != want {
		t.Fatalf("seed list with credentials:\n got %s\nwant %s", got, want)
	}
	if _, err := c.URL("n1:4222"); err == nil {
		t.Fatal("a URL without scheme and host was accepted")
	}
}
