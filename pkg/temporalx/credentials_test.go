package temporalx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Keys are made once per identity (0600), kept across calls, hashed into
// the file the server reads; a process finds its identity's key in a folder
// or its one key file, and a key file of another identity is refused.
func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	first, err := EnsureKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EnsureKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != len(Identities) {
		t.Fatalf("%d keys, want %d", len(first), len(Identities))
	}
	for _, id := range Identities {
		if first[id] != again[id] {
			t.Errorf("%s: key changed on the second call", id)
		}
		fi, err := os.Stat(KeyFile(dir, id))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: key file %v mode %v, want 0600", id, err, fi.Mode().Perm())
		}
	}
	hashes, err := LoadKeyHashes(filepath.Join(dir, KeyHashesFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range Identities {
		key, err := Credentials{Dir: dir}.key(id)
		if err != nil || KeyIdentity(key) != id {
			t.Fatalf("%s: key %q from the folder (%v)", id, KeyIdentity(key), err)
		}
		if len(hashes[id]) != 1 || !hashes[id][0].Matches(key) {
			t.Errorf("%s: the hashes file does not match its key", id)
		}
		if hashes[id][0].Matches(key + "x") {
			t.Errorf("%s: a longer key matched", id)
		}
	}
	if k, err := (Credentials{KeyFile: KeyFile(dir, IdentityWorker)}).key(IdentityWorker); err != nil || KeyIdentity(k) != IdentityWorker {
		t.Errorf("the worker's key file as worker: %q %v", k, err)
	}
	if _, err := (Credentials{KeyFile: KeyFile(dir, IdentityGateway)}).key(IdentityWorker); err == nil || !strings.Contains(err.Error(), `holds the key of "gateway"`) {
		t.Errorf("the gateway's key file as worker: %v, want a refusal naming both", err)
	}
	if k, err := (Credentials{Dir: t.TempDir()}).key(IdentityWorker); err != nil || k != "" {
		t.Errorf("an empty folder: %q %v, want no key", k, err)
	}
	if _, err := NewKey("mallory"); err == nil {
		t.Error("a key for an unknown identity")
	}
	bad := filepath.Join(t.TempDir(), "hashes")
	if err := os.WriteFile(bad, []byte("mallory 00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyHashes(bad); err == nil {
		t.Error("a hashes file naming an unknown identity was read")
	}
	defer SetCredentialsFor("127.0.0.1:1", dir)()
	if k, err := KeyFor("127.0.0.1:1", IdentityAuditor); err != nil || KeyIdentity(k) != IdentityAuditor {
		t.Errorf("KeyFor the registered address: %q %v", k, err)
	}
}
