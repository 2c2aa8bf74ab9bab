package temporalembed

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// A port taken between the pick and the bind makes the server log Fatal,
// which would end the process (and with it every test of the package):
// Start must return an error naming the listener instead.
func TestStartReturnsAnErrorWhenAnInternalPortIsTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded Temporal; skipped with -short")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	pickInternalPort = func(string) (int, error) { return taken.Addr().(*net.TCPAddr).Port, nil }
	defer func() { pickInternalPort = defaultPickInternalPort }()

	srv, err := Start(Options{DatabaseFile: filepath.Join(t.TempDir(), "temporal.db"), Namespace: "demarche", LogLevel: "error", CredentialsDir: t.TempDir()}, zap.NewNop())
	if err == nil {
		_ = srv.Stop()
		t.Fatal("started with every internal service on a taken port")
	}
	t.Logf("refused: %v", err)
	if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), "listener") {
		t.Fatalf("error %q: want ErrStart naming the listener", err)
	}
}
