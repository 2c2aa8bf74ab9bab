package stack_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestServicesBackAfterLongNATSOutage: the embedded NATS server stays down
// for 40 s, longer than nats.go's default reconnection budget (60 attempts;
// ours are 0.5 s apart), then comes back on the same port. Every service
// comes back by itself: the event log goes on logging (a crisis opened after
// the outage is logged, as one opened before was), the roster answers again.
// Before the fix, a connection whose budget ran out stayed "not connected
// (CLOSED)" until the process restarted.
func TestServicesBackAfterLongNATSOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack with a 40 s NATS outage; skipped with -short")
	}
	dir, logDir := t.TempDir(), t.TempDir()
	log := fileLogger(t, logDir)
	logFile := filepath.Join(logDir, strings.ReplaceAll(t.Name(), "/", "_")+"-stack.log")
	if keep := os.Getenv("DEMARCHE_TEST_LOG_DIR"); keep != "" {
		logFile = filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_")+"-stack.log")
	}
	s, err := stack.Start(context.Background(), stack.Config{DataDir: dir, TemporalLogLevel: "error", NoUI: true, Codec: testCodec(t, dir)}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	logged := func(crisisID string) func() bool {
		return func() bool {
			b, _ := os.ReadFile(logFile)
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "eventlog") && strings.Contains(line, `"crisis": "`+crisisID+`"`) {
					return true
				}
			}
			return false
		}
	}
	open := func(title string) string {
		t.Helper()
		out, err := runCLI(t, s, "crisis", "open", "--title", title, "--country", "ML", "--type", "election-violence", "--severity", "3")
		if err != nil {
			t.Fatalf("crisis open: %v\n%s", err, out)
		}
		return openedID(t, out)
	}
	before := open("Before the outage")
	waitWithin(t, time.Minute, "the event log logs a crisis opened before the outage", logged(before))

	if err := s.RestartNATS(40*time.Second, log); err != nil {
		t.Fatal(err)
	}
	after := open("After the outage")
	waitWithin(t, 2*time.Minute, "the event log logs a crisis opened after the outage", logged(after))
	nc := natsConn(t, s)
	waitWithin(t, time.Minute, "the roster answers after the outage", func() bool {
		var resp demarchev1.RosterSearchResponse
		return natsrpc.Call(context.Background(), nc, natsrpc.RosterSearch, &demarchev1.RosterSearchRequest{}, &resp) == nil && len(resp.GetCandidates()) > 0
	})
}
