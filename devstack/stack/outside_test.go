package stack_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/workflows/crisis"
)

// Temporal without credentials is reached from this machine only: the
// embedded frontend and the UI listen on 127.0.0.1 whatever --host says
// (NATS and the gateway follow --host; here another loopback address).
// Crises terminated, cancelled and reset with the SDK, as the temporal CLI
// would, are then reported by crisis show, audit replay and audit reconcile,
// and recorded in their audit chains.
func TestOutsideOperationsAreReported(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	s, err := stack.Start(context.Background(), stack.Config{DataDir: t.TempDir(), Host: "127.0.0.2", TemporalLogLevel: "error"}, fileLogger(t, t.TempDir()))
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	defer s.Stop()
	if !strings.HasPrefix(s.TemporalAddress(), "127.0.0.1:") {
		t.Errorf("Temporal frontend at %s, want 127.0.0.1", s.TemporalAddress())
	}
	if u, err := url.Parse(s.UIURL()); err != nil || u.Hostname() != "127.0.0.1" {
		t.Errorf("Temporal UI at %s, want 127.0.0.1", s.UIURL())
	}
	if u, err := url.Parse(s.APIURL()); err != nil || u.Hostname() != "127.0.0.2" {
		t.Errorf("gateway at %s, want --host 127.0.0.2", s.APIURL())
	}

	// The admin: the one identity that may terminate, cancel and reset.
	tc := temporalClientAs(t, s, temporalx.IdentityAdmin)
	ctx := context.Background()
	cli := mustCLI(t, s)
	open := func() string {
		id := openedID(t, cli("crisis", "open", "--title", "Standoff", "--country", "NE", "--type", "constitutional-crisis", "--severity", "3"))
		waitFor(t, func() bool {
			st, err := crisis.State(ctx, tc, id)
			return err == nil && len(st.GetPendingDecisions()) > 0
		})
		return id
	}
	terminated, cancelled, reset := open(), open(), open()
	// An intruder with the SDK (the temporal CLI does the same calls).
	intruder, err := client.NewClientFromExisting(tc, client.Options{Identity: "mallory@ops-laptop", Namespace: s.Namespace()})
	if err != nil {
		t.Fatal(err)
	}
	if err := intruder.TerminateWorkflow(ctx, crisis.WorkflowID(terminated), "", "cleaning up stuck workflows"); err != nil {
		t.Fatal(err)
	}
	if err := intruder.CancelWorkflow(ctx, crisis.WorkflowID(cancelled), ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		d, err := tc.DescribeWorkflowExecution(ctx, crisis.WorkflowID(cancelled), "")
		return err == nil && d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED
	})
	// Reset to the end of the first workflow task: the run is replaced.
	firstTask := int64(0)
	it := tc.GetWorkflowHistory(ctx, crisis.WorkflowID(reset), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() && firstTask == 0 {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			firstTask = ev.GetEventId()
		}
	}
	if _, err := intruder.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace: s.Namespace(), WorkflowExecution: nil, Reason: "retry from the start", WorkflowTaskFinishEventId: firstTask, RequestId: "reset-1",
	}); err == nil {
		t.Fatal("a reset without an execution was accepted")
	}
	desc, err := tc.DescribeWorkflowExecution(ctx, crisis.WorkflowID(reset), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := intruder.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
		Namespace: s.Namespace(), WorkflowExecution: desc.GetWorkflowExecutionInfo().GetExecution(),
		Reason: "retry from the start", WorkflowTaskFinishEventId: firstTask, RequestId: "reset-1",
	}); err != nil {
		t.Fatal(err)
	}

	cases := []struct{ id, says, why string }{
		// The history names the Temporal identity that did it (the
		// authorizer stamps it), then what the client called itself.
		{terminated, "terminated outside Démarche by admin (mallory@ops-laptop) at ", "cleaning up stuck workflows"},
		{cancelled, "cancelled outside Démarche by admin (mallory@ops-laptop) at ", ""},
		{reset, "reset outside Démarche by an unknown identity at ", "retry from the start"},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			// crisis show (gateway GET /v1/crises/{id}), at once: read from Temporal.
			out := cli("crisis", "show", c.id)
			if l := lineWith(out, "WARNING"); !strings.Contains(l, c.says) || !strings.Contains(l, c.why) {
				t.Errorf("crisis show %s: want a warning %q ... %q\n%s", c.id, c.says, c.why, out)
			}
			// The watcher records it in the crisis's audit chain; reconcile
			// reports it, and fails until it is recorded.
			var rec string
			waitFor(t, func() bool {
				out, err := runCLI(t, s, "audit", "reconcile", "--crisis", c.id)
				rec = out
				return err == nil
			})
			if l := lineWith(rec, "OUTSIDE"); !strings.Contains(l, c.says) {
				t.Errorf("audit reconcile %s: want %q\n%s", c.id, c.says, rec)
			}
			gw, _ := jsAs(t, s, natsauth.Gateway) // chains are read through the gateway
			chain, err := audit.FetchChain(ctx, gw, c.id, "test")
			if err != nil {
				t.Fatal(err)
			}
			found := 0
			for _, r := range chain.GetRecords() {
				if strings.HasSuffix(r.GetEventType(), "crisis_altered_outside.v1") {
					found++
					if c.id != reset && r.GetPrincipal() != "temporal:admin (mallory@ops-laptop)" {
						t.Errorf("audit record principal %q, want temporal:admin (mallory@ops-laptop)", r.GetPrincipal())
					}
				}
			}
			if found != 1 { // the watcher scans every 2s: recorded once all the same
				t.Errorf("%d CrisisAlteredOutside records in chain %s, want 1", found, chain.GetChain())
			}
			// audit replay --crisis: the trail names it.
			out = cli("audit", "replay", "--crisis", c.id)
			if l := lineWith(out, "outside"); !strings.Contains(l, c.says) {
				t.Errorf("audit replay %s: want an outside entry %q\n%s", c.id, c.says, out)
			}
			if c.id == reset {
				afterReset(t, s, tc, reset, chain.GetRecords(), desc.GetWorkflowExecutionInfo().GetExecution().GetRunId())
			}
		})
	}
}

// afterReset: the new run re-published the crisis's opening under its own
// event ids, so the chain holds both runs' events, each record naming its
// run; the replaced run's records stay. A record missing or forged after the
// reset is still reported by reconcile.
func afterReset(t *testing.T, s *stack.Stack, tc client.Client, id string, records []*demarchev1.AuditRecord, oldRun string) {
	ctx := context.Background()
	d, err := tc.DescribeWorkflowExecution(ctx, crisis.WorkflowID(id), "")
	if err != nil {
		t.Fatal(err)
	}
	newRun := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	if newRun == oldRun {
		t.Fatalf("run %s not replaced by the reset", oldRun)
	}
	opened := map[string]string{} // run -> CrisisOpened event id
	var newRunRecord *demarchev1.AuditRecord
	for _, r := range records {
		if strings.HasSuffix(r.GetEventType(), ".crisis_opened.v1") {
			opened[r.GetRunId()] = r.GetEventId()
		}
		if r.GetRunId() == newRun && newRunRecord == nil {
			newRunRecord = r
		}
	}
	if opened[oldRun] == "" || opened[newRun] == "" || opened[oldRun] == opened[newRun] {
		t.Errorf("CrisisOpened records by run: %v; want one of run %s and one of run %s, under different event ids", opened, oldRun, newRun)
	}
	hs, err := audit.FetchHistories(ctx, tc, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 {
		t.Errorf("%d histories of crisis %s, want the new run's and the replaced run's", len(hs), id)
	}
	if rep, err := audit.Reconcile(hs, records); err != nil || !rep.OK() {
		t.Fatalf("reconcile of the chain as read: %v %v", err, rep.Error())
	}
	// Missing: the chain without the new run's first record.
	var without []*demarchev1.AuditRecord
	for _, r := range records {
		if r != newRunRecord {
			without = append(without, r)
		}
	}
	rep, err := audit.Reconcile(hs, without)
	if err != nil {
		t.Fatal(err)
	}
	if newRunRecord == nil || rep.OK() || len(rep.MissingEvents) != 1 || rep.MissingEvents[0].RunID != newRun {
		t.Errorf("a record of the new run missing: %+v %v", rep, rep.Error())
	}
	// Forged: with the worker's credentials, an event said to come from the
	// new run at a history event that published nothing. The guard chains
	// it (it names a run and history event of the crisis's workflow);
	// reconcile names it.
	wnc, err := nats.Connect(s.NATSURLFor(natsauth.Worker), natsx.InboxOption(s.NATSURLFor(natsauth.Worker)))
	if err != nil {
		t.Fatal(err)
	}
	defer wnc.Close()
	wjs, err := jetstream.New(wnc)
	if err != nil {
		t.Fatal(err)
	}
	region, _ := demarchev1.RegionOf("NE")
	if _, err := eventbus.NewPublisher(wjs, crisis.EventSource).Publish(ctx, eventbus.Route{Region: region, Country: "NE", CrisisID: id}, eventbus.Event{
		ID: "forged-after-reset", Subject: id, Time: time.Now(), Origin: eventbus.Origin{WorkflowID: crisis.WorkflowID(id), RunID: newRun, HistoryEventID: 2},
		Data: &demarchev1.StageEntered{CrisisId: id, Stage: demarchev1.Stage_STAGE_FACT_FINDING, EnteredAt: timestamppb.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	var out string
	waitFor(t, func() bool {
		out, err = runCLI(t, s, "audit", "reconcile", "--crisis", id)
		return err != nil && strings.Contains(out, "forged-after-reset")
	})
	if l := lineWith(out, "forged-after-reset"); !strings.Contains(l, "MISMATCH") || !strings.Contains(l, "no history entry") {
		t.Errorf("forged record after the reset: %q\n%s", l, out)
	}
}
