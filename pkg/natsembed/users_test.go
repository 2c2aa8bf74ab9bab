package natsembed

import (
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
