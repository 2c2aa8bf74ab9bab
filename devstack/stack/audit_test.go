package stack_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/workflows/crisis"
)

// runAuditCLI runs one demarche command, with `audit` added to the root
// command when root.go does not have it yet.
func runAuditCLI(t *testing.T, s *stack.Stack, args ...string) (string, error) {
	t.Helper()
	return runCLI(t, s, args...)
}

// TestAuditTrail drives a drill crisis to closure on the real stack, then
// verifies its audit chain, reconciles it with the workflow histories, exports
// a signed evidence bundle and verifies that bundle offline.
func TestAuditTrail(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	nc, _ := jsOf(t, s)
	_, obs := jsAs(t, s, natsauth.Observer) // the observer reads every consumer's state
	ctx := context.Background()

	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The stack runs the audit service once stack.go wires it; until then the test does.
	if _, err := nc.Request("$SRV.PING."+audit.ServiceName, nil, time.Second); err != nil {
		if !strings.Contains(err.Error(), nats.ErrNoResponders.Error()) && !strings.Contains(err.Error(), "timeout") {
			t.Fatal(err)
		}
		svc, err := audit.Start(ctx, audit.Config{NATSURL: s.NATSURLFor(natsauth.Audit), SigningKey: key}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Stop()
	}

	id := drillID(t, "duty", "AUDIT") // a drill, named by its opener
	out, err := runCLI(t, s, "crisis", "open", "--id", "AUDIT", "--title", "Coup attempt in Conakry", "--country", "GN",
		"--type", "unconstitutional-change", "--severity", "4", "--drill", "--drill-delay", "1s", "--drill-time-scale", "0.000001")
	if err != nil {
		t.Fatalf("crisis open: %v\n%s", err, out)
	}
	var final demarchev1.CrisisState
	if err := tc.GetWorkflow(ctx, crisis.WorkflowID(id), "").Get(ctx, &final); err != nil {
		t.Fatalf("crisis never closed: %v", err)
	}
	// The audit consumer has taken every event.
	waitFor(t, func() bool {
		c, err := obs.Consumer(ctx, eventbus.StreamName, audit.Durable)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})

	out, err = runAuditCLI(t, s, "audit", "verify", "--crisis", id, "--as", "auditor-ada")
	if err != nil || !strings.Contains(out, "chain crisis."+id+" verifies") {
		t.Fatalf("audit verify --crisis: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
	if out, err = runAuditCLI(t, s, "audit", "verify", "--as", "auditor-ada"); err != nil || !strings.Contains(out, "chain global verifies") {
		t.Fatalf("audit verify (global): %v\n%s", err, out)
	}

	out, err = runAuditCLI(t, s, "audit", "reconcile", "--crisis", id, "--as", "auditor-ada")
	if err != nil || !strings.Contains(out, "every decision has its audit record") {
		t.Fatalf("audit reconcile: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
	if final.GetFigures().GetDecisions() == 0 || !strings.Contains(out, " "+strconv.Itoa(int(final.GetFigures().GetDecisions()))+" decisions in them") {
		t.Fatalf("reconcile did not see the crisis's %d decisions:\n%s", final.GetFigures().GetDecisions(), out)
	}
	// Every event, not only decisions: each record carries the workflow and
	// history event it comes from, and reconcile matched them all.
	gw, _ := jsAs(t, s, natsauth.Gateway) // chains are read through the gateway
	chain, err := audit.FetchChain(ctx, gw, id, "auditor-test")
	if err != nil {
		t.Fatal(err)
	}
	var events int
	for _, r := range chain.GetRecords() {
		if r.GetKind() != demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT || r.GetEventSource() != crisis.EventSource {
			continue
		}
		events++
		if !strings.HasPrefix(r.GetWorkflowId(), crisis.WorkflowID(id)) || r.GetRunId() == "" || r.GetHistoryEventId() <= 0 {
			t.Fatalf("record %d (%s) does not say where it comes from: %v", r.GetSequence(), r.GetEventType(), r)
		}
	}
	want := fmt.Sprintf("%d published in the histories, %d workflow event records, %d matched", events, events, events)
	if events <= int(final.GetFigures().GetDecisions()) || !strings.Contains(out, want) {
		t.Fatalf("reconcile did not match all %d events (want %q):\n%s", events, want, out)
	}

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "audit.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key.Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "evidence.tar.gz")
	out, err = runAuditCLI(t, s, "audit", "export", "--crisis", id, "--out", bundle, "--as", "auditor-ada", "--signing-key", keyFile)
	if err != nil || !strings.Contains(out, "wrote "+bundle) || !strings.Contains(out, "figures: true") {
		t.Fatalf("audit export: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))

	// Offline: the stack is not needed to check the bundle.
	out, err = runAuditCLI(t, s, "audit", "verify", "--bundle", bundle, "--public-key", base64.StdEncoding.EncodeToString(pub))
	if err != nil || !strings.Contains(out, "verifies") {
		t.Fatalf("audit verify --bundle: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
	f, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files, err := audit.ReadBundle(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files[audit.HistoryDir+crisis.WorkflowID(id)+".json"]; !ok || !strings.Contains(string(files[audit.TrailFile]), `"principal": "drill-approver`) {
		t.Fatalf("bundle lacks the crisis history or the decision trail: %v", keys(files))
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
