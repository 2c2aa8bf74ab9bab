package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestCanonicalEncodingIsReimplementable hashes a record the way an outside
// verifier following the package documentation would: fields in number order,
// defaults left out, the hash field left out; no protobuf library beyond the
// wire primitives.
func TestCanonicalEncodingIsReimplementable(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 30, 0, 123000000, time.UTC)
	r := &demarchev1.AuditRecord{
		Chain: "crisis.GN-1", Sequence: 2, PrevHash: bytes.Repeat([]byte{7}, 32), Hash: bytes.Repeat([]byte{9}, 32),
		Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT, CrisisId: "GN-1", EventId: "GN-1-0003",
		EventType: "org.demarche.crisis.decision_recorded.v1", EventSource: "/src", EventTime: timestamppb.New(at),
		EventDigest: bytes.Repeat([]byte{1}, 32), Principal: "alice", RecordedAt: timestamppb.New(at.Add(time.Second)),
		DecisionNumber: 1, DecisionKind: "triage",
	}
	ts := func(t time.Time) []byte {
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t.Unix()))
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(t.Nanosecond()))
	}
	var b []byte
	str := func(n protowire.Number, v []byte) {
		b = protowire.AppendTag(b, n, protowire.BytesType)
		b = protowire.AppendBytes(b, v)
	}
	num := func(n protowire.Number, v uint64) {
		b = protowire.AppendTag(b, n, protowire.VarintType)
		b = protowire.AppendVarint(b, v)
	}
	str(1, []byte(r.Chain))
	num(2, r.Sequence)
	str(3, r.PrevHash)
	num(5, uint64(r.Kind))
	str(6, []byte(r.CrisisId))
	str(7, []byte(r.EventId))
	str(8, []byte(r.EventType))
	str(9, []byte(r.EventSource))
	str(10, ts(at))
	str(11, r.EventDigest)
	str(12, []byte(r.Principal))
	str(13, ts(at.Add(time.Second)))
	num(14, uint64(r.DecisionNumber))
	str(15, []byte(r.DecisionKind))
	got, err := Canonical(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Fatalf("canonical encoding differs from the documented one\n got %x\nwant %x", got, b)
	}
	sum := sha256.Sum256(b)
	if h, _ := Hash(r); !bytes.Equal(h, sum[:]) {
		t.Fatal("hash is not SHA-256 of the canonical encoding")
	}
}

func TestLoadSigningKey(t *testing.T) {
	t.Setenv(EnvSigningKey, "")
	t.Setenv(EnvSigningKeyFile, "")
	if k, err := LoadSigningKey(""); k != nil || err != nil {
		t.Fatalf("no key configured: %v %v", k, err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	seed := base64.StdEncoding.EncodeToString(key.Seed())
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(seed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() (ed25519.PrivateKey, error){
		"file": func() (ed25519.PrivateKey, error) { return LoadSigningKey(file) },
		"env":  func() (ed25519.PrivateKey, error) { t.Setenv(EnvSigningKey, seed); return LoadSigningKey("") },
		"env file": func() (ed25519.PrivateKey, error) {
			t.Setenv(EnvSigningKey, "")
			t.Setenv(EnvSigningKeyFile, file)
			return LoadSigningKey("")
		},
	} {
		k, err := load()
		if err != nil || !k.Equal(key) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := ParseSeed("x", "c2hvcnQ="); err == nil {
		t.Fatal("a short seed was accepted")
	}
}
