package payloadcodec_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	commonpb "go.temporal.io/api/common/v1"

	"github.com/demarche/demarche/pkg/payloadcodec"
)

// TestKeyringFileRotation: a dev data folder's keyring starts around its
// existing key; each rotation makes a new active key (its file 0600) and
// keeps the previous ones, so what any earlier key encrypted still decrypts
// with the keyring read afresh (a plain restart).
func TestKeyringFileRotation(t *testing.T) {
	dir := t.TempDir()
	first, err := payloadcodec.EnsureDevKey(dir) // a folder from before keyrings
	if err != nil {
		t.Fatal(err)
	}
	path, err := payloadcodec.EnsureDevKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	k0, err := payloadcodec.LoadKeyFile(first)
	if err != nil {
		t.Fatal(err)
	}
	r0, err := payloadcodec.LoadKeyringFile(path, nil)
	if err != nil || r0.ActiveID() != k0.ID {
		t.Fatalf("first keyring: active %q, want the folder's key %q (%v)", r0.ActiveID(), k0.ID, err)
	}
	old, err := r0.Encode([]*commonpb.Payload{payload(t, "under the first key")})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"k-2", "k-3"} {
		k, err := payloadcodec.RotateKeyringFile(path, id)
		if err != nil || k.ID != id {
			t.Fatalf("rotate: %v", err)
		}
		fi, err := os.Stat(filepath.Join(dir, payloadcodec.KeysDir, id+".json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("the new key file: %v, mode %v", err, fi.Mode().Perm())
		}
	}
	r, err := payloadcodec.LoadKeyringFile(path, nil) // the restart
	if err != nil {
		t.Fatal(err)
	}
	if r.ActiveID() != "k-3" || !r.Has("k-2") || !r.Has(k0.ID) {
		t.Fatalf("after two rotations: active %s, keys %v", r.ActiveID(), r.IDs())
	}
	dec, err := r.Decode(old)
	if err != nil || len(dec) != 1 || slices.Equal(dec[0].GetData(), old[0].GetData()) {
		t.Fatalf("a payload of the first key after two rotations: %v", err)
	}
	if _, err := payloadcodec.RotateKeyringFile(filepath.Join(t.TempDir(), payloadcodec.DevKeyringFile), ""); err == nil {
		t.Fatal("rotated a keyring that does not exist, with no key beside it")
	}
}
