package partners_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/partners"
)

// planted are strings of a crisis's inside that no partner may read.
var planted = []string{"PLANTED-RATIONALE", "PLANTED-ENVOY", "PLANTED-FUND", "PLANTED-REASON", "PLANTED-LESSON", "PLANTED-OPENER", "PLANTED-ROLE-BY", "OTHERORG"}

// TestPartnersReceiveTheirCopyOnly: a crisis shared with PA whose events
// carry a decision's rationale, an envoy, a fund and an amount, reasons,
// lessons, who opened it and another organisation (OTHERORG, added to the sharing
// and taking a role). PA's stream and PA's webhook receive the stage,
// severity, closure and own-role notices, each signed and de-duplicated
// under PA-<ce-id>, and none of those strings, no decision, no
// disbursement, nothing of OTHERORG, and no workflow extension attribute.
func TestPartnersReceiveTheirCopyOnly(t *testing.T) {
	t.Parallel()
	b := startNATS(t)
	recv, srv := newReceiver(t, "secret-of-partner-a-0123")
	reg := webhookRegistry(t, `{"partners": [
		{"name": "PA", "title": "Partner A", "webhook": {"url": "URL_A", "secret_env": "SECRET_A"}},
		{"name": "OTHERORG", "title": "Partner B"}]}`, map[string]string{"A": srv.URL})
	startService(t, fastConfig(b.url, reg), nil)

	c := newCrisis("NE-20261207-COPY1", "NE", coup, restricted, "PA")
	c.OpenedBy = "PLANTED-OPENER"
	id, now := c.GetId(), timestamppb.Now()
	decision := demarchev1.NewDecisionRequest("duty-PLANTED-ROLE-BY", "PLANTED-RATIONALE",
		&demarchev1.GoodOfficesEngagement{Type: demarchev1.EngagementKind_ENGAGEMENT_KIND_VISIT, By: "PLANTED-ENVOY", With: "the junta"})
	events := []struct {
		id        string
		data      proto.Message
		delivered bool
	}{
		{"opened", &demarchev1.CrisisOpened{Crisis: c}, true},
		{"warning", &demarchev1.StageEntered{CrisisId: id, Stage: demarchev1.Stage_STAGE_WARNING, EnteredAt: now}, true},
		{"decision", &demarchev1.DecisionRecorded{CrisisId: id, Decision: &demarchev1.DecisionRecord{Number: 1, Kind: "engagement",
			Principal: "duty-PLANTED-ROLE-BY", Rationale: "PLANTED-RATIONALE", DecidedAt: now, Request: decision}}, false},
		{"paid", &demarchev1.FundsDisbursed{CrisisId: id, RequestId: "req-1", Fund: "PLANTED-FUND", AmountUsd: 7654321, DisbursementKey: "key-PLANTED-FUND"}, false},
		{"skipped", &demarchev1.StageSkipped{CrisisId: id, Stage: demarchev1.Stage_STAGE_FACT_FINDING, Principal: "duty-PLANTED-ROLE-BY", Reason: "PLANTED-REASON"}, true},
		{"severity", &demarchev1.SeverityChanged{CrisisId: id, From: 3, To: 4, Principal: "duty-PLANTED-ROLE-BY", Reason: "PLANTED-REASON"}, true},
		{"shared-pb", &demarchev1.SharingChanged{CrisisId: id, SharedWith: []string{"PA", "OTHERORG"}, Added: []string{"OTHERORG"}, Principal: "duty-PLANTED-ROLE-BY", Reason: "PLANTED-REASON"}, false},
		{"role-pb", &demarchev1.PartnerRoleAcknowledged{CrisisId: id, Ack: &demarchev1.PartnerRoleAck{Partner: "OTHERORG", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_SUPPORT, Principal: "pb-desk", AcknowledgedAt: now}}, false},
		{"role-pa", &demarchev1.PartnerRoleAcknowledged{CrisisId: id, Ack: &demarchev1.PartnerRoleAck{Partner: "PA", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD,
			Principal: "duty-PLANTED-ROLE-BY", AcknowledgedAt: now, Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}}}, true},
		{"closed", &demarchev1.CrisisClosed{CrisisId: id, ClosedAt: now, Outcome: demarchev1.Outcome_OUTCOME_AVERTED,
			Figures: &demarchev1.ClosureFigures{FundingDisbursedUsd: 7654321}, Lessons: []string{"PLANTED-LESSON"}}, true},
	}
	ctx := context.Background()
	var want []string
	for _, e := range events {
		if err := e.data.(interface{ Validate() error }).Validate(); err != nil {
			t.Fatalf("the test's %s event is invalid: %v", e.id, err)
		}
		if _, err := b.pub.Publish(ctx, eventbus.RouteOf(c), eventbus.Event{ID: id + "-" + e.id, Time: time.Now(), Data: e.data}); err != nil {
			t.Fatal(err)
		}
		if e.delivered {
			want = append(want, id+"-"+e.id)
		}
	}

	// PA's stream, read as PA reads it: in order, every message.
	eventually(t, "PA receives the closure", hasSubject(t, b, "PA", c, "crisis_closed"))
	st, err := b.js.Stream(ctx, partners.PartnerStream("PA"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ceID := m.Header.Get(eventbus.HeaderID)
		got = append(got, ceID)
		raw := string(m.Data) + " " + strings.Join(headerValues(m.Header), " ")
		for _, s := range planted {
			if strings.Contains(raw, s) {
				t.Errorf("PA's stream: %s carries %q", ceID, s)
			}
		}
		if m.Header.Get(nats.MsgIdHdr) != "PA-"+ceID || m.Header.Get(eventbus.HeaderWorkflowID) != "" || m.Header.Get(eventbus.HeaderWorkflowRun) != "" {
			t.Errorf("PA's stream: %s has Nats-Msg-Id %q and workflow %q run %q; want PA-<ce-id> and no workflow attributes",
				ceID, m.Header.Get(nats.MsgIdHdr), m.Header.Get(eventbus.HeaderWorkflowID), m.Header.Get(eventbus.HeaderWorkflowRun))
		}
		ev, err := eventbus.Decode(m.Header, m.Data)
		if err != nil {
			t.Errorf("PA's stream: %s does not decode (the copy must pass the event's rules): %v", ceID, err)
			continue
		}
		switch d := ev.Data.(type) {
		case *demarchev1.CrisisOpened:
			if d.GetCrisis().GetTitle() != c.GetTitle() || !slices.Equal(d.GetCrisis().GetSharedWith(), []string{"PA"}) {
				t.Errorf("PA's opening: %v", d)
			}
		case *demarchev1.SeverityChanged:
			if d.GetTo() != 4 {
				t.Errorf("PA's severity change: %v", d)
			}
		case *demarchev1.CrisisClosed:
			if d.GetOutcome() != demarchev1.Outcome_OUTCOME_AVERTED || d.GetClosedAt() == nil || d.GetFigures() != nil {
				t.Errorf("PA's closure: %v", d)
			}
		case *demarchev1.PartnerRoleAcknowledged:
			if d.GetAck().GetRole() != demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD || d.GetAck().GetPrincipal() != "PA" {
				t.Errorf("PA's role: %v", d)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("PA's stream holds %v, want %v", got, want)
	}

	// PA's webhook: the same copies, signed over what it receives.
	eventually(t, "PA's webhook receives the closure", func() bool { return slices.Contains(recv.accepted(), id+"-closed") })
	if got := recv.accepted(); !slices.Equal(got, want) {
		t.Errorf("PA's webhook accepted %v, want %v", got, want)
	}
	for _, d := range recv.attempts() {
		if d.sigErr != nil {
			t.Errorf("webhook delivery %s: signature does not verify over the copy: %v", d.id, d.sigErr)
		}
		if d.data == nil {
			t.Errorf("webhook delivery %s does not decode", d.id)
			continue
		}
		body, _ := proto.Marshal(d.data)
		for _, s := range planted {
			if strings.Contains(string(body), s) {
				t.Errorf("PA's webhook: %s carries %q", d.id, s)
			}
		}
	}
}

func headerValues(h nats.Header) []string {
	var out []string
	for k, vs := range h {
		out = append(out, k)
		out = append(out, vs...)
	}
	return out
}
