// Package attack_test is the attack suite: every manipulation that once got
// past Démarche's walls (issue "trust inside the walls"), tried against the
// real embedded stack with the credentials `demarche dev` writes and the demo
// identities, each asserted refused (naming its rule or permission, writing
// nothing) or detected (an alarm, a metric, a failing verify).
//
// Each file holds one wall: natsauth (consumers, inboxes, streams), temporal
// (who may start, update, signal, terminate), authority (funding and roster
// act only on a recorded decision), signals (sources stamped by their
// credential), confidentiality (side routes, oracles, ids), detection
// (alarms that fire), hosts (DNS rebinding).
//
// With DEMARCHE_ATTACK_REPORT=FILE every attempt appends one line to FILE
// ("wall | attempt | credential | result"), the table a closing note or a
// review quotes.
package attack_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/pkg/temporalx"
)

// startStack runs the real platform as `demarche dev` does (payload codec on),
// on a temporary data folder with random ports; each tweak changes the
// configuration first (a wall that needs /metrics or the Temporal HTTP API).
func startStack(t *testing.T, tweaks ...func(*stack.Config)) *stack.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("attack suite on the embedded stack; skipped with -short")
	}
	dir := t.TempDir()
	keyFile, err := payloadcodec.EnsureDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := payloadcodec.LoadKeyring(keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stack.Config{DataDir: dir, TemporalLogLevel: "error", Codec: codec}
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	s, err := stack.Start(context.Background(), cfg, logger(t))
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// logger keeps the stack's logs in a file (DEMARCHE_TEST_LOG_DIR keeps them
// after the test): servers may log after a test returns.
func logger(t *testing.T) *zap.Logger {
	t.Helper()
	dir := t.TempDir()
	if keep := os.Getenv("DEMARCHE_TEST_LOG_DIR"); keep != "" {
		dir = keep
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-stack.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(f), zapcore.InfoLevel))
}

// natsAs connects with an identity's credentials from the data folder, as an
// attacker holding that file would (with the identity's own inbox prefix, the
// one its permissions allow).
func natsAs(t *testing.T, s *stack.Stack, id natsauth.Identity) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.NATSURLFor(id), nats.CustomInboxPrefix(natsauth.InboxPrefix(id)))
	if err != nil {
		t.Fatalf("connect as %s: %v", id, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// temporalAs is a Temporal client acting as one of Démarche's Temporal
// identities (temporalx.As), with the stack's codec.
func temporalAs(t *testing.T, s *stack.Stack, identity string) client.Client {
	t.Helper()
	tc, err := temporalx.Dial(context.Background(), s.TemporalAddress(), s.Namespace(), zap.NewNop(), temporalx.As(identity))
	if err != nil {
		t.Fatalf("temporal as %s: %v", identity, err)
	}
	t.Cleanup(tc.Close)
	return tc
}

// caller is one bearer token talking to the gateway.
type caller struct {
	t     *testing.T
	base  string
	token string
}

// demo is a demo identity of the data folder ("duty", "approver", "analyst", ...).
func demo(t *testing.T, s *stack.Stack, name string) caller {
	t.Helper()
	b, err := os.ReadFile(s.TokenFile(name))
	if err != nil {
		t.Fatalf("token of %s: %v", name, err)
	}
	return caller{t: t, base: s.APIURL(), token: strings.TrimSpace(string(b))}
}

// do sends one request; header is name, value pairs. It answers the status and body.
func (c caller) do(method, path, body string, header ...string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if strings.EqualFold(header[i], "Host") {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var reportMu sync.Mutex

// attempt records one attack and its result for the report
// (DEMARCHE_ATTACK_REPORT) and the test log. Call it once the result is
// asserted.
func attempt(t *testing.T, wall, what, credential, result string) {
	t.Helper()
	t.Logf("%s | %s | %s | %s", wall, what, credential, result)
	file := os.Getenv("DEMARCHE_ATTACK_REPORT")
	if file == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "%s | %s | %s | %s\n", wall, what, credential, strings.ReplaceAll(result, "\n", " "))
}
