package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/cli"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/workflows/crisis"
)

// runCLIWith runs the CLI against the stack's API with a token of the given
// subject and roles alone (runCLI's --as gives every role).
func runCLIWith(t *testing.T, s *stack.Stack, subject string, roles []string, args ...string) (string, error) {
	t.Helper()
	root := cli.NewRoot(stack.NewDevCmd)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--server", s.APIURL(), "--token", testToken(t, s, subject, roles...), "--log-level", "error"))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestVoluntaryContributionOnTheLedger: a funding officer credits a member
// state's voluntary contribution (¶64 "Voluntary contributions remain essential")
// to a fund through the API (demarche fund contribute): a ledger line, a
// record on the global audit chain naming who, the balance up by the amount,
// and `demarche audit reconcile --contributions` matching the two. A desk
// officer is refused, and so are a bad amount, another currency and an
// unknown fund, each naming the field.
func TestVoluntaryContributionOnTheLedger(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	ctx := context.Background()
	balance := func() *demarchev1.FundBalance {
		t.Helper()
		out, err := runCLI(t, s, "fund", "balance", "--fund", "flexible-financing", "-o", "json")
		if err != nil {
			t.Fatalf("fund balance: %v\n%s", err, out)
		}
		var b struct {
			Funds []struct {
				BalanceUsd     json.Number `json:"balanceUsd"`
				ContributedUsd json.Number `json:"contributedUsd"`
			} `json:"funds"`
		}
		if err := json.Unmarshal([]byte(out), &b); err != nil || len(b.Funds) != 1 {
			t.Fatalf("fund balance: %v\n%s", err, out)
		}
		bal, _ := b.Funds[0].BalanceUsd.Int64()
		con, _ := b.Funds[0].ContributedUsd.Int64()
		return &demarchev1.FundBalance{BalanceUsd: bal, ContributedUsd: con}
	}
	before := balance()
	officer := []string{"funding-officer"}
	for _, tc := range []struct {
		name  string
		roles []string
		args  []string
		says  string // in the answer (or the refusal)
		ok    bool
	}{
		{"a funding officer credits Norway's contribution", officer,
			[]string{"--donor", "NO", "--amount", "250000", "--currency", "USD", "--reference", "NO-2026-PD-17"}, "credited 250000 USD from NO to flexible-financing", true},
		{"the same reference again changes nothing", officer,
			[]string{"--donor", "NO", "--amount", "250000", "--reference", "NO-2026-PD-17"}, "already recorded: nothing changed", true},
		{"a desk officer may not", []string{"desk-officer"},
			[]string{"--donor", "NO", "--amount", "1000", "--reference", "NO-DESK"}, "funds.contribute needs one of the roles funding-officer, fund-manager", false},
		{"a negative amount", officer,
			[]string{"--donor", "NO", "--amount=-5", "--reference", "NO-NEG"}, "contribution.amount", false},
		{"another currency", officer,
			[]string{"--donor", "DE", "--amount", "1000", "--currency", "EUR", "--reference", "DE-EUR"}, "contribution.currency", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLIWith(t, s, "fiona", tc.roles, append([]string{"fund", "contribute", "--fund", "flexible-financing"}, tc.args...)...)
			if (err == nil) != tc.ok || !strings.Contains(out+errText(err), tc.says) {
				t.Fatalf("got %v:\n%s\nwant ok=%v saying %q", err, out, tc.ok, tc.says)
			}
		})
	}
	if out, err := runCLIWith(t, s, "fiona", officer, "fund", "contribute", "--fund", "no-such-fund", "--donor", "NO", "--amount", "1", "--reference", "X-1"); err == nil ||
		!strings.Contains(out+errText(err), `no fund "no-such-fund"`) {
		t.Fatalf("unknown fund: %v\n%s", err, out)
	}

	// The balance moved by the contribution alone (once, for two calls).
	after := balance()
	if after.GetBalanceUsd() != before.GetBalanceUsd()+250_000 || after.GetContributedUsd() != before.GetContributedUsd()+250_000 {
		t.Fatalf("balance %d -> %d, contributed %d -> %d: want +250000 each", before.GetBalanceUsd(), after.GetBalanceUsd(), before.GetContributedUsd(), after.GetContributedUsd())
	}
	// The ledger line says who gave what, and who recorded it.
	out, err := runCLI(t, s, "fund", "ledger", "--fund", "flexible-financing")
	if err != nil || !strings.Contains(out, "contribution") || !strings.Contains(out, "NO (ref NO-2026-PD-17, by fiona)") {
		t.Fatalf("fund ledger: %v\n%s", err, out)
	}
	// The global chain holds the act, its principal the officer.
	nc, _ := jsAs(t, s, natsauth.Gateway) // chains are read through the gateway
	chain, err := audit.FetchChain(ctx, nc, "", "auditor-test")
	if err != nil {
		t.Fatal(err)
	}
	var records []*demarchev1.AuditRecord
	for _, r := range chain.GetRecords() {
		if r.GetEventType() == funding.FundContributionEventType {
			records = append(records, r)
		}
	}
	if len(records) != 1 || records[0].GetPrincipal() != "fiona" || !strings.Contains(records[0].GetDetail(), "250000 USD from NO") {
		t.Fatalf("fund-contribution records on the global chain: %v", records)
	}
	// And the reconciliation accounts for it.
	out, err = runCLI(t, s, "audit", "reconcile", "--contributions", "--as", "auditor-test")
	if err != nil || !strings.Contains(out, "contributions: 1 line(s)") || !strings.Contains(out, "flexible-financing: 250000 USD contributed") ||
		!strings.Contains(out, "every contribution line has its audit record") {
		t.Fatalf("audit reconcile --contributions: %v\n%s", err, out)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestNewPartnerReceivesItsCopy: ICGLR, new in the registry
// (¶19 "International Conference on the Great Lakes Region"), has its NATS
// identity and stream, and receives its own copy of a restricted crisis
// shared with it, on its stream, read with its own credentials.
func TestNewPartnerReceivesItsCopy(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	ctx := context.Background()
	out, err := runCLI(t, s, "crisis", "open", "--title", "Great Lakes: tension in the Kivus", "--country", "CD", "--type", "intercommunal-violence",
		"--severity", "3", "--confidentiality", "restricted", "--share-with", "ICGLR", "--as", "head-test")
	if err != nil {
		t.Fatalf("crisis open: %v\n%s", err, out)
	}
	id := openedID(t, out)

	pid := natsauth.PartnerIdentity("ICGLR")
	nc, err := nats.Connect(s.NATSURLFor(pid), nats.CustomInboxPrefix(natsauth.InboxPrefix(pid)))
	if err != nil {
		t.Fatalf("ICGLR connects with its own credentials: %v", err)
	}
	defer nc.Close()
	pjs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := pjs.CreateOrUpdateConsumer(ctx, partners.PartnerStream("ICGLR"), jetstream.ConsumerConfig{
		Durable: "ICGLR", FilterSubject: partners.PartnerSubjects("ICGLR"), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("ICGLR's consumer on its stream: %v", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for got := false; !got; {
		if time.Now().After(deadline) {
			t.Fatalf("ICGLR's stream carries nothing of %s", id)
		}
		batch, err := cons.Fetch(20, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if m.Headers().Get(eventbus.HeaderSubject) == id {
				if _, err := eventbus.Decode(m.Headers(), m.Data()); err != nil {
					t.Fatalf("ICGLR cannot decode its copy: %v", err)
				}
				got = true
			}
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// ICGLR's credentials read its own stream alone.
	if _, err := pjs.CreateOrUpdateConsumer(ctx, partners.PartnerStream("ECOWAS"), jetstream.ConsumerConfig{
		Durable: "ECOWAS", FilterSubject: partners.PartnerSubjects("ECOWAS"), AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
		t.Fatal("ICGLR's credentials open a consumer on ECOWAS's stream")
	}
}

// TestHandOverToThePeacebuildingCommission: a crisis closes handed over to
// the Peacebuilding Commission (¶15 "The Peacebuilding Commission"); the
// closure event and the crisis page say so. A hand-over to a regional
// organisation follows the division of labour: one that only supported is
// refused, naming the rule; a recipient named without a regional
// organisation, or an organisation with another recipient, is refused naming
// the field.
func TestHandOverToThePeacebuildingCommission(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	ctx := context.Background()
	tc := temporalClient(t, s)
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, s, args...)
		if err != nil {
			t.Fatalf("demarche %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	id := openedID(t, cli("crisis", "open", "--title", "Hand-over: Conakry after the transition", "--country", "GN", "--type", "general",
		"--severity", "3", "--confidentiality", "restricted", "--share-with", "ECOWAS,AU", "--as", "head-test"))
	cli("crisis", "partner-role", id, "--partner", "AU", "--role", "support", "--as", "desk-test")
	for _, stage := range []string{"warning", "good-offices", "fact-finding", "envoy-deployment", "rapid-response-funding", "sustained-follow-up"} {
		waitFor(t, func() bool {
			_, err := runCLI(t, s, "crisis", "skip-stage", id, "--stage", stage, "--as", "duty-test", "--reason", "test: straight to closure")
			return err == nil
		})
	}
	waitFor(t, func() bool {
		st, err := crisis.State(ctx, tc, id)
		if err != nil {
			return false
		}
		for _, p := range st.GetPendingDecisions() {
			if p.GetKind() == "closure" {
				return true
			}
		}
		return false
	})
	closeWith := func(extra ...string) (string, error) {
		return runCLI(t, s, append([]string{"crisis", "decide", "close", id, "--as", "head-test", "--rationale", "transition completed",
			"--outcome", "contained", "--lesson", "sustained engagement paid off"}, extra...)...)
	}
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"a supporting partner does not take over", []string{"--hand-over-to", "regional-organisation", "--hand-over-partner", "AU"},
			"rule hand-over-recipient: AU's role in this crisis is support"},
		{"a partner without a role does not take over", []string{"--hand-over-to", "regional-organisation", "--hand-over-partner", "ECOWAS"},
			"rule hand-over-recipient: ECOWAS has no role in this crisis"},
		{"a regional organisation is named", []string{"--hand-over-to", "regional-organisation"}, "--hand-over-partner: is required"},
		{"an organisation only with a regional hand-over", []string{"--hand-over-to", "peacebuilding-commission", "--hand-over-partner", "ECOWAS"}, "--hand-over-partner: names a regional organisation"},
		{"a known recipient", []string{"--hand-over-to", "security-council"}, "hand-over-to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := closeWith(tc.args...)
			if err == nil || !strings.Contains(out+errText(err), tc.says) {
				t.Fatalf("got %v:\n%s\nwant a refusal saying %q", err, out, tc.says)
			}
		})
	}
	if out, err := closeWith("--hand-over-to", "peacebuilding-commission"); err != nil {
		t.Fatalf("closing with a hand-over to the Peacebuilding Commission: %v\n%s", err, out)
	}
	run := tc.GetWorkflow(ctx, crisis.WorkflowID(id), "")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := run.Get(wctx, nil); err != nil {
		t.Fatalf("crisis did not complete: %v", err)
	}
	if out := cli("crisis", "show", id); !strings.Contains(out, "handed over to the Peacebuilding Commission") {
		t.Fatalf("crisis show does not name the hand-over:\n%s", out)
	}
	// So does the console's crisis page.
	if _, page := consoleGet(t, s.APIURL(), readToken(t, s.TokenFile("duty")), "/console/crises/"+id); !strings.Contains(page, `handed over to <strong id="hand-over">the Peacebuilding Commission</strong>`) {
		t.Fatalf("the console's crisis page does not name the hand-over:\n%s", page)
	}
	// The closure event carries the recipient.
	_, js := jsOf(t, s)
	oc, err := js.OrderedConsumer(ctx, eventbus.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventbus.CrisisEvents(id)}})
	if err != nil {
		t.Fatal(err)
	}
	var closed *demarchev1.CrisisClosed
	for n, i := streamCount(t, js, eventbus.CrisisEvents(id)), uint64(0); i < n && closed == nil; i++ {
		m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if ev, err := eventbus.Decode(m.Headers(), m.Data()); err == nil {
			closed, _ = ev.Data.(*demarchev1.CrisisClosed)
		}
	}
	if closed.GetHandOverTo() != demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_PEACEBUILDING_COMMISSION || closed.GetHandOverPartner() != "" {
		t.Fatalf("CrisisClosed: %v", closed)
	}
}
