package stack_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestForgeriesOnTheStack: with the worker's own credentials (the only
// identity NATS lets publish crisis events), forged events — a CrisisClosed
// whose ce-subject is not its crisis, one from another source, one that does
// not say which workflow run and history event it comes from — are refused
// by the audit service with an alarm (event on demarche.audit.alarm, record on
// the global chain), never chained; `audit verify` passes on the crisis's
// chain, which holds the genuine event alone. And `fund balance` shows the
// ledgers hash-linked and whole.
func TestForgeriesOnTheStack(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	ctx := context.Background()
	obs, err := nats.Connect(s.NATSURLFor(natsauth.Observer), natsx.InboxOption(s.NATSURLFor(natsauth.Observer)))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	alarms := make(chan *demarchev1.AuditAlarm, 16)
	if _, err := obs.Subscribe(audit.SubjectAlarm, func(m *nats.Msg) {
		var a demarchev1.AuditAlarm
		if proto.Unmarshal(m.Data, &a) == nil {
			alarms <- &a
		}
	}); err != nil {
		t.Fatal(err)
	}
	_ = obs.Flush()

	wnc, err := nats.Connect(s.NATSURLFor(natsauth.Worker), natsx.InboxOption(s.NATSURLFor(natsauth.Worker)))
	if err != nil {
		t.Fatal(err)
	}
	defer wnc.Close()
	wjs, _ := jetstream.New(wnc)
	pub := eventbus.NewPublisher(wjs, crisis.EventSource)
	const other = "GN-20261128-OTHER"
	out, err := runCLI(t, s, "crisis", "open", "--title", "Coup attempt", "--country", "GN", "--type", "unconstitutional-change", "--severity", "3")
	if err != nil {
		t.Fatalf("crisis open: %v\n%s", err, out)
	}
	id := openedID(t, out)
	route := eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "GN", CrisisID: id}
	origin := eventbus.Origin{WorkflowID: crisis.WorkflowID(id), RunID: "run-1", HistoryEventID: 7}
	closed := func(eid string) eventbus.Event {
		return eventbus.Event{ID: eid, Subject: id, Time: time.Now(), Origin: origin,
			Data: &demarchev1.CrisisClosed{CrisisId: id, ClosedAt: timestamppb.Now(), Outcome: demarchev1.Outcome_OUTCOME_AVERTED}}
	}
	forged := []eventbus.Event{closed("forged-subject"), closed("forged-source"), closed("forged-origin")}
	forged[0].Subject = other
	forged[1].Source = "/mallory"
	forged[2].Origin = eventbus.Origin{}
	for _, ev := range forged {
		if _, err := pub.Publish(ctx, route, ev); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	timeout := time.After(60 * time.Second)
	for len(seen) < len(forged) {
		select {
		case a := <-alarms:
			if a.GetKind() == audit.AlarmForgedEvent {
				seen[a.GetEventId()] = true
			}
		case <-timeout:
			t.Fatalf("alarms seen for %v, want all of %d forgeries", seen, len(forged))
		}
	}

	out, err = runCLI(t, s, "audit", "verify", "--crisis", id, "--as", "auditor-ada")
	if err != nil || !strings.Contains(out, "chain crisis."+id+" verifies") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	nc, _ := jsAs(t, s, natsauth.Gateway) // chains are read through the gateway
	own, err := audit.FetchChain(ctx, nc, id, "auditor-test")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := audit.FetchChain(ctx, nc, "", "auditor-test")
	if err != nil {
		t.Fatal(err)
	}
	var alarmRecords int
	for _, r := range append(own.GetRecords(), chain.GetRecords()...) {
		if strings.HasPrefix(r.GetEventId(), "forged") {
			t.Fatalf("forged event chained on the global chain: %v", r)
		}
		if r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_ALARM && strings.Contains(r.GetDetail(), "forged") {
			alarmRecords++
		}
	}
	if alarmRecords != len(forged) {
		t.Fatalf("%d alarm records on the global chain, want %d", alarmRecords, len(forged))
	}

	// The ledgers: hash-linked, whole, opened by dev on its new data folder.
	out, err = runCLI(t, s, "fund", "ledger", "--fund", "flexible-financing", "--as", "auditor-ada")
	if err != nil || !strings.Contains(out, "LINE") || !strings.Contains(out, "opening") {
		t.Fatalf("fund ledger: %v\n%s", err, out)
	}
	var l demarchev1.LedgerResponse
	if err := natsrpc.Call(ctx, nc, natsrpc.FundingLedger, &demarchev1.FundQuery{Fund: "flexible-financing"}, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.GetEntries()) == 0 || l.GetEntries()[0].GetOpenedBy() == "" || funding.VerifyLines("flexible-financing", l.GetEntries(), nil) != nil {
		t.Fatalf("ledger lines %v", l.GetEntries())
	}
}
