package stack_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/workflows/crisis"
)

// partnerHook is a partner organisation's webhook endpoint: it checks every
// delivery's signature over the body it received and keeps what it got.
type partnerHook struct {
	secret []byte
	mu     sync.Mutex
	got    []hookDelivery
}

type hookDelivery struct {
	ceID, ceType string
	body         []byte
	header       http.Header
	ev           eventbus.Event
	err          error // signature or decoding
}

func (h *partnerHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	d := hookDelivery{ceID: r.Header.Get(eventbus.HeaderID), ceType: r.Header.Get(eventbus.HeaderType), body: body, header: r.Header.Clone()}
	d.err = partners.Verify(h.secret, r.Header.Get(partners.SignatureHeader), body, time.Now(), 5*time.Minute)
	if d.err == nil {
		ce := nats.Header{}
		for k, v := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "ce-") || strings.EqualFold(k, "content-type") {
				ce[strings.ToLower(k)] = v
			}
		}
		d.ev, d.err = eventbus.Decode(ce, body)
	}
	h.mu.Lock()
	h.got = append(h.got, d)
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *partnerHook) deliveries() []hookDelivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// TestPartnerFeedCarriesNoInternals runs a restricted crisis shared with
// ECOWAS and the AU from warning to closure on the real stack, with every
// internal a partner must not learn planted in it: decision rationales, an
// envoy's and a standby team's roster ids, a fund and an amount, reasons for
// an escalation and a skipped stage, lessons, and the AU's own role. ECOWAS
// reads its stream with its own credential through its one durable consumer,
// and its webhook (signed) receives the same copies: the opening, the stage
// notices, the severity change, its own role and the closure arrive and
// decode with the platform's rules; no decision, disbursement or deadline
// arrives, and none of the planted strings appears in any header or body.
func TestPartnerFeedCarriesNoInternals(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the embedded stack; skipped with -short")
	}
	// ECOWAS gets a webhook: the embedded registry with one more field.
	hook := &partnerHook{secret: []byte("ecowas-webhook-secret-0123456789")}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	var reg map[string]any
	if err := json.Unmarshal(partners.DefaultRegistry, &reg); err != nil {
		t.Fatal(err)
	}
	for _, p := range reg["partners"].([]any) {
		if p := p.(map[string]any); p["name"] == "ECOWAS" {
			p["webhook"] = map[string]any{"url": srv.URL, "secret": string(hook.secret)}
		}
	}
	regFile := filepath.Join(t.TempDir(), "partners.json")
	b, _ := json.Marshal(reg)
	if err := os.WriteFile(regFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	s, err := stack.Start(context.Background(), stack.Config{DataDir: dataDir, TemporalLogLevel: "error", Codec: testCodec(t, dataDir), PartnersRegistry: regFile},
		fileLogger(t, t.TempDir()))
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	defer s.Stop()

	tc := temporalClient(t, s)
	ctx := context.Background()
	cli := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, s, args...)
		if err != nil {
			t.Fatalf("demarche %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	var id string
	waitPending := func(kind string) {
		t.Helper()
		waitPendingKind(t, tc, id, kind)
	}

	// What ECOWAS must never read.
	planted := []string{"PLANTED", "env-amara-diallo", "amara", "sb-fatou-sow", "fatou", "flexible-financing", "123457",
		"FR-PLANTED", `"AU"`, "au-desk", "planted-head", "planted-alice", "planted-bob", "planted-liaison"}
	id = openedID(t, cli("crisis", "open", "--title", "Partner feed: standoff in Niamey", "--country", "NE", "--type", "constitutional-crisis",
		"--severity", "3", "--confidentiality", "restricted", "--share-with", "ECOWAS,AU", "--as", "planted-head"))
	waitPending("triage")
	cli("crisis", "decide", "triage", id, "--as", "planted-head", "--rationale", "PLANTED-RATIONALE-triage", "--assessment", "PLANTED-ASSESSMENT")
	cli("crisis", "escalate", id, "--as", "planted-head", "--reason", "PLANTED-REASON-escalate")
	cli("crisis", "partner-role", id, "--partner", "AU", "--role", "support", "--as", "au-desk")
	waitFor(t, func() bool { // ECOWAS acknowledges its own role through the partners service
		_, err := runCLI(t, s, "partner", "ack-role", "--partner", "ECOWAS", "--crisis", id, "--role", "lead", "--as", "planted-liaison")
		return err == nil
	})
	waitPending("good-offices")
	cli("crisis", "decide", "good-offices", id, "--as", "planted-head", "--rationale", "PLANTED-RATIONALE-good-offices", "--option", "quiet-diplomacy")
	waitPending("envoy-appointment")
	cli("crisis", "decide", "appoint-envoy", id, "--as", "planted-head", "--rationale", "PLANTED-RATIONALE-envoy", "--envoy", "env-amara-diallo", "--standby-team", "sb-fatou-sow")
	cli("crisis", "decide", "deployed", id, "--as", "planted-head", "--rationale", "PLANTED-RATIONALE-deployed", "--location", "PLANTED-LOCATION")
	waitPending("funding-request")
	cli("crisis", "decide", "request-funds", id, "--as", "planted-alice", "--rationale", "PLANTED-RATIONALE-request", "--funding-request", "FR-PLANTED",
		"--fund", "flexible-financing", "--amount", "123457", "--purpose", "PLANTED-PURPOSE")
	waitPending("funding-decision")
	cli("crisis", "decide", "decide-funds", id, "--as", "planted-bob", "--rationale", "PLANTED-RATIONALE-approve", "--funding-request", "FR-PLANTED", "--approve")
	waitFor(t, func() bool {
		st, err := crisis.State(ctx, tc, id)
		return err == nil && len(st.GetActiveStages()) == 1 && st.GetActiveStages()[0] == demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP
	})
	cli("crisis", "skip", id, "--stage", "sustained-follow-up", "--as", "planted-head", "--reason", "PLANTED-REASON-skip")
	waitPending("closure")
	cli("crisis", "decide", "close", id, "--as", "planted-head", "--rationale", "PLANTED-RATIONALE-close", "--outcome", "averted", "--lesson", "PLANTED-LESSON")

	// ECOWAS reads its stream as ECOWAS: its credential, its inbox prefix,
	// its one durable consumer.
	pid := natsauth.PartnerIdentity("ECOWAS")
	nc, err := nats.Connect(s.NATSURLFor(pid), nats.CustomInboxPrefix(natsauth.InboxPrefix(pid)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pjs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := pjs.CreateOrUpdateConsumer(ctx, partners.PartnerStream("ECOWAS"), jetstream.ConsumerConfig{
		Durable: "ECOWAS", FilterSubject: partners.PartnerSubjects("ECOWAS"), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("ECOWAS's consumer: %v", err)
	}
	type received struct {
		ceID, ceType string
		data         proto.Message
	}
	var stream []received
	closed := false
	deadline := time.Now().Add(2 * time.Minute)
	for !closed {
		if time.Now().After(deadline) {
			t.Fatalf("ECOWAS's stream has no closure of %s after %d events", id, len(stream))
		}
		batch, err := cons.Fetch(50, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			h := m.Headers()
			raw := string(m.Data()) + " " + m.Subject()
			for k, vs := range h {
				raw += " " + k + ": " + strings.Join(vs, ",")
			}
			ev, err := eventbus.Decode(h, m.Data())
			if err != nil {
				t.Errorf("ECOWAS cannot decode %s (%s) with the platform's rules: %v", h.Get(eventbus.HeaderID), h.Get(eventbus.HeaderType), err)
			} else {
				j, _ := protojson.Marshal(ev.Data)
				raw += " " + string(j)
				stream = append(stream, received{ev.ID, ev.Type, ev.Data})
			}
			for _, p := range planted {
				if strings.Contains(raw, p) {
					t.Errorf("ECOWAS's stream: %s (%s) carries %q: %s", h.Get(eventbus.HeaderID), h.Get(eventbus.HeaderType), p, raw)
				}
			}
			if h.Get(eventbus.HeaderWorkflowRun) != "" || h.Get(nats.MsgIdHdr) != "ECOWAS-"+h.Get(eventbus.HeaderID) {
				t.Errorf("ECOWAS's stream: %s has workflow run %q and Nats-Msg-Id %q", h.Get(eventbus.HeaderID), h.Get(eventbus.HeaderWorkflowRun), h.Get(nats.MsgIdHdr))
			}
			if h.Get(eventbus.HeaderSubject) == id && strings.HasSuffix(h.Get(eventbus.HeaderType), ".crisis_closed.v1") {
				closed = true
			}
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		if batch.Error() != nil && !strings.Contains(batch.Error().Error(), "timeout") {
			t.Fatal(batch.Error())
		}
	}
	// The platform's own events of the crisis (all published: the closure,
	// the last, reached ECOWAS) did carry them all.
	_, ojs := jsOf(t, s)
	platform := map[string]string{} // ce-id -> ce-type
	var internal strings.Builder
	oc, err := ojs.OrderedConsumer(ctx, eventbus.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventbus.CrisisEvents(id)}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return streamCount(t, ojs, eventbus.CrisisEvents(id)) > 0 })
	for n, i := streamCount(t, ojs, eventbus.CrisisEvents(id)), uint64(0); i < n; i++ {
		m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		platform[m.Headers().Get(eventbus.HeaderID)] = m.Headers().Get(eventbus.HeaderType)
		if ev, err := eventbus.Decode(m.Headers(), m.Data()); err == nil {
			j, _ := protojson.Marshal(ev.Data)
			internal.Write(j)
		}
	}
	for _, s := range []string{"PLANTED-RATIONALE-envoy", "env-amara-diallo", "123457", "PLANTED-REASON-skip", "PLANTED-LESSON", "au-desk"} {
		if !strings.Contains(internal.String(), s) {
			t.Fatalf("the platform's own events do not carry %q: the test plants nothing", s)
		}
	}

	types := map[string]int{}
	for _, r := range stream {
		if _, ok := platform[r.ceID]; !ok {
			t.Errorf("ECOWAS received %s (%s), which is not one of the crisis's events", r.ceID, r.ceType)
		}
		types[strings.TrimSuffix(strings.TrimPrefix(r.ceType, "org.demarche.crisis."), ".v1")]++
		switch d := r.data.(type) {
		case *demarchev1.CrisisOpened:
			if d.GetCrisis().GetTitle() != "Partner feed: standoff in Niamey" || !slices.Equal(d.GetCrisis().GetSharedWith(), []string{"ECOWAS"}) || d.GetCrisis().GetOpenedBy() != "" {
				t.Errorf("ECOWAS's opening: %v", d)
			}
		case *demarchev1.CrisisClosed:
			if d.GetOutcome() != demarchev1.Outcome_OUTCOME_AVERTED || d.GetClosedAt() == nil {
				t.Errorf("ECOWAS's closure: %v", d)
			}
		case *demarchev1.PartnerRoleAcknowledged:
			if d.GetAck().GetPartner() != "ECOWAS" || d.GetAck().GetRole() != demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD {
				t.Errorf("ECOWAS's role: %v", d)
			}
		case *demarchev1.SeverityChanged:
			if d.GetTo() != 4 {
				t.Errorf("ECOWAS's severity change: %v", d)
			}
		}
	}
	t.Logf("ECOWAS received %d of the crisis's %d events: %v", len(stream), len(platform), types)
	for _, want := range []string{"crisis_opened", "stage_entered", "stage_completed", "stage_skipped", "severity_changed", "partner_role_acknowledged", "crisis_closed"} {
		if types[want] == 0 {
			t.Errorf("ECOWAS received no %s notice: %v", want, types)
		}
	}
	if types["partner_role_acknowledged"] != 1 {
		t.Errorf("ECOWAS received %d role acknowledgements, want its own alone", types["partner_role_acknowledged"])
	}
	for _, never := range []string{"decision_recorded", "funds_disbursed", "deadline_at_risk", "deadline_breached", "warning_attached", "warning_raised"} {
		if types[never] != 0 {
			t.Errorf("ECOWAS received %d %s events", types[never], never)
		}
	}

	// ECOWAS's webhook: the same copies, each signed over what it received.
	waitFor(t, func() bool {
		for _, d := range hook.deliveries() {
			if d.ev.Type != "" && strings.HasSuffix(d.ev.Type, ".crisis_closed.v1") && d.ev.Subject == id {
				return true
			}
		}
		return false
	})
	byID := map[string]proto.Message{}
	for _, r := range stream {
		byID[r.ceID] = r.data
	}
	seen := map[string]bool{}
	for _, d := range hook.deliveries() {
		if d.err != nil {
			t.Errorf("webhook delivery %s (%s): %v", d.ceID, d.ceType, d.err)
			continue
		}
		if d.ev.Subject != id {
			continue
		}
		seen[d.ceID] = true
		if want, ok := byID[d.ceID]; !ok || !proto.Equal(want, d.ev.Data) {
			t.Errorf("webhook delivery %s (%s) is not ECOWAS's stream copy: %v, stream %v", d.ceID, d.ceType, d.ev.Data, want)
		}
		raw := string(d.body)
		for k, vs := range d.header {
			raw += " " + k + ": " + strings.Join(vs, ",")
		}
		j, _ := protojson.Marshal(d.ev.Data)
		raw += " " + string(j)
		for _, p := range planted {
			if strings.Contains(raw, p) {
				t.Errorf("ECOWAS's webhook: %s (%s) carries %q", d.ceID, d.ceType, p)
			}
		}
	}
	if len(seen) != len(byID) {
		t.Errorf("the webhook received %d of the crisis's events, the stream %d", len(seen), len(byID))
	}
}
