package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestConfidentialPayloadsEncryptedAtRest runs a confidential crisis on the
// real embedded stack with the payload codec on, then reads the Temporal
// server's SQLite files byte by byte: its title, triage assessment and
// decision rationales are nowhere in clear. The same crisis with the codec
// off is the control: there the test finds them, so the check can fail.
// With the codec on, the platform still reads its crises (the gateway
// decrypts), and `audit replay` replays the raw encrypted history with the
// key and refuses without it, naming the key id and the flag.
func TestConfidentialPayloadsEncryptedAtRest(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	secrets := []string{"Quiet talks with the junta TITLE-7F3A", "ASSESSMENT-41D8 guards at the palace", "RATIONALE-9C2E shuttle via Dakar", "RATIONALE-B6E1 back channel"}
	markers := []string{"TITLE-7F3A", "ASSESSMENT-41D8", "RATIONALE-9C2E", "RATIONALE-B6E1"}
	for _, encrypted := range []bool{true, false} {
		name := "codec off (control)"
		if encrypted {
			name = "codec on"
		}
		t.Run(name, func(t *testing.T) { // one after the other: one stack at a time
			dir := t.TempDir()
			keyFile, err := payloadcodec.EnsureDevKey(t.TempDir()) // outside the data folder the test reads
			if err != nil {
				t.Fatal(err)
			}
			var ring *payloadcodec.Keyring
			if encrypted {
				if ring, err = payloadcodec.LoadKeyring(keyFile, nil); err != nil {
					t.Fatal(err)
				}
			}
			s, err := stack.Start(context.Background(), stack.Config{DataDir: dir, TemporalLogLevel: "error", NoUI: !encrypted, Codec: ring, NATSPlaintextStore: !encrypted}, fileLogger(t, t.TempDir()))
			if err != nil {
				t.Fatalf("start stack: %v", err)
			}
			defer s.Stop()
			tc := temporalClient(t, s)
			ctx := context.Background()
			var id string // minted by the platform
			cli := mustCLI(t, s)
			waitPending := func(kind string) {
				t.Helper()
				waitPendingKind(t, tc, id, kind)
			}
			id = openedID(t, cli("crisis", "open", "--title", secrets[0], "--country", "GN", "--type", "unconstitutional-change", "--severity", "4", "--confidentiality", "confidential"))
			waitPending("triage")
			cli("crisis", "decide", "triage", id, "--as", "duty-officer", "--rationale", secrets[2], "--assessment", secrets[1])
			waitPending("good-offices")
			cli("crisis", "decide", "good-offices", id, "--as", "head", "--rationale", secrets[3], "--option", "quiet-diplomacy")
			// The platform itself reads the crisis in clear (through the codec).
			if out := cli("crisis", "show", id, "--as", "auditor-1"); !strings.Contains(out, secrets[0]) {
				t.Fatalf("crisis show does not show the title:\n%s", out)
			}
			// (the crisis workflow's own history: a stage workflow started a
			// moment ago may not have its first workflow task yet)
			if out, _ := runCLI(t, s, "audit", "replay", "--crisis", id, "--as", "auditor-1"); !regexp.MustCompile(`(?m)^`+crisis.WorkflowID(id)+` \(\d+ events\): replays deterministically$`).MatchString(out) ||
				!strings.Contains(out, secrets[2]) {
				t.Fatalf("audit replay --crisis:\n%s", out)
			}

			if encrypted {
				// What the cluster holds, read without the codec: ciphertext under the active key.
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
				in := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0]
				if kid, ok := payloadcodec.Encrypted(in); !ok || kid != ring.ActiveID() {
					t.Fatalf("the start input as stored: key id %q encrypted %v, want %q", kid, ok, ring.ActiveID())
				}
				b, err := protojson.Marshal(h)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(b, []byte("TITLE-7F3A")) {
					t.Fatal("the raw history holds the title in clear")
				}
				// The Temporal UI is configured with the gateway's codec
				// endpoint, which decrypts, as the UI's page asks it, for an
				// auditor signed in to the console, and for nobody else.
				var settings struct {
					Codec struct {
						Endpoint           string
						IncludeCredentials bool
					}
				}
				if err := getJSON(s.UIURL()+"/api/v1/settings", &settings); err != nil || settings.Codec.Endpoint != s.CodecEndpoint() || !settings.Codec.IncludeCredentials || s.CodecEndpoint() == "" {
					t.Fatalf("UI settings: %+v (%v), want the codec endpoint %q with credentials", settings, err, s.CodecEndpoint())
				}
				startInput, err := protojson.Marshal(h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetInput())
				if err != nil {
					t.Fatal(err)
				}
				asUIPage := func(session string) (int, []byte) {
					t.Helper()
					req, _ := http.NewRequest("POST", settings.Codec.Endpoint+"/decode", bytes.NewReader(startInput))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-Namespace", s.Namespace())
					req.Header.Set("Origin", s.UIURL())
					req.AddCookie(&http.Cookie{Name: "demarche_session", Value: session})
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					if resp.StatusCode == http.StatusOK && resp.Header.Get("Access-Control-Allow-Origin") != s.UIURL() {
						t.Errorf("codec answer without CORS for the UI: %v", resp.Header)
					}
					b, _ := io.ReadAll(resp.Body)
					return resp.StatusCode, b
				}
				var decoded commonpb.Payloads
				if code, b := asUIPage(readToken(t, s.TokenFile("auditor"))); code != http.StatusOK || protojson.Unmarshal(b, &decoded) != nil ||
					len(decoded.GetPayloads()) != 1 || !bytes.Contains(decoded.GetPayloads()[0].GetData(), []byte("TITLE-7F3A")) {
					t.Fatalf("the UI's decode as the auditor: %d %s", code, b)
				}
				if code, b := asUIPage(readToken(t, s.TokenFile("duty"))); code != http.StatusForbidden || bytes.Contains(b, []byte("TITLE-7F3A")) {
					t.Fatalf("the UI's decode as the duty officer: %d %s", code, b)
				}

				exported := filepath.Join(t.TempDir(), "exported.json")
				if err := os.WriteFile(exported, b, 0o600); err != nil {
					t.Fatal(err)
				}
				// Without the key: refused, naming the key id and the flags.
				out, err := runCLI(t, s, "audit", "replay", "--file", exported)
				if err == nil || !strings.Contains(err.Error(), ring.ActiveID()) || !strings.Contains(err.Error(), payloadcodec.FlagKey) || !strings.Contains(err.Error(), payloadcodec.FlagOldKey) {
					t.Fatalf("audit replay of an encrypted history without the key: %v\n%s", err, out)
				}
				// With the key (as an older key, after a rotation): replays, trail in clear.
				out = cli("audit", "replay", "--file", exported, "--codec-old-key", keyFile)
				if !strings.Contains(out, "replays deterministically") || strings.Contains(out, "DOES NOT REPLAY") || !strings.Contains(out, secrets[2]) {
					t.Fatalf("audit replay with the key:\n%s", out)
				}
			}

			// The Temporal server's own files, once it has stopped.
			s.Stop()
			files, err := filepath.Glob(filepath.Join(dir, "temporal.db*"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no Temporal database in %s: %v", dir, err)
			}
			var db []byte
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				db = append(db, b...)
			}
			for _, marker := range markers {
				found := bytes.Contains(db, []byte(marker))
				switch {
				case encrypted && found:
					t.Errorf("the Temporal database (%d bytes) holds %q in clear", len(db), marker)
				case !encrypted && !found:
					t.Errorf("control: the unencrypted Temporal database (%d bytes) does not hold %q: the check could not fail", len(db), marker)
				}
			}
			t.Logf("%s: %d bytes of Temporal database read, %d secrets checked", name, len(db), len(markers))

			// JetStream's files: the crisis events carry the title in their
			// data, so only the store's own encryption keeps it off the disk.
			var store []byte
			if err := filepath.WalkDir(filepath.Join(dir, "nats"), func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				store = append(store, b...)
				return err
			}); err != nil || len(store) == 0 {
				t.Fatalf("read the JetStream store (%d bytes): %v", len(store), err)
			}
			switch found := bytes.Contains(store, []byte("TITLE-7F3A")); {
			case encrypted && found:
				t.Errorf("the JetStream store (%d bytes) holds the title in clear", len(store))
			case !encrypted && !found:
				t.Errorf("control: the plaintext JetStream store (%d bytes) does not hold the title: the check could not fail", len(store))
			}
			t.Logf("%s: %d bytes of JetStream store read", name, len(store))
		})
	}
}

func getJSON(url string, into any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return json.Unmarshal(b, into)
}

// TestCodecKeyRotation rotates the payload codec key of a running platform:
// a crisis opened and triaged under the old key goes on after a restart
// with a new active key and the old one kept (the worker replays the old
// payloads; new ones go under the new key), its history holds both key ids
// and replays; an exported history is refused by a reader holding only the
// new key, naming the old one.
func TestCodecKeyRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	dir, keys := t.TempDir(), t.TempDir()
	write := func(id string) (string, payloadcodec.Key) {
		t.Helper()
		k, err := payloadcodec.GenerateKey(id)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(keys, id+".json")
		if err := payloadcodec.WriteKeyFile(path, k); err != nil {
			t.Fatal(err)
		}
		return path, k
	}
	_, oldKey := write("k-2025")
	newFile, newKey := write("k-2026")
	before, _ := payloadcodec.NewKeyring(&oldKey)
	after, _ := payloadcodec.NewKeyring(&newKey, oldKey)
	start := func(ring *payloadcodec.Keyring) *stack.Stack {
		t.Helper()
		s, err := stack.Start(context.Background(), stack.Config{DataDir: dir, TemporalLogLevel: "error", NoUI: true, Codec: ring}, fileLogger(t, t.TempDir()))
		if err != nil {
			t.Fatalf("start stack: %v", err)
		}
		return s
	}
	var id string // minted by the platform
	ctx := context.Background()
	pending := func(s *stack.Stack, kind string) {
		t.Helper()
		waitPendingKind(t, temporalClient(t, s), id, kind)
	}
	cli := func(s *stack.Stack, args ...string) string { // the stack restarts: s changes
		t.Helper()
		return mustCLI(t, s)(args...)
	}

	s := start(before)
	id = openedID(t, cli(s, "crisis", "open", "--title", "Rotation TITLE-R0T8", "--country", "GN", "--type", "unconstitutional-change", "--severity", "4", "--confidentiality", "confidential"))
	pending(s, "triage")
	cli(s, "crisis", "decide", "triage", id, "--as", "duty-officer", "--rationale", "before the rotation", "--assessment", "tension")
	pending(s, "good-offices")
	s.Stop()

	s = start(after) // the rotation: a new active key, the old one kept
	defer s.Stop()
	// The update completes only once a worker has replayed the crisis's
	// history (its cache went with the restart), old payloads included.
	cli(s, "crisis", "decide", "good-offices", id, "--as", "head", "--rationale", "after the rotation", "--option", "quiet-diplomacy")
	if out := cli(s, "crisis", "show", id, "--as", "auditor-1"); !strings.Contains(out, "TITLE-R0T8") {
		t.Fatalf("crisis show after the rotation:\n%s", out)
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
	if err != nil || !slices.Contains(ids, "k-2025") || !slices.Contains(ids, "k-2026") {
		t.Fatalf("key ids in the history: %v (%v), want both k-2025 and k-2026", ids, err)
	}
	b, _ := protojson.Marshal(h)
	exported := filepath.Join(t.TempDir(), "rotated.json")
	if err := os.WriteFile(exported, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, s, "audit", "replay", "--file", exported, "--codec-key", newFile); err == nil || !strings.Contains(err.Error(), `"k-2025"`) {
		t.Fatalf("replay with the new key only: %v\n%s", err, out)
	}
	out := cli(s, "audit", "replay", "--file", exported, "--codec-key", newFile, "--codec-old-key", filepath.Join(keys, "k-2025.json"))
	if !strings.Contains(out, "1 of 1 histories replay deterministically") || !strings.Contains(out, "before the rotation") || !strings.Contains(out, "after the rotation") {
		t.Fatalf("replay with both keys:\n%s", out)
	}
}
