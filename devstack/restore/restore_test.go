package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/backup"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/cli"
	"github.com/demarche/demarche/workflows/crisis"
)

// platform is `demarche dev` on a data folder, as the command starts it:
// the folder's own codec key (made on first start), every service.
type platform struct {
	t   *testing.T
	s   *stack.Stack
	tc  client.Client
	nc  *nats.Conn
	dir string
}

func start(t *testing.T, dir string) *platform {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keyFile, err := payloadcodec.EnsureDevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := payloadcodec.LoadKeyring(keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := stack.Start(context.Background(), stack.Config{DataDir: dir, NoUI: true, TemporalLogLevel: "error", Codec: codec,
		AuditAnchorEvery: 2 * time.Second}, quietLog())
	if err != nil {
		t.Fatalf("start the platform on %s: %v", dir, err)
	}
	p := &platform{t: t, s: s, dir: dir}
	if p.tc, err = temporalx.Dial(context.Background(), s.TemporalAddress(), s.Namespace(), zap.NewNop(), temporalx.As(temporalx.IdentityGateway)); err != nil {
		s.Stop()
		t.Fatal(err)
	}
	url := s.NATSURLFor(natsauth.Operator)
	if p.nc, err = nats.Connect(url, natsx.InboxOption(url)); err != nil {
		s.Stop()
		t.Fatal(err)
	}
	return p
}

func (p *platform) stop() {
	p.nc.Close()
	p.tc.Close()
	p.s.Stop()
}

func quietLog() *zap.Logger { return zap.NewNop() }

// cli runs a demarche command against the platform (operator verbs with a
// token of a test identity holding every role; audit verbs as the demo auditor).
func (p *platform) cli(args ...string) string {
	p.t.Helper()
	out, err := p.try(args...)
	if err != nil {
		p.t.Fatalf("demarche %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (p *platform) try(args ...string) (string, error) {
	p.t.Helper()
	as := "duty"
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--as" {
			as = args[i+1]
			args = append(append([]string{}, args[:i]...), args[i+2:]...)
			break
		}
	}
	roles := []string{"duty-officer", "desk-officer", "head-of-department", "funding-officer", "mediation-support", "drill-coordinator", "analyst", "roster-coordinator", "fund-manager", "auditor"}
	tok, err := p.s.Issuer().Mint(authn.Claims{Subject: as, Roles: roles, Clearance: "confidential"}, time.Hour)
	if err != nil {
		p.t.Fatal(err)
	}
	if args[0] == "audit" {
		b, err := os.ReadFile(p.s.TokenFile("auditor"))
		if err != nil {
			p.t.Fatal(err)
		}
		tok = strings.TrimSpace(string(b))
	}
	args = append(args, "--server", p.s.APIURL(), "--token", tok, "--nats-url", p.s.NATSURLFor(natsauth.Operator),
		"--temporal-address", p.s.TemporalAddress(), "--log-level", "error")
	return run(args...)
}

// run runs one demarche command (no platform needed: admin backup/restore).
func run(args ...string) (string, error) {
	root := cli.NewRoot(stack.NewDevCmd)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func (p *platform) state(id string) *demarchev1.CrisisState {
	p.t.Helper()
	st, err := crisis.State(context.Background(), p.tc, id)
	if err != nil {
		p.t.Fatalf("state of %s: %v", id, err)
	}
	return st
}

func (p *platform) waitFor(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not in 90s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *platform) waitPending(id, kind string) {
	p.t.Helper()
	p.waitFor(id+" waits for "+kind, func() bool {
		st, err := crisis.State(context.Background(), p.tc, id)
		if err != nil {
			return false
		}
		for _, d := range st.GetPendingDecisions() {
			if d.GetKind() == kind {
				return true
			}
		}
		return false
	})
}

func pendingKinds(st *demarchev1.CrisisState) []string {
	var out []string
	for _, d := range st.GetPendingDecisions() {
		out = append(out, d.GetKind())
	}
	return out
}

// ledgers are every fund's balance and ledger lines.
func (p *platform) ledgers() (map[string]int64, map[string][]*demarchev1.LedgerEntry) {
	p.t.Helper()
	ctx := context.Background()
	var bal demarchev1.BalanceResponse
	if err := natsrpc.Call(ctx, p.nc, natsrpc.FundingBalance, &demarchev1.FundQuery{}, &bal); err != nil {
		p.t.Fatal(err)
	}
	balances, lines := map[string]int64{}, map[string][]*demarchev1.LedgerEntry{}
	for _, f := range bal.GetFunds() {
		if f.GetProblem() != "" {
			p.t.Fatalf("fund %s: %s", f.GetFund().GetId(), f.GetProblem())
		}
		id := f.GetFund().GetId()
		balances[id] = f.GetBalanceUsd()
		var l demarchev1.LedgerResponse
		if err := natsrpc.Call(ctx, p.nc, natsrpc.FundingLedger, &demarchev1.FundQuery{Fund: id}, &l); err != nil {
			p.t.Fatal(err)
		}
		lines[id] = l.GetEntries()
	}
	return balances, lines
}

func openings(lines map[string][]*demarchev1.LedgerEntry) int {
	n := 0
	for _, ls := range lines {
		for _, l := range ls {
			if l.GetKind() == demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING {
				n++
			}
		}
	}
	return n
}

// checkLedgers: every fund's balance is its last line's balance, and every
// line follows from the one before.
func checkLedgers(t *testing.T, balances map[string]int64, lines map[string][]*demarchev1.LedgerEntry) {
	t.Helper()
	for fund, ls := range lines {
		var running int64
		for i, l := range ls {
			switch l.GetKind() {
			case demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING:
				running = l.GetAmountUsd()
			default:
				running -= l.GetAmountUsd()
			}
			if l.GetBalanceAfterUsd() != running || l.GetLine() != uint64(i+1) {
				t.Fatalf("fund %s line %d: balance after %d, the lines before give %d", fund, l.GetLine(), l.GetBalanceAfterUsd(), running)
			}
		}
		if len(ls) > 0 && balances[fund] != running {
			t.Fatalf("fund %s: balance %d, its ledger %d", fund, balances[fund], running)
		}
	}
}

// TestRestoreDrill is docs/operations.md "Backup and restore", step by step:
// crises mid-flight (a drill running, one waiting for a decision, one with a
// funding request waiting for approval, one paid), the platform stopped,
// `demarche admin backup`, the data folder destroyed, `demarche admin
// restore` into a new one (refused with a wrong key, naming it, and into a
// folder that holds something), the platform started on it: every crisis goes
// on from where it was, every balance equals its ledger, no fund is
// re-opened, `audit verify` and `audit reconcile` are clean.
func TestRestoreDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	// DEMARCHE_CHAOS_SIZE=full (make chaos): more crises of each kind.
	extraWaiting, extraDrills := 0, 0
	switch size := os.Getenv("DEMARCHE_CHAOS_SIZE"); size {
	case "", "small":
	case "full":
		extraWaiting, extraDrills = 40, 10
	default:
		t.Fatalf("DEMARCHE_CHAOS_SIZE %q: allowed small, full", size)
	}
	ctx := context.Background()
	base := t.TempDir()
	dataA, bk, dataB := filepath.Join(base, "data"), filepath.Join(base, "backup"), filepath.Join(base, "restored")
	p := start(t, dataA)

	// Waiting for a decision: triage.
	waiting := openedID(t, p.cli("crisis", "open", "--title", "Standoff in the capital", "--country", "NE", "--type", "constitutional-crisis", "--severity", "3"))
	p.waitPending(waiting, "triage")
	// Funding requested, waiting for approval; and one paid.
	toFunding := func(title, country string) string {
		id := openedID(t, p.cli("crisis", "open", "--title", title, "--country", country, "--type", "general", "--severity", "2"))
		p.waitPending(id, "triage")
		for _, stage := range []string{"warning", "good-offices", "fact-finding", "envoy-deployment"} {
			p.cli("crisis", "skip-stage", id, "--stage", stage, "--as", "duty-officer", "--reason", "straight to funding")
		}
		p.waitPending(id, "funding-request")
		p.cli("crisis", "decide", "request-funds", id, "--as", "alice", "--rationale", "mediation costs", "--funding-request", "FR-1",
			"--fund", "flexible-financing", "--amount", "120000", "--purpose", "dialogue venue")
		p.waitPending(id, "funding-decision")
		return id
	}
	pendingFunds := toFunding("Election dispute", "ML")
	paid := toFunding("Border clash", "GN")
	p.cli("crisis", "decide", "decide-funds", paid, "--as", "bob", "--rationale", "within ceiling", "--funding-request", "FR-1", "--approve")
	p.waitFor(paid+" paid", func() bool {
		_, lines := p.ledgers()
		for _, l := range lines["flexible-financing"] {
			if l.GetCrisisId() == paid {
				return true
			}
		}
		return false
	})
	// A drill, running by itself (a decision every few seconds): stopped mid-flight.
	drill := openedID(t, p.cli("crisis", "open", "--id", "DRRST", "--title", "Restore drill", "--country", "SN", "--type", "constitutional-crisis",
		"--severity", "3", "--drill", "--drill-delay", "3s", "--drill-time-scale", "0.000001"))
	p.waitFor(drill+" takes its first decision", func() bool { return len(p.state(drill).GetDecisions()) >= 1 })

	var moreWaiting, moreDrills []string
	for i := range extraWaiting {
		id := openedID(t, p.cli("crisis", "open", "--title", fmt.Sprintf("Waiting crisis %d", i), "--country", "NE", "--type", "general", "--severity", "2"))
		moreWaiting = append(moreWaiting, id)
	}
	for i := range extraDrills {
		moreDrills = append(moreDrills, openedID(t, p.cli("crisis", "open", "--id", fmt.Sprintf("DRX%02d", i), "--title", "Drill", "--country", "ML",
			"--type", "constitutional-crisis", "--severity", "3", "--drill", "--drill-delay", "3s", "--drill-time-scale", "0.000001")))
	}
	for _, id := range moreWaiting {
		p.waitPending(id, "triage")
	}
	before := map[string]*demarchev1.CrisisState{}
	for _, id := range append([]string{waiting, pendingFunds, paid, drill}, moreWaiting...) {
		before[id] = p.state(id)
	}
	if before[drill].GetClosedAt() != nil {
		t.Fatal("the drill closed before the backup: the test proves nothing; slow it down")
	}
	// The audit service has anchored the chains (signed heads in their stream and file).
	p.waitFor("anchors", func() bool {
		_, err := os.Stat(filepath.Join(dataA, "audit-anchors.jsonl"))
		return err == nil
	})
	balBefore, linesBefore := p.ledgers()
	checkLedgers(t, balBefore, linesBefore)
	openingsBefore := openings(linesBefore)
	// A running platform holds the folder: backup refuses it, and writes nothing.
	if out, err := run("admin", "backup", "--data-dir", dataA, "--out", bk, "--log-level", "error"); err == nil || !strings.Contains(err.Error(), "in use by a running demarche dev") {
		t.Fatalf("backup of a running platform's folder: %v\n%s", err, out)
	}
	if _, err := os.Stat(bk); !os.IsNotExist(err) {
		t.Fatalf("a refused backup left %s behind", bk)
	}
	p.stop()

	// Stopped: one cut.
	t0 := time.Now()
	out, err := run("admin", "backup", "--data-dir", dataA, "--out", bk, "--log-level", "error")
	if err != nil {
		t.Fatalf("admin backup: %v\n%s", err, out)
	}
	took := time.Since(t0)
	if !strings.Contains(out, bk+".key") {
		t.Fatalf("backup does not say where its key is:\n%s", out)
	}
	m, err := backup.ReadManifest(bk)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %d bytes encrypted, %s, %d files", m.Size(), took.Round(time.Millisecond), len(m.Files))
	streams := map[string]backup.StreamEntry{}
	for _, s := range m.Streams {
		streams[s.Name] = s
		t.Logf("  %-28s %6d messages (seq %d-%d) %d consumers", s.Name, s.Messages, s.FirstSeq, s.LastSeq, s.Consumers)
	}
	for _, name := range []string{natsauth.CrisisStream, natsauth.LedgerStream, natsauth.AuditStream, natsauth.AnchorStream, natsauth.KV(natsauth.FundingBucket), natsauth.KV(natsauth.RosterBucket)} {
		if streams[name].Messages == 0 {
			t.Errorf("the backup lacks %s (or holds it empty)", name)
		}
	}
	for _, f := range []string{"temporal.db", payloadcodec.DevKeyFile, "nats-store.key", "audit-signing.key", "audit-signing.pub", "audit-anchors.jsonl", "auth/issuer.key"} {
		found := false
		for _, e := range m.Files {
			found = found || e.Path == f
		}
		if !found && f != "auth/issuer.key" {
			t.Errorf("the backup lacks %s", f)
		}
	}

	// The data folder is lost.
	if err := os.RemoveAll(dataA); err != nil {
		t.Fatal(err)
	}

	// A wrong key is refused, naming it and the backup's.
	wrong := filepath.Join(base, "wrong.key")
	wid, err := backup.NewIdentityFile(wrong)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run("admin", "restore", "--from", bk, "--identity", wrong, "--data-dir", dataB, "--log-level", "error"); err == nil ||
		!strings.Contains(err.Error(), wid.Recipient().String()) || !strings.Contains(err.Error(), m.Recipients[0]) {
		t.Fatalf("restore with a wrong key: %v\n%s", err, out)
	}
	// A folder that holds something is refused.
	full := filepath.Join(base, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run("admin", "restore", "--from", bk, "--data-dir", full, "--log-level", "error"); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a non-empty folder: %v\n%s", err, out)
	}

	// Restore (the key found beside the backup), settled on the platform.
	cli.DevPlatform = stack.SettlePlatform
	t0 = time.Now()
	out, err = run("admin", "restore", "--from", bk, "--data-dir", dataB, "--log-level", "error")
	if err != nil {
		t.Fatalf("admin restore: %v\n%s", err, out)
	}
	t.Logf("restore and settle: %s\n%s", time.Since(t0).Round(time.Millisecond), out)
	if !strings.Contains(out, ": clean") {
		t.Fatalf("restore did not settle clean:\n%s", out)
	}

	// The platform on the restored folder.
	q := start(t, dataB)
	defer q.stop()
	for id, was := range before {
		now := q.state(id)
		if id == drill {
			continue // it runs by itself
		}
		if got, want := strings.Join(pendingKinds(now), ","), strings.Join(pendingKinds(was), ","); got != want || len(now.GetDecisions()) != len(was.GetDecisions()) {
			t.Fatalf("crisis %s after restore waits for %q with %d decisions; before, %q with %d", id, got, len(now.GetDecisions()), want, len(was.GetDecisions()))
		}
	}
	balAfter, linesAfter := q.ledgers()
	checkLedgers(t, balAfter, linesAfter)
	if openings(linesAfter) != openingsBefore {
		t.Fatalf("opening lines: %d after restore, %d before: a fund was re-opened", openings(linesAfter), openingsBefore)
	}
	for fund, b := range balBefore {
		if fund == demarchev1.DrillFundID {
			// Drills run by themselves, also while restore settles: they may have paid since.
			if len(linesAfter[fund]) < len(linesBefore[fund]) {
				t.Fatalf("the drill fund lost lines: %d after restore, %d before", len(linesAfter[fund]), len(linesBefore[fund]))
			}
			continue
		}
		if balAfter[fund] != b || len(linesAfter[fund]) != len(linesBefore[fund]) {
			t.Fatalf("fund %s after restore: %d (%d lines), before %d (%d lines)", fund, balAfter[fund], len(linesAfter[fund]), b, len(linesBefore[fund]))
		}
	}
	// Every crisis goes on.
	for _, id := range moreWaiting {
		q.cli("crisis", "decide", "triage", id, "--as", "duty-officer", "--rationale", "credible", "--assessment", "unrest")
	}
	for _, id := range moreDrills {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err := q.tc.GetWorkflow(wctx, crisis.WorkflowID(id), "").Get(wctx, nil)
		cancel()
		if err != nil {
			t.Fatalf("drill %s did not finish after restore: %v", id, err)
		}
	}
	q.cli("crisis", "decide", "triage", waiting, "--as", "duty-officer", "--rationale", "credible", "--assessment", "parliament dissolved")
	q.waitPending(waiting, "good-offices")
	q.cli("crisis", "decide", "decide-funds", pendingFunds, "--as", "bob", "--rationale", "within ceiling", "--funding-request", "FR-1", "--approve")
	q.waitFor(pendingFunds+" paid after restore", func() bool {
		_, lines := q.ledgers()
		for _, l := range lines["flexible-financing"] {
			if l.GetCrisisId() == pendingFunds {
				return true
			}
		}
		return false
	})
	q.cli("crisis", "skip", paid, "--stage", "sustained-follow-up", "--as", "head", "--reason", "handed over")
	q.waitPending(paid, "closure")
	run := q.tc.GetWorkflow(ctx, crisis.WorkflowID(drill), "")
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := run.Get(wctx, nil); err != nil {
		t.Fatalf("the drill did not finish after restore: %v", err)
	}
	if n, was := len(q.state(drill).GetDecisions()), len(before[drill].GetDecisions()); n <= was {
		t.Fatalf("the drill took %d decisions in all, %d before the backup: it did not go on", n, was)
	}
	balAfter, linesAfter = q.ledgers()
	checkLedgers(t, balAfter, linesAfter)
	if got, want := balAfter["flexible-financing"], balBefore["flexible-financing"]-120000; got != want {
		t.Fatalf("flexible-financing after the payment that followed the restore: %d, want %d", got, want)
	}
	if openings(linesAfter) != openingsBefore {
		t.Fatal("a fund was re-opened")
	}
	// audit verify and reconcile, clean, for every crisis and the global chain.
	q.cli("audit", "verify")
	for _, id := range append([]string{waiting, pendingFunds, paid, drill}, append(moreWaiting, moreDrills...)...) {
		q.waitFor("audit of "+id+" settles", func() bool {
			if _, err := q.try("audit", "reconcile", "--crisis", id); err != nil {
				return false
			}
			_, err := q.try("audit", "verify", "--crisis", id)
			return err == nil
		})
	}
	if out := q.cli("fund", "balance"); !strings.Contains(out, "flexible-financing") {
		t.Fatalf("fund balance:\n%s", out)
	}
	t.Logf("figures: backup %d bytes, %s; %d streams; crises %d (and %d drills); opening lines %d", m.Size(), took.Round(time.Millisecond), len(m.Streams), len(before), 1+len(moreDrills), openingsBefore)
}

// openedID is the crisis id `crisis open` answered.
func openedID(t *testing.T, out string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "opened crisis ")
	id, _, _ := strings.Cut(rest, " ")
	if !ok || id == "" {
		t.Fatalf("crisis open answered no crisis id:\n%s", out)
	}
	return strings.TrimSpace(id)
}
