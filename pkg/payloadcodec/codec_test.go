package payloadcodec_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"github.com/demarche/demarche/pkg/payloadcodec"
)

const secret = "Quiet talks with the junta in Conakry"

func key(t *testing.T, id string) payloadcodec.Key {
	t.Helper()
	k, err := payloadcodec.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ring(t *testing.T, active *payloadcodec.Key, older ...payloadcodec.Key) *payloadcodec.Keyring {
	t.Helper()
	r, err := payloadcodec.NewKeyring(active, older...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func payload(t *testing.T, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	k := key(t, "k1")
	r := ring(t, &k)
	in := []*commonpb.Payload{payload(t, secret), payload(t, map[string]int{"severity": 4}), payload(t, nil)}
	enc, err := r.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range enc {
		if id, ok := payloadcodec.Encrypted(p); !ok || id != "k1" {
			t.Fatalf("payload %d: not encrypted under k1: %v", i, p.GetMetadata())
		}
		if bytes.Contains(p.GetData(), []byte("Conakry")) || bytes.Contains(p.GetData(), []byte("json/plain")) {
			t.Fatalf("payload %d: plaintext visible in ciphertext", i)
		}
	}
	// twice is once: retries pass a request again
	again, err := r.Encode(enc)
	if err != nil || !bytes.Equal(again[0].GetData(), enc[0].GetData()) {
		t.Fatalf("encoding an encrypted payload again changed it (err %v)", err)
	}
	dec, err := r.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := converter.GetDefaultDataConverter().FromPayload(dec[0], &got); err != nil || got != secret {
		t.Fatalf("decoded %q, %v; want %q", got, err, secret)
	}
	// a payload written before the key existed reads as it is
	plain := payload(t, "before the key")
	out, err := r.Decode([]*commonpb.Payload{plain})
	if err != nil || out[0] != plain {
		t.Fatalf("plain payload: %v %v", out, err)
	}
}

func TestWrongKey(t *testing.T) {
	k1, other := key(t, "k1"), key(t, "k2")
	enc, err := ring(t, &k1).Encode([]*commonpb.Payload{payload(t, secret)})
	if err != nil {
		t.Fatal(err)
	}
	// a ring without k1 says which key is missing and how to give it
	_, err = ring(t, &other).Decode(enc)
	if !errors.Is(err, payloadcodec.ErrMissingKey) || !strings.Contains(err.Error(), `"k1"`) || !strings.Contains(err.Error(), payloadcodec.FlagOldKey) {
		t.Fatalf("decode with another ring: %v", err)
	}
	// another secret under the same id does not authenticate
	impostor := key(t, "k1")
	if _, err := ring(t, &impostor).Decode(enc); !errors.Is(err, payloadcodec.ErrCorrupt) {
		t.Fatalf("decode with an impostor key: %v", err)
	}
	// a payload relabelled with another key id does not decrypt either
	both := ring(t, &k1, other)
	relabelled := &commonpb.Payload{Metadata: map[string][]byte{}, Data: enc[0].GetData()}
	for k, v := range enc[0].GetMetadata() {
		relabelled.Metadata[k] = v
	}
	relabelled.Metadata[payloadcodec.MetadataKeyID] = []byte("k2")
	if _, err := both.Decode([]*commonpb.Payload{relabelled}); !errors.Is(err, payloadcodec.ErrCorrupt) {
		t.Fatalf("decode of a relabelled payload: %v", err)
	}
	// a flipped bit is refused
	tampered := &commonpb.Payload{Metadata: enc[0].GetMetadata(), Data: append([]byte(nil), enc[0].GetData()...)}
	tampered.Data[len(tampered.Data)-1] ^= 1
	if _, err := ring(t, &k1).Decode([]*commonpb.Payload{tampered}); !errors.Is(err, payloadcodec.ErrCorrupt) {
		t.Fatalf("decode of a tampered payload: %v", err)
	}
	// a ring that only decrypts refuses to encrypt
	if _, err := ring(t, nil, k1).Encode([]*commonpb.Payload{payload(t, "x")}); !errors.Is(err, payloadcodec.ErrNoActiveKey) {
		t.Fatalf("encode without an active key: %v", err)
	}
	if _, err := payloadcodec.NewKeyring(&k1, k1); err == nil {
		t.Fatal("a ring with one id twice was accepted")
	}
}

// An old history (written under k-2025) still decodes after the rotation to
// k-2026, with k-2025 kept as an older key; new payloads go under k-2026.
func TestRotation(t *testing.T) {
	old, next := key(t, "k-2025"), key(t, "k-2026")
	ctx := context.Background()
	history := &historypb.History{Events: []*historypb.HistoryEvent{{
		EventId: 1,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
			Input: &commonpb.Payloads{Payloads: []*commonpb.Payload{payload(t, secret)}},
		}},
	}, {
		EventId: 2,
		Attributes: &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{
			Failure: &failurepb.Failure{Message: "roster: no envoy for " + secret},
		}},
	}}}
	// what the gRPC interceptors write: failure message moved into a payload, payloads encrypted
	f := history.Events[1].GetActivityTaskFailedEventAttributes().Failure
	if err := converter.EncodeCommonFailureAttributes(converter.GetDefaultDataConverter(), f); err != nil {
		t.Fatal(err)
	}
	oldRing := ring(t, &old)
	start := history.Events[0].GetWorkflowExecutionStartedEventAttributes()
	var err error
	if start.Input.Payloads, err = oldRing.Encode(start.Input.Payloads); err != nil {
		t.Fatal(err)
	}
	enc, err := oldRing.Encode([]*commonpb.Payload{f.EncodedAttributes})
	if err != nil {
		t.Fatal(err)
	}
	f.EncodedAttributes = enc[0]

	// after the rotation, without the old key: refused, naming it; nothing changed
	rotatedWithout := ring(t, &next)
	if err := payloadcodec.DecodeMessage(ctx, history, rotatedWithout); !errors.Is(err, payloadcodec.ErrMissingKey) || !strings.Contains(err.Error(), "k-2025") {
		t.Fatalf("decode without the old key: %v", err)
	}
	if err := payloadcodec.DecodeMessage(ctx, history, nil); !errors.Is(err, payloadcodec.ErrMissingKey) || !strings.Contains(err.Error(), "no codec key is configured") {
		t.Fatalf("decode without any key: %v", err)
	}
	if ids, _ := payloadcodec.KeyIDs(ctx, history); len(ids) != 1 || ids[0] != "k-2025" {
		t.Fatalf("key ids after a refused decode: %v", ids)
	}
	// with the old key kept: decodes, failure message too
	rotated := ring(t, &next, old)
	if err := payloadcodec.DecodeMessage(ctx, history, rotated); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := converter.GetDefaultDataConverter().FromPayloads(start.Input, &got); err != nil || got != secret {
		t.Fatalf("old input after rotation: %q %v", got, err)
	}
	if !strings.Contains(f.GetMessage(), secret) {
		t.Fatalf("old failure message after rotation: %q", f.GetMessage())
	}
	// new payloads go under the new key
	fresh, err := rotated.Encode([]*commonpb.Payload{payload(t, "new")})
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := payloadcodec.Encrypted(fresh[0]); id != "k-2026" || rotated.ActiveID() != "k-2026" {
		t.Fatalf("new payload under %q, active %q", id, rotated.ActiveID())
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path, err := payloadcodec.EnsureDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v %v", path, st.Mode(), err)
	}
	again, err := payloadcodec.EnsureDevKey(dir)
	if err != nil || again != path {
		t.Fatalf("second EnsureDevKey: %s %v", again, err)
	}
	k1, err := payloadcodec.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := payloadcodec.WriteKeyFile(path, key(t, "other")); err == nil {
		t.Fatal("a key file was overwritten")
	}
	oldPath := filepath.Join(dir, "old.json")
	if err := payloadcodec.WriteKeyFile(oldPath, key(t, "old")); err != nil {
		t.Fatal(err)
	}
	r, err := payloadcodec.LoadKeyring(path, []string{oldPath})
	if err != nil || r.ActiveID() != k1.ID || !r.Has("old") {
		t.Fatalf("keyring %v: %v", r.IDs(), err)
	}
	if r, err := payloadcodec.LoadKeyring("", nil); r != nil || err != nil {
		t.Fatalf("no files: %v %v", r, err)
	}
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"id": "x", "aes256": "c2hvcnQ="}`), 0o600)
	if _, err := payloadcodec.LoadKeyring(bad, nil); err == nil || !strings.Contains(err.Error(), payloadcodec.FlagKey) || !strings.Contains(err.Error(), "32") {
		t.Fatalf("short key: %v", err)
	}
	if _, err := payloadcodec.NewKey("a b", make([]byte, 32)); err == nil {
		t.Fatal("a key id with a space was accepted")
	}
}

// BenchmarkEncodeDecode: one 2 KB payload (a crisis state's size) encrypted
// and decrypted, what the codec adds to each payload a client sends and reads.
func BenchmarkEncodeDecode(b *testing.B) {
	k, _ := payloadcodec.GenerateKey("bench")
	r, _ := payloadcodec.NewKeyring(&k)
	p, _ := converter.GetDefaultDataConverter().ToPayload(strings.Repeat("x", 2048))
	in := []*commonpb.Payload{p}
	b.SetBytes(int64(len(p.GetData())))
	for b.Loop() {
		enc, err := r.Encode(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
