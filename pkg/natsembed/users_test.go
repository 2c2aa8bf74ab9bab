package natsembed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/demarche/demarche/pkg/natsauth"
)

// The server's users carry bcrypt hashes of the passwords, never the
// passwords: nats-server warns of plaintext passwords otherwise, and a dump
// of its options would show them.
func TestServerUsersHoldHashesNotPasswords(t *testing.T) {
	creds := map[natsauth.Identity]natsauth.Credentials{}
	for i, id := range natsauth.Identities[:3] {
		creds[id] = natsauth.Credentials{Identity: id, Password: "secret-" + strings.Repeat("x", i+8)}
	}
	users, err := serverUsers(creds)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != len(creds) {
		t.Fatalf("%d users for %d credentials", len(users), len(creds))
	}
	for _, u := range users {
		c := creds[natsauth.Identity(strings.TrimPrefix(u.Username, "demarche-"))]
		if c.Password == "" {
			t.Fatalf("user %s matches no credential", u.Username)
		}
		if u.Password == c.Password || !strings.HasPrefix(u.Password, "$2") {
			t.Errorf("user %s: server holds %q, want a bcrypt hash", u.Username, u.Password)
		}
		if err := bcrypt.CompareHashAndPassword([]byte(u.Password), []byte(c.Password)); err != nil {
			t.Errorf("user %s: hash does not match the password: %v", u.Username, err)
		}
	}
}

// The store key is made once and then read back: a key that changed between
// starts would make the store unreadable.
func TestEnsureStoreKeyKeepsItsKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), StoreKeyFile)
	first, err := EnsureStoreKey(file)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EnsureStoreKey(file)
	if err != nil || again != first || len(first) != 64 {
		t.Fatalf("second read %q (%v), first %q: want the same 64 hex characters", again, err, first)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if err := os.WriteFile(file, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureStoreKey(file); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("a 5-character key: %v, want refused", err)
	}
}
