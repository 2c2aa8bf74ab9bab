package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/cli"
	"github.com/demarche/demarche/services/eventlog"
	"github.com/demarche/demarche/workflows/crisis"
)

// fileLogger keeps the stack's logs in the test's folder: servers may log after
// a test returns, which testing.T does not allow.
func fileLogger(t *testing.T, dir string) *zap.Logger {
	t.Helper()
	if keep := os.Getenv("DEMARCHE_TEST_LOG_DIR"); keep != "" {
		// Kept after the test (t.TempDir is removed): for a failure's post-mortem.
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
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(f), zapcore.InfoLevel)
	return zap.New(core)
}

// startStack runs the real platform on dataDir with random ports.
func startStack(t *testing.T, dataDir string) *stack.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	s, err := stack.Start(context.Background(), stack.Config{DataDir: dataDir, TemporalLogLevel: "error", Codec: testCodec(t, dataDir)}, fileLogger(t, t.TempDir()))
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	return s
}

// testCodec is a payload codec keyring when DEMARCHE_TEST_CODEC is set, so
// the whole suite can run with every Temporal payload encrypted
// (DEMARCHE_TEST_CODEC=1 go test ./devstack/stack); nil otherwise.
// The key lives in the data folder, as demarche dev's does: a restarted
// stack reads what it wrote.
func testCodec(t *testing.T, dataDir string) *payloadcodec.Keyring {
	t.Helper()
	if os.Getenv("DEMARCHE_TEST_CODEC") == "" {
		return nil
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path, err := payloadcodec.EnsureDevKey(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := payloadcodec.LoadKeyring(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runCLI runs one demarche command against the stack and returns its output.
// The operator verbs (crisis, warning) reach the gateway with a token: "--as
// NAME" in args becomes a token for the test identity NAME (every operator
// role, cleared for everything: tests of roles mint their own), and without
// it the demo duty officer's (the demo auditor's for audit verbs).
// mustCLI is runCLI for a step that must succeed: it fails the test with
// the command line and its output otherwise.
func mustCLI(t *testing.T, s *stack.Stack) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, s, args...)
		if err != nil {
			t.Fatalf("demarche %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
}

func runCLI(t *testing.T, s *stack.Stack, args ...string) (string, error) {
	t.Helper()
	root := cli.NewRoot(stack.NewDevCmd)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	if len(args) > 0 && (args[0] == "crisis" || args[0] == "warning" || args[0] == "exercise" || args[0] == "roster" || args[0] == "fund" || args[0] == "partner" || args[0] == "audit") && (len(args) < 2 || args[1] != "validate") {
		token := readToken(t, s.TokenFile("duty"))
		if args[0] == "audit" {
			token = readToken(t, s.TokenFile("auditor"))
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--as" {
				token = testToken(t, s, args[i+1])
				args = append(append([]string{}, args[:i]...), args[i+2:]...)
				break
			}
		}
		args = append(args, "--server", s.APIURL(), "--token", token)
	}
	root.SetArgs(append(args, "--nats-url", s.NATSURLFor(natsauth.Operator), "--temporal-address", s.TemporalAddress(), "--log-level", "error"))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// openedID is the crisis id `crisis open` answered: the platform mints it.
func openedID(t *testing.T, out string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "opened crisis ")
	id, _, _ := strings.Cut(rest, " ")
	if !ok || id == "" {
		t.Fatalf("crisis open answered no crisis id:\n%s", out)
	}
	return id
}

// drillID is the id of the drill opener names name (crisis open --drill --id name).
func drillID(t *testing.T, opener, name string) string {
	t.Helper()
	id, err := crisis.DrillID(opener, name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testToken is a token for a test principal with every operator role.
func testToken(t *testing.T, s *stack.Stack, subject string, roles ...string) string {
	t.Helper()
	if len(roles) == 0 {
		roles = []string{"duty-officer", "desk-officer", "head-of-department", "funding-officer", "mediation-support", "drill-coordinator", "analyst", "roster-coordinator", "fund-manager", "auditor"}
	}
	tok, err := s.Issuer().Mint(authn.Claims{Subject: subject, Roles: roles, Clearance: "confidential"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// temporalClient is a Temporal client acting as the gateway: it opens,
// decides and steers crises as the gateway does after checking a token, and
// reads them.
func temporalClient(t *testing.T, s *stack.Stack) client.Client {
	t.Helper()
	return temporalClientAs(t, s, temporalx.IdentityGateway)
}

// temporalClientAs is a Temporal client acting as one of Démarche's
// Temporal identities (the admin for outside operations, early warning for
// warnings, the auditor for raw reads).
func temporalClientAs(t *testing.T, s *stack.Stack, identity string) client.Client {
	t.Helper()
	tc, err := temporalx.Dial(context.Background(), s.TemporalAddress(), s.Namespace(), zap.NewNop(), temporalx.As(identity))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	return tc
}

func expectedKinds() []string {
	want := []string{"crisis_opened"}
	for _, st := range demarchev1.LifecycleStages {
		want = append(want, "stage_entered:"+st.Slug(), "stage_completed:"+st.Slug())
	}
	return append(want, "crisis_closed")
}

func kindOf(ev eventbus.Event) string {
	et, _ := eventbus.TypeOf(ev.Data)
	switch d := ev.Data.(type) {
	case *demarchev1.StageEntered:
		return et.Token + ":" + d.GetStage().Slug()
	case *demarchev1.StageCompleted:
		return et.Token + ":" + d.GetStage().Slug()
	}
	return et.Token
}

func TestPlatform(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)

	t.Run("a crisis walks through six stages, seen by a plain NATS subscriber", func(t *testing.T) {
		ctx := context.Background()
		nc, err := nats.Connect(s.NATSURLFor(natsauth.Operator), natsx.InboxOption(s.NATSURLFor(natsauth.Operator)))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		id := drillID(t, "duty", "E2E01") // a drill: named by its opener, in the opener's own namespace
		sub, err := nc.SubscribeSync(eventbus.CrisisEvents(id))
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil { // the server has the subscription before anything is published
			t.Fatal(err)
		}
		out, err := runCLI(t, s, "crisis", "open", "--id", "E2E01", "--title", "Coup attempt in Conakry", "--country", "GN",
			"--type", "unconstitutional-change", "--severity", "4", "--playbook", "general",
			"--drill", "--drill-delay", "1s", "--drill-time-scale", "0.000001")
		if err != nil || !strings.Contains(out, "opened crisis "+id) {
			t.Fatalf("crisis open: %v\n%s", err, out)
		}

		var got []string
		var first *nats.Msg
		total := 0
		for len(got) == 0 || got[len(got)-1] != "crisis_closed" {
			m, err := sub.NextMsg(60 * time.Second)
			if err != nil {
				t.Fatalf("after %v: %v", got, err)
			}
			if first == nil {
				first = m
			}
			for _, h := range []string{"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject", "ce-dataschema", "content-type", "Nats-Msg-Id"} {
				if m.Header.Get(h) == "" {
					t.Fatalf("event on %s lacks header %s: %v", m.Subject, h, m.Header)
				}
			}
			ev, err := eventbus.Decode(m.Header, m.Data)
			if err != nil {
				t.Fatalf("not a valid CloudEvent: %v", err)
			}
			if ev.Subject != id || !strings.HasPrefix(m.Subject, "demarche.crisis.africa.GN."+id+".") {
				t.Fatalf("event for %s on %s", ev.Subject, m.Subject)
			}
			total++
			if k := kindOf(ev); strings.HasPrefix(k, "crisis_") || strings.HasPrefix(k, "stage_") {
				got = append(got, k)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(expectedKinds()) {
			t.Fatalf("events in order\n got %v\nwant %v", got, expectedKinds())
		}

		var final demarchev1.CrisisState
		if err := tc.GetWorkflow(ctx, crisis.WorkflowID(id), "").Get(ctx, &final); err != nil {
			t.Fatalf("workflow result: %v", err)
		}
		recordHistories(t, tc, id, crisis.WorkflowName+"-drill.json", true)

		out, err = runCLI(t, s, "crisis", "show", id)
		if err != nil {
			t.Fatalf("crisis show: %v", err)
		}
		if !strings.Contains(out, "stage     closed") {
			t.Fatalf("crisis show does not report the closed stage:\n%s", out)
		}
		for _, st := range demarchev1.LifecycleStages {
			line := lineWith(out, "  "+st.Slug()+" ")
			if line == "" || strings.Contains(line, "running") || strings.Count(line, "2026-") < 1 || !strings.HasSuffix(strings.TrimSpace(line), "s") {
				t.Fatalf("crisis show: stage %s has no entered/completed times and duration:\n%s", st.Slug(), out)
			}
		}

		// An auditor replays every run of every workflow of the crisis, including
		// follow-up's continued-as-new runs.
		if out, err := runCLI(t, s, "audit", "replay", "--crisis", id); err != nil || !strings.Contains(out, "sustained-follow-up-1 (run 2 of 2)") ||
			!strings.Contains(out, "6 of 6 histories replay deterministically") {
			t.Fatalf("audit replay: %v\n%s", err, out)
		}

		// Drills are kept out of real figures.
		if out, err := runCLI(t, s, "crisis", "figures"); err != nil || strings.Contains(out, id) {
			t.Fatalf("crisis figures lists the drill: %v\n%s", err, out)
		}
		if out, err := runCLI(t, s, "crisis", "figures", "--include-drills"); err != nil || !strings.Contains(out, id) {
			t.Fatalf("crisis figures --include-drills misses the drill: %v\n%s", err, out)
		}

		out, err = runCLI(t, s, "crisis", "list", "--stage", "closed", "--country", "GN", "--type", "unconstitutional-change")
		if err != nil || !strings.Contains(out, id) {
			t.Fatalf("crisis list --stage closed misses %s: %v\n%s", id, err, out)
		}
		out, err = runCLI(t, s, "crisis", "list", "--stage", "warning")
		if err != nil || strings.Contains(out, id) {
			t.Fatalf("crisis list --stage warning lists the closed crisis: %v\n%s", err, out)
		}

		// The event-log service consumed every event durably, with nothing left unacknowledged.
		_, js := jsAs(t, s, natsauth.Observer) // the observer reads every consumer's state
		waitFor(t, func() bool {
			c, err := js.Consumer(ctx, eventbus.StreamName, eventlog.Durable)
			if err != nil {
				return false
			}
			info := c.CachedInfo()
			return info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= uint64(total)
		})

		// Auditors browse the same history in the Temporal Web UI the stack serves.
		for _, path := range []string{"/", "/api/v1/namespaces/demarche/workflows/" + crisis.WorkflowID(id) + "/history"} {
			resp, err := http.Get(s.UIURL() + path)
			if err != nil {
				t.Fatalf("Temporal UI %s: %v", path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || (path != "/" && !(strings.Contains(string(body), "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED") && strings.Contains(string(body), id))) {
				t.Fatalf("Temporal UI %s: %d\n%.300s", path, resp.StatusCode, body)
			}
		}

		// Republishing an event with the same id (as the worker's retried
		// activity does; no one else may publish crisis events) stores it once.
		wnc, err := nats.Connect(s.NATSURLFor(natsauth.Worker), natsx.InboxOption(s.NATSURLFor(natsauth.Worker)))
		if err != nil {
			t.Fatal(err)
		}
		defer wnc.Close()
		wjs, err := jetstream.New(wnc)
		if err != nil {
			t.Fatal(err)
		}
		before := streamCount(t, js, eventbus.CrisisEvents(id))
		ack, err := wjs.PublishMsg(ctx, &nats.Msg{Subject: first.Subject, Header: first.Header, Data: first.Data})
		if err != nil {
			t.Fatal(err)
		}
		if !ack.Duplicate || streamCount(t, js, eventbus.CrisisEvents(id)) != before || before < uint64(total) {
			t.Fatalf("republish: duplicate=%v, stream count %d -> %d", ack.Duplicate, before, streamCount(t, js, eventbus.CrisisEvents(id)))
		}
	})

	t.Run("a crisis in parallel stages is listed under each", func(t *testing.T) {
		ctx := context.Background()
		out, err := runCLI(t, s, "crisis", "open", "--title", "Disputed count", "--country", "KE", "--type", "election-violence", "--severity", "3")
		if err != nil {
			t.Fatalf("open: %v\n%s", err, out)
		}
		id := openedID(t, out)
		waitFor(t, func() bool {
			st, err := crisis.State(ctx, tc, id)
			return err == nil && len(st.GetPendingDecisions()) > 0
		})
		if out, err := runCLI(t, s, "crisis", "decide", "triage", id, "--as", "duty", "--rationale", "r", "--assessment", "a"); err != nil {
			t.Fatalf("triage: %v\n%s", err, out)
		}
		for _, stage := range []string{"good-offices", "fact-finding"} {
			waitFor(t, func() bool {
				out, err := runCLI(t, s, "crisis", "list", "--stage", stage, "--open")
				return err == nil && strings.Contains(out, id)
			})
		}
		if out, _ := runCLI(t, s, "crisis", "list", "--stage", "warning", "--open"); strings.Contains(out, id) {
			t.Fatalf("listed under the stage it left:\n%s", out)
		}
	})

	t.Run("bad input to crisis open names the field and starts nothing", func(t *testing.T) {
		ctx := context.Background()
		before, err := crisis.List(ctx, tc, crisis.Filter{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		base := []string{"crisis", "open", "--title", "Tensions", "--country", "ML", "--type", "intercommunal-violence", "--severity", "3"}
		cases := []struct {
			name string
			flag string
			val  string
			says string
		}{
			{"unknown country", "--country", "QQ", "country_code (--country)"},
			{"severity 9", "--severity", "9", "severity (--severity): 9 is out of range (allowed: 1 to 5)"},
			{"empty title", "--title", "", "title (--title): is required"},
			{"unknown type", "--type", "riot", "crisis_type (--type)"},
		}
		for _, c := range cases {
			args := append([]string(nil), base...)
			for i := range args {
				if args[i] == c.flag {
					args[i+1] = c.val
				}
			}
			_, err := runCLI(t, s, args...)
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Errorf("%s: error %v does not say %q", c.name, err, c.says)
			}
		}
		after, err := crisis.List(ctx, tc, crisis.Filter{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) {
			t.Fatalf("bad input started workflows: %d before, %d after", len(before), len(after))
		}
	})
}

func TestRestartKeepsCrisesRunning(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := startStack(t, dir)
	tc := temporalClient(t, s)
	id := "ML-20261127-RSTRT"
	in := &demarchev1.CrisisWorkflowInput{
		Crisis: &demarchev1.Crisis{
			Id: id, Title: "Long stage", CountryCode: "ML", Region: demarchev1.Region_REGION_AFRICA,
			CrisisType: demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE, Severity: 3,
			Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED, OpenedAt: timestamppb.Now(), Drill: true,
		},
		DrillPolicy: &demarchev1.DrillPolicy{StageDuration: durationpb.New(time.Second), TimeScale: 0.000001},
	}
	if _, err := crisis.Open(ctx, tc, in); err != nil || in.GetPlaybook().GetName() != "intercommunal-violence" {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st, err := crisis.State(ctx, tc, id)
		return err == nil && len(st.GetTimeline()) >= 1
	})
	tc.Close()
	s.Stop()

	s2 := startStack(t, dir)
	defer s2.Stop()
	tc2 := temporalClient(t, s2)
	rows, err := crisis.List(ctx, tc2, crisis.Filter{Country: "ML"}, 0)
	if err != nil || len(rows) != 1 || rows[0].CrisisID != id {
		t.Fatalf("after restart, crisis list = %v, %v", rows, err)
	}
	var final demarchev1.CrisisState
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := tc2.GetWorkflow(wctx, crisis.WorkflowID(id), "").Get(wctx, &final); err != nil {
		t.Fatalf("crisis did not complete after restart: %v", err)
	}
	stages := 0
	for _, ph := range in.GetPlaybook().GetPhases() {
		stages += len(ph.GetStages())
	}
	if final.GetCurrentStage() != demarchev1.Stage_STAGE_CLOSED || len(final.GetTimeline()) != stages {
		t.Fatalf("after restart: stage %v, %d stages", final.GetCurrentStage(), len(final.GetTimeline()))
	}
	_, js := jsOf(t, s2)
	// Every decision is on the stream once, across the restart.
	if n := streamCount(t, js, eventbus.SubjectRoot+".*.*."+id+".decision_recorded"); n != uint64(len(final.GetDecisions())) {
		t.Fatalf("stream holds %d decision events of the crisis across the restart, want %d", n, len(final.GetDecisions()))
	}
}

func TestTakenPortIsNamedWithItsFlag(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = stack.Start(context.Background(), stack.Config{
		DataDir: t.TempDir(), NATSPort: port, NATSPortFlag: "--nats-port",
	}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) || !strings.Contains(err.Error(), "--nats-port") {
		t.Fatalf("want an error naming port %d and --nats-port, got %v", port, err)
	}
}

func TestDataFolderServesOneStackAtATime(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	defer s.Stop()
	_, err := stack.Start(context.Background(), stack.Config{DataDir: dir}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("a second stack on the same folder: %v", err)
	}
}

// jsAs is JetStream as one identity (with its inbox prefix): the observer
// reads every consumer's state, an owner its own bucket.
func jsAs(t *testing.T, s *stack.Stack, id natsauth.Identity) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.NATSURLFor(id), natsx.InboxOption(s.NATSURLFor(id)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func jsOf(t *testing.T, s *stack.Stack) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.NATSURLFor(natsauth.Operator), natsx.InboxOption(s.NATSURLFor(natsauth.Operator)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func streamCount(t *testing.T, js jetstream.JetStream, filter string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), eventbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// natsConn connects a test's own client to the stack's NATS, closed at cleanup.
func natsConn(t *testing.T, s *stack.Stack) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.NATSURLFor(natsauth.Operator), natsx.InboxOption(s.NATSURLFor(natsauth.Operator)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitWithin polls cond until it holds, failing the test after d.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
