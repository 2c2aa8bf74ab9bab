package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestPartnerLiaisonView runs the real gateway (API and console) against a
// stand-in crisis shared with ECOWAS and OTHERORG, holding internal texts,
// amounts and roster ids: a duty officer's answer and page show them, a
// partner liaison of ECOWAS's show none of them (nor OTHERORG's role, nor who
// else it is shared with); the partner acknowledges ECOWAS's role from the
// page, and the control sent is ECOWAS's whatever the form says.
func TestPartnerLiaisonView(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	iss, err := authn.LoadOrCreateIssuer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := timestamppb.Now()
	c := &demarchev1.Crisis{Id: "GN-20261207-PART0", Title: "Coup attempt", CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA,
		CrisisType: demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, Severity: 4,
		Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedAt: now,
		OpenedBy: "planted-opener", SharedWith: []string{"ECOWAS", "OTHERORG"}}
	// Every planted text, amount and id a partner must not read.
	internal := []string{"PLANTED-RATIONALE", "plantedfund", "987654321", "987,654,321", "env-planted-envoy", "sb-planted-expert",
		"PLANTED-PURPOSE", "PLANTED-WARNING", "PLANTED-REFUSED", "PLANTED-SKIP-REASON", "planted-opener", "planted-playbook",
		"PLANTED-LESSON", "op-planted", "OTHERORG", "PLANTED-COMMENT"}
	st := &demarchev1.CrisisState{Crisis: c, CurrentStage: demarchev1.Stage_STAGE_GOOD_OFFICES,
		ActiveStages: []demarchev1.Stage{demarchev1.Stage_STAGE_GOOD_OFFICES}, Playbook: "planted-playbook", PlaybookVersion: "1",
		Timeline: []*demarchev1.StageRecord{
			{Stage: demarchev1.Stage_STAGE_FACT_FINDING, EnteredAt: now, CompletedAt: now, Status: demarchev1.StageStatus_STAGE_STATUS_SKIPPED, Reason: "PLANTED-SKIP-REASON", Run: 1},
			{Stage: demarchev1.Stage_STAGE_GOOD_OFFICES, EnteredAt: now, Status: demarchev1.StageStatus_STAGE_STATUS_RUNNING, Run: 1},
		},
		Decisions: []*demarchev1.DecisionRecord{
			{Number: 1, Kind: "funding-request", Principal: "op-planted", Rationale: "PLANTED-RATIONALE", DecidedAt: now,
				Request: &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_FundingRequest{FundingRequest: &demarchev1.FundingRequest{
					RequestId: "FR-1", Fund: "plantedfund", AmountUsd: 987654321, Purpose: "PLANTED-PURPOSE"}}}},
			{Number: 2, Kind: "envoy-appointment", Principal: "op-planted", Rationale: "PLANTED-RATIONALE", DecidedAt: now,
				Request: &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_EnvoyAppointment{EnvoyAppointment: &demarchev1.EnvoyAppointment{
					Envoy: "env-planted-envoy", StandbyTeam: []string{"sb-planted-expert"}}}}},
		},
		Warnings:       []*demarchev1.Warning{{Source: "op-planted", Summary: "PLANTED-WARNING", Severity: 4, ObservedAt: now}},
		RefusedSignals: []*demarchev1.RefusedSignal{{Signal: "sig-1", Reason: "PLANTED-REFUSED", At: now}},
		Lessons:        []string{"PLANTED-LESSON"},
		Comments:       []*demarchev1.Comment{{Principal: "op-planted", Text: "PLANTED-COMMENT", At: now}},
		Partners: []*demarchev1.PartnerRoleAck{
			{Partner: "OTHERORG", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_SUPPORT, Principal: "op-planted", AcknowledgedAt: now},
		},
		Figures:           &demarchev1.ClosureFigures{FundingDisbursedUsd: 987654321},
		PublicEngagements: 3, Engagements: 5,
	}
	var mu sync.Mutex
	var acks []*demarchev1.PartnerRoleAck
	h := NewHandler(nc, nil, iss.Verifier(), zap.NewNop(),
		WithCrisisStates(func(_ context.Context, id string) (*demarchev1.CrisisState, error) {
			if id != c.GetId() {
				return nil, fmt.Errorf("%w: %s", crisis.ErrNotFound, id)
			}
			return proto.Clone(st).(*demarchev1.CrisisState), nil
		}),
		WithControls(func(_ context.Context, id, _, update string, arg proto.Message) (*demarchev1.CrisisState, error) {
			ack, ok := arg.(*demarchev1.PartnerRoleAck)
			if id != c.GetId() || update != crisis.UpdatePartnerRole || !ok {
				return nil, fmt.Errorf("unexpected control %s %s %T", id, update, arg)
			}
			mu.Lock()
			defer mu.Unlock()
			acks = append(acks, proto.Clone(ack).(*demarchev1.PartnerRoleAck))
			after := proto.Clone(st).(*demarchev1.CrisisState)
			after.Partners = append(after.Partners, ack)
			return after, nil
		}))
	api := httptest.NewServer(h)
	t.Cleanup(api.Close)
	duty, err := iss.Mint(authn.Claims{Subject: "duty", Roles: []string{"duty-officer"}, Clearance: "public"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	partner, err := iss.Mint(authn.Claims{Subject: "liaison-ecowas", Roles: []string{"partner"}, Partner: "ECOWAS"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(req *http.Request) (int, string, http.Header) {
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	apiGet := func(token string) string {
		req, _ := http.NewRequest("GET", api.URL+"/v1/crises/"+c.GetId(), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		code, body, _ := do(req)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/crises/%s: %d %s", c.GetId(), code, body)
		}
		return body
	}
	page := func(token, path string) string {
		req, _ := http.NewRequest("GET", api.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
		code, body, _ := do(req)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		return body
	}

	report := func(token, format string) string {
		req, _ := http.NewRequest("GET", api.URL+"/v1/crises/"+c.GetId()+"/report?format="+format, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		code, body, _ := do(req)
		if code != http.StatusOK {
			t.Fatalf("GET report %s: %d %s", format, code, body)
		}
		return body
	}
	// The reports: the duty officer's has the comment and the lessons; the
	// partner's, in every format and on the timeline page, nothing internal.
	for _, f := range []string{"json", "csv", "html"} {
		if body := report(duty, f); !strings.Contains(body, "PLANTED-COMMENT") || !strings.Contains(body, "PLANTED-LESSON") {
			t.Errorf("the duty officer's %s report lacks the comment or the lesson:\n%.1500s", f, body)
		}
	}
	partnerReports := map[string]string{"timeline page": page(partner, "/console/crises/"+c.GetId()+"/timeline"),
		"console report": page(partner, "/console/crises/"+c.GetId()+"/report")}
	for _, f := range []string{"json", "csv", "html"} {
		partnerReports[f+" report"] = report(partner, f)
	}
	for where, body := range partnerReports {
		for _, s := range internal {
			if strings.Contains(body, s) {
				t.Errorf("the partner's %s shows %q", where, s)
			}
		}
		if !strings.Contains(body, c.GetId()) {
			t.Errorf("the partner's %s does not name the crisis", where)
		}
	}
	if strings.Contains(partnerReports["timeline page"], `id="form-comment"`) {
		t.Error("the partner's timeline page offers the comment form")
	}
	if req, _ := http.NewRequest("GET", api.URL+"/v1/crises/"+c.GetId()+"/report?format=pdf", nil); true {
		req.Header.Set("Authorization", "Bearer "+duty)
		if code, body, _ := do(req); code != http.StatusBadRequest || !strings.Contains(body, "allowed: json, csv, html") {
			t.Errorf("a report in an unknown format: %d %s", code, body)
		}
	}

	// The duty officer reads it all: the planted texts are there to be hidden.
	for where, body := range map[string]string{"API": apiGet(duty), "console": page(duty, "/console/crises/"+c.GetId())} {
		for _, s := range []string{"PLANTED-RATIONALE", "plantedfund", "env-planted-envoy", "PLANTED-WARNING", "PLANTED-SKIP-REASON", "planted-opener", "OTHERORG"} {
			if !strings.Contains(body, s) {
				t.Errorf("the duty officer's %s answer lacks %q", where, s)
			}
		}
		if strings.Contains(body, `id="form-partner-role"`) {
			t.Errorf("the duty officer's %s answer offers the partner's acknowledgement", where)
		}
	}
	// The partner reads where the crisis stands, and nothing internal.
	partnerPage := page(partner, "/console/crises/"+c.GetId())
	for where, body := range map[string]string{"API": apiGet(partner), "console": partnerPage} {
		for _, s := range internal {
			if strings.Contains(body, s) {
				t.Errorf("the partner's %s answer shows %q", where, s)
			}
		}
		for _, s := range []string{"Coup attempt", c.GetId(), "ECOWAS"} {
			if !strings.Contains(body, s) {
				t.Errorf("the partner's %s answer lacks %q", where, s)
			}
		}
	}
	for _, panel := range []string{`id="pending"`, `id="funding"`, `id="decisions"`, `id="deadlines"`, `id="warnings"`} {
		if strings.Contains(partnerPage, panel) {
			t.Errorf("the partner's page has the internal panel %s", panel)
		}
	}
	if !strings.Contains(partnerPage, "Public good-offices engagements: 3") {
		t.Error("the partner's page lacks the public engagements count")
	}
	if !strings.Contains(partnerPage, `id="form-partner-role"`) {
		t.Fatal("the partner's page offers no acknowledgement of its role")
	}
	if strings.Contains(partnerPage, `<option value="lead" selected`) {
		t.Error("the acknowledgement preselects a role")
	}

	// The acknowledgement: ECOWAS's, whatever the form names.
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(partnerPage)
	if m == nil {
		t.Fatal("no CSRF token on the partner's page")
	}
	post := func(form url.Values) (int, string) {
		req, _ := http.NewRequest("POST", api.URL+"/console/crises/"+c.GetId()+"/control", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", api.URL)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: partner})
		code, _, hdr := do(req)
		return code, hdr.Get("Location")
	}
	if code, loc := post(url.Values{"csrf": {m[1]}, "key": {"k-ack-0"}, "control": {"partner-role"}}); code != http.StatusSeeOther || !strings.Contains(loc, "failed=") {
		t.Errorf("an acknowledgement without a role: %d %s, want a refusal back to the page", code, loc)
	}
	code, loc := post(url.Values{"csrf": {m[1]}, "key": {"k-ack-1"}, "control": {"partner-role"}, "role": {"lead"}, "partner": {"OTHERORG"}})
	if code != http.StatusSeeOther || loc != "/console/crises/"+c.GetId()+"?done=partner-role" {
		t.Fatalf("the partner's acknowledgement: %d %s, want a redirect to the crisis page, done", code, loc)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acks) != 1 {
		t.Fatalf("controls sent: %v, want one acknowledgement", acks)
	}
	if a := acks[0]; a.GetPartner() != "ECOWAS" || a.GetRole() != demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD || a.GetPrincipal() != "liaison-ecowas" {
		t.Errorf("the acknowledgement sent: %v, want ECOWAS lead by liaison-ecowas (the credential's, not the form's)", a)
	}
}

// A partner liaison's console hears of an event (live updates) only when its
// organisation receives a copy of it: a stage notice or its own role, not a
// decision, a disbursement, a deadline or another organisation's role.
func TestPartnerConsoleHearsOnlyWhatPartnersReceive(t *testing.T) {
	now := timestamppb.Now()
	id := "GN-20261207-PART0"
	msg := func(data proto.Message) *nats.Msg {
		m, err := eventbus.Encode("demarche.crisis.africa.GN."+id+".x", eventbus.Event{ID: "e-1", Source: "/test", Subject: id, Time: now.AsTime(), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	rfunds := demarchev1.NewDecisionRequest("op", "PLANTED-RATIONALE", &demarchev1.FundingRequest{RequestId: "FR-1", Fund: "flexible-financing", AmountUsd: 5, Purpose: "p"})
	for _, c := range []struct {
		data  proto.Message
		hears bool
	}{
		{&demarchev1.StageEntered{CrisisId: id, Stage: demarchev1.Stage_STAGE_GOOD_OFFICES, EnteredAt: now}, true},
		{&demarchev1.PartnerRoleAcknowledged{CrisisId: id, Ack: &demarchev1.PartnerRoleAck{Partner: "ECOWAS", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD, Principal: "x"}}, true},
		{&demarchev1.PartnerRoleAcknowledged{CrisisId: id, Ack: &demarchev1.PartnerRoleAck{Partner: "OTHERORG", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD, Principal: "x"}}, false},
		{&demarchev1.DecisionRecorded{CrisisId: id, Decision: &demarchev1.DecisionRecord{Number: 1, Rationale: "PLANTED-RATIONALE", Request: rfunds}}, false},
		{&demarchev1.FundsDisbursed{CrisisId: id, AmountUsd: 5, DisbursementKey: "key-1"}, false},
		{&demarchev1.DeadlineAtRisk{CrisisId: id, Deadline: &demarchev1.DeadlineState{DueAt: now}}, false},
	} {
		if got := partnerNotice(msg(c.data), "ECOWAS"); got != c.hears {
			t.Errorf("ECOWAS's console hears of %T: %v, want %v", c.data, got, c.hears)
		}
	}
}
