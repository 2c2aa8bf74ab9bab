package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/proxy"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/workflows/trail"
)

// TestReplayEncryptedHistory: a committed history, encrypted as a cluster
// with the codec stores it, replays with its key (kept as an older key after
// a rotation) and is refused without it, naming the key id and the flags;
// committed plain histories replay with a codec configured too.
func TestReplayEncryptedHistory(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "k.json")
	app := &App{Log: zap.NewNop()}
	var out bytes.Buffer
	app.Out = &out
	run := func(cmd interface {
		SetArgs([]string)
		Execute() error
	}, args ...string) error {
		cmd.SetArgs(args)
		return cmd.Execute()
	}
	if err := run(newCodecCmd(app), "new-key", "--out", keyFile, "--id", "k-2025"); err != nil || !strings.Contains(out.String(), "wrote codec key k-2025") {
		t.Fatalf("codec new-key: %v %s", err, out.String())
	}
	if err := run(newCodecCmd(app), "new-key", "--out", keyFile); err == nil {
		t.Fatal("codec new-key overwrote a key file")
	}
	old, err := payloadcodec.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	oldRing, _ := payloadcodec.NewKeyring(&old)

	h, err := trail.LoadFile("../../workflows/crisis/testdata/EnvoyDeployment.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := proxy.VisitPayloads(context.Background(), h, proxy.VisitPayloadsOptions{
		Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			return oldRing.Encode(ps)
		},
		SkipSearchAttributes: true,
	}); err != nil {
		t.Fatal(err)
	}
	b, _ := protojson.Marshal(h)
	encrypted := filepath.Join(dir, "encrypted.json")
	if err := os.WriteFile(encrypted, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// No key: refused, saying which key and how to pass it.
	err = run(newAuditReplayCmd(app), "--file", encrypted)
	if err == nil || !strings.Contains(err.Error(), `key id "k-2025"`) || !strings.Contains(err.Error(), "--codec-old-key") || !strings.Contains(err.Error(), "encrypted.json") {
		t.Fatalf("replay without the key: %v", err)
	}
	// After a rotation, with k-2025 kept as an older key: replays.
	next, _ := payloadcodec.GenerateKey("k-2026")
	if app.Codec, err = payloadcodec.NewKeyring(&next, old); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(newAuditReplayCmd(app), "--file", encrypted); err != nil || !strings.Contains(out.String(), "1 of 1 histories replay deterministically") {
		t.Fatalf("replay with the old key: %v\n%s", err, out.String())
	}
	// Committed (plain) histories replay with a codec configured.
	out.Reset()
	if err := run(newAuditReplayCmd(app), "--dir", "../../workflows/crisis/testdata", "--output", "json"); err != nil || strings.Contains(out.String(), `"deterministic": false`) {
		t.Fatalf("committed histories with a codec: %v\n%s", err, out.String())
	}
}
