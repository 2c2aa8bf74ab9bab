package stack_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestCodecKeyringPlainRestart is docs/operations.md's codec key rotation in
// a dev data folder, to the letter: `demarche codec rotate` while the
// platform runs, then a PLAIN restart (the keyring `demarche dev` reads from
// its data folder, no flag). The crisis opened under the first key is still
// read (crisis show) and goes on (its history replays on the restarted
// worker), new payloads carry the new key id, and a second plain restart
// changes nothing.
func TestCodecKeyringPlainRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	dir := t.TempDir()
	ctx := context.Background()
	start := func() *stack.Stack {
		t.Helper()
		ring, err := stack.DevKeyring(dir, nil) // what a plain `demarche dev` loads
		if err != nil {
			t.Fatal(err)
		}
		s, err := stack.Start(ctx, stack.Config{DataDir: dir, TemporalLogLevel: "error", NoUI: true, Codec: ring}, fileLogger(t, t.TempDir()))
		if err != nil {
			t.Fatalf("start stack: %v", err)
		}
		return s
	}
	cli := func(s *stack.Stack, args ...string) string { // the stack restarts: s changes
		t.Helper()
		return mustCLI(t, s)(args...)
	}
	var id string
	pending := func(s *stack.Stack, kind string) {
		t.Helper()
		waitPendingKind(t, temporalClient(t, s), id, kind)
	}

	s := start()
	first, err := stack.DevKeyring(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	firstID := first.ActiveID()
	id = openedID(t, cli(s, "crisis", "open", "--title", "Keyring TITLE-K3YR", "--country", "GN", "--type", "unconstitutional-change", "--severity", "4", "--confidentiality", "confidential"))
	pending(s, "triage")
	cli(s, "crisis", "decide", "triage", id, "--as", "duty-officer", "--rationale", "before the rotation", "--assessment", "tension")
	pending(s, "good-offices")

	// The rotation, while the platform runs; then a plain restart.
	out := cli(s, "codec", "rotate", "--keyring", filepath.Join(dir, payloadcodec.DevKeyringFile), "--id", "k-rotated")
	if !strings.Contains(out, "codec key k-rotated is now active") {
		t.Fatalf("codec rotate says: %s", out)
	}
	s.Stop()
	s = start()
	if out := cli(s, "crisis", "show", id, "--as", "auditor-1"); !strings.Contains(out, "TITLE-K3YR") {
		t.Fatalf("crisis show after the rotation and a plain restart:\n%s", out)
	}
	// The update completes only once the worker has replayed the history
	// (its cache went with the restart): old payloads decrypted.
	cli(s, "crisis", "decide", "good-offices", id, "--as", "head", "--rationale", "after the rotation", "--option", "quiet-diplomacy")
	s.Stop()
	s = start() // and again: nothing forgotten
	defer s.Stop()
	if out := cli(s, "crisis", "show", id, "--as", "auditor-1"); !strings.Contains(out, "TITLE-K3YR") || !strings.Contains(out, "after the rotation") {
		t.Fatalf("crisis show after a second plain restart:\n%s", out)
	}

	raw, err := temporalx.Dial(ctx, s.TemporalAddress(), s.Namespace(), zap.NewNop(), temporalx.WithCodec(nil), temporalx.As(temporalx.IdentityAuditor))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	h := &historypb.History{}
	it := raw.GetWorkflowHistory(ctx, crisis.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	ids, err := payloadcodec.KeyIDs(ctx, h)
	if err != nil || !slices.Contains(ids, firstID) || !slices.Contains(ids, "k-rotated") {
		t.Fatalf("key ids in the history: %v (%v), want the first key %s and k-rotated", ids, err, firstID)
	}
}
