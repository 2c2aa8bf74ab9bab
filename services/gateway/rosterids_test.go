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

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestRosterFieldsAndRefusedForms runs the real gateway (API and console)
// against a roster on NATS and a stand-in crisis: a roster field naming
// someone not on the roster, or an expert of another kind, is refused by
// the API whoever sends it; through the console, the refusal comes back
// (post/redirect/get) to the crisis page with every typed value kept and
// the reason beside the field, named by its label, not its schema path.
func TestRosterFieldsAndRefusedForms(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	experts := []*demarchev1.Expert{
		{Id: "env-amara-diallo", Name: "Amara Diallo", Kind: demarchev1.ExpertKind_EXPERT_KIND_SENIOR_ENVOY, Available: true},
		{Id: "sb-fatou-sow", Name: "Fatou Sow", Kind: demarchev1.ExpertKind_EXPERT_KIND_STANDBY_EXPERT, Available: true},
		{Id: "med-joseph-mwangi", Name: "Joseph Mwangi", Kind: demarchev1.ExpertKind_EXPERT_KIND_MEDIATOR, Available: true},
	}
	rs, err := natsrpc.Serve(nc, natsrpc.ServiceConfig{Name: natsrpc.RosterService, Version: "1.0.0", Group: natsrpc.RosterGroup, Log: zap.NewNop()},
		natsrpc.Typed("experts", "every expert", func() *demarchev1.AssignmentsRequest { return &demarchev1.AssignmentsRequest{} },
			func(context.Context, *demarchev1.AssignmentsRequest) (*demarchev1.ExpertsResponse, error) {
				return &demarchev1.ExpertsResponse{Experts: experts}, nil
			}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	iss, err := authn.LoadOrCreateIssuer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &demarchev1.Crisis{Id: "GN-20261207-ROST0", Title: "Coup attempt", CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA,
		CrisisType: demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, Severity: 4,
		Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedAt: timestamppb.Now()}
	st := &demarchev1.CrisisState{Crisis: c, ActiveStages: []demarchev1.Stage{demarchev1.Stage_STAGE_FACT_FINDING},
		PendingDecisions: []*demarchev1.PendingDecision{
			{Kind: "fact-finding-mandate", Role: demarchev1.Role_ROLE_DESK_OFFICER, Who: "desk officer"},
			{Kind: "envoy-appointment", Role: demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT, Who: "head of department"},
		}}
	var mu sync.Mutex
	var taken []*demarchev1.DecisionRequest
	h := NewHandler(nc, nil, iss.Verifier(), zap.NewNop(),
		WithCrisisStates(func(_ context.Context, id string) (*demarchev1.CrisisState, error) {
			if id != c.GetId() {
				return nil, fmt.Errorf("%w: %s", crisis.ErrNotFound, id)
			}
			return st, nil
		}),
		WithDecisions(func(_ context.Context, _, _ string, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error) {
			if err := req.Validate(); err != nil {
				return nil, errs.InvalidInput(err)
			}
			mu.Lock()
			defer mu.Unlock()
			taken = append(taken, req)
			return &demarchev1.DecisionRecord{Number: 1, Kind: req.DecisionKind(), Request: req, DecidedAt: timestamppb.Now()}, nil
		}))
	api := httptest.NewServer(h)
	t.Cleanup(api.Close)
	token, err := iss.Mint(authn.Claims{Subject: "desk", Roles: []string{"desk-officer", "head-of-department"}, Clearance: "public"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	call := func(body string) (int, string) {
		req, _ := http.NewRequest("POST", api.URL+"/v1/crises/"+c.GetId()+"/decisions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-"+fmt.Sprint(time.Now().UnixNano()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	due := time.Now().AddDate(0, 1, 0).UTC().Format(time.RFC3339)
	mandate := func(team string) string {
		return `{"rationale": "x", "factFindingMandate": {"termsOfReference": "establish the facts", "mandatingBody": "MANDATING_BODY_SECRETARY_GENERAL", "team": [` + team + `], "reportDue": "` + due + `"}}`
	}
	// The API: made-up names and experts of the wrong kind are refused.
	for _, tc := range []struct{ body, want string }{
		{mandate(`"amara-diallo"`), `fact_finding_mandate.team: \"amara-diallo\" is not a roster id`},
		{`{"rationale": "x", "envoyAppointment": {"envoy": "env-amara-diallo", "standbyTeam": ["env-amara-diallo"]}}`, "is a senior envoy, not a standby expert"},
		{`{"rationale": "x", "envoyAppointment": {"envoy": "sb-fatou-sow", "standbyTeam": ["sb-fatou-sow"]}}`, "is a standby expert, not a senior envoy"},
	} {
		if code, body := call(tc.body); code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.body, code, body, tc.want)
		}
	}
	if code, body := call(mandate(`"med-joseph-mwangi", "sb-fatou-sow"`)); code != http.StatusOK {
		t.Fatalf("a team of roster ids: %d %s", code, body)
	}

	// The console: a refused mandate comes back to its page, values kept.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", api.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	_, page := get("/console/crises/" + c.GetId())
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the crisis page")
	}
	form := url.Values{"csrf": {m[1]}, "kind": {"fact-finding-mandate"}, "key": {"k-console"}, "terms_of_reference": {"establish who fired first"},
		"mandating_body": {"secretary-general"}, "team": {"amara-diallo, med-joseph-mwangi"}, "report_due": {time.Now().AddDate(0, 1, 0).Format(time.DateOnly)},
		"rationale": {"an independent account is needed"}}
	req, _ := http.NewRequest("POST", api.URL+"/console/crises/"+c.GetId()+"/decide", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", api.URL)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/crises/"+c.GetId()+"?failed=") || !strings.HasSuffix(loc, "#form-fact-finding-mandate") {
		t.Fatalf("a refused console form: %d %s, want a redirect to its page (post/redirect/get)", resp.StatusCode, loc)
	}
	code, page := get(strings.SplitN(loc, "#", 2)[0])
	for _, want := range []string{
		`>establish who fired first</textarea>`, `value="amara-diallo, med-joseph-mwangi"`, `>an independent account is needed</textarea>`,
		`<option value="secretary-general" selected>`, `value="` + form.Get("report_due") + `"`,
		`id="in-fact-finding-mandate-team-error">Team: &#34;amara-diallo&#34; is not a roster id`, `aria-invalid="true"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page the refusal came back to (%d) lacks %s", code, want)
		}
	}
	if strings.Contains(page, "fact_finding_mandate.team") {
		t.Error("the refusal names the schema's path, not the field's label")
	}
	// Another person never sees what was typed.
	other, _ := iss.Mint(authn.Claims{Subject: "other", Roles: []string{"desk-officer"}, Clearance: "public"}, time.Hour)
	req, _ = http.NewRequest("GET", api.URL+strings.SplitN(loc, "#", 2)[0], nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: other})
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "establish who fired first") {
		t.Error("another person's page shows the refused form's values")
	}
}

func TestPlainFieldErrors(t *testing.T) {
	fields, msg := plainFieldErrors("fact-finding-mandate", "Refused — x: invalid decision request: fact_finding_mandate.report_due: is required; fact_finding_mandate.team: name at least one member of the mission; rationale: is required")
	if fields["report_due"] != "is required" || fields["team"] != "name at least one member of the mission" || fields["rationale"] != "is required" {
		t.Errorf("fields: %v", fields)
	}
	if strings.Contains(msg, "fact_finding_mandate.") || !strings.Contains(msg, "Report due: is required") || !strings.Contains(msg, "Rationale: is required") {
		t.Errorf("message: %s", msg)
	}
}
