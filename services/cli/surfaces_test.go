package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/html"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestEveryDecisionKindOnEverySurface walks the schema's decision kinds
// (demarchev1.DecisionKinds) through the three surfaces people decide on,
// against the real gateway (API and console; the crisis's workflow is the one
// stand-in, which checks each decision as the workflow's validator does):
//
//   - the console: the crisis page, with every kind pending, has a form for
//     each kind, with a labelled control for every field of the decision's
//     message (required ones marked); posting it filled in records the
//     decision through the API;
//   - the CLI: "demarche crisis decide KIND" has a flag for every field, and
//     the same values give the same decision;
//   - the HTTP API: the decision's JSON body is parsed and accepted.
//
// A kind that any surface lacks, or builds differently, fails here.
func TestEveryDecisionKindOnEverySurface(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	// The roster the gateway checks roster fields against (rosterids.go):
	// two experts of each kind, named as sampleValue names them.
	var roster []*demarchev1.Expert
	for _, k := range []demarchev1.ExpertKind{demarchev1.ExpertKind_EXPERT_KIND_SENIOR_ENVOY, demarchev1.ExpertKind_EXPERT_KIND_MEDIATOR, demarchev1.ExpertKind_EXPERT_KIND_STANDBY_EXPERT} {
		slug := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k.String(), "EXPERT_KIND_")), "_", "-")
		for _, n := range []string{"a", "b"} {
			roster = append(roster, &demarchev1.Expert{Id: "walk-" + slug + "-" + n, Name: "Walker " + n, Kind: k, Available: true})
		}
	}
	rosterSvc, err := natsrpc.Serve(nc, natsrpc.ServiceConfig{Name: natsrpc.RosterService, Version: "1.0.0", Group: natsrpc.RosterGroup, Log: zap.NewNop()},
		natsrpc.Typed("experts", "every expert on the roster", func() *demarchev1.AssignmentsRequest { return &demarchev1.AssignmentsRequest{} },
			func(context.Context, *demarchev1.AssignmentsRequest) (*demarchev1.ExpertsResponse, error) {
				return &demarchev1.ExpertsResponse{Experts: roster}, nil
			}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rosterSvc.Stop)
	iss, err := authn.LoadOrCreateIssuer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &demarchev1.Crisis{Id: "GN-20261127-WALK0", Title: "Coup attempt", CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA,
		CrisisType: demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, Severity: 4,
		Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedAt: timestamppb.Now(), LeadPresence: "UNOWA"}
	// Every kind is pending, and the walker holds every role that decides one.
	st := &demarchev1.CrisisState{Crisis: c, Decisions: []*demarchev1.DecisionRecord{{
		Number: 1, Kind: "funding-request", Principal: "alice", DecidedAt: timestamppb.Now(),
		Request: demarchev1.NewDecisionRequest("alice", "mediation costs",
			&demarchev1.FundingRequest{RequestId: "FR-1", Fund: "flexible-financing", AmountUsd: 120000, Purpose: "dialogue venue"}),
	}}}
	var roles []string
	for _, kind := range demarchev1.DecisionKinds() {
		role, ok := crisis.DecisionRole(kind)
		if !ok {
			t.Fatalf("%s: no decision type in workflows/crisis", kind)
		}
		st.PendingDecisions = append(st.PendingDecisions, &demarchev1.PendingDecision{Kind: kind, Role: role, Who: "someone"})
		roles = append(roles, role.Slug())
	}
	// The walker is a field officer of the crisis's lead presence too (field-report).
	token, err := iss.Mint(authn.Claims{Subject: "walker", Roles: roles, Clearance: "public", Presence: "UNOWA"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var taken []*demarchev1.DecisionRequest
	states := gateway.WithCrisisStates(func(_ context.Context, id string) (*demarchev1.CrisisState, error) {
		if id != c.GetId() {
			return nil, fmt.Errorf("%w: %s", crisis.ErrNotFound, id)
		}
		return st, nil
	})
	decisions := gateway.WithDecisions(func(_ context.Context, id, _ string, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error) {
		if err := req.Validate(); err != nil { // as the crisis's update validator
			return nil, errs.InvalidInput(err)
		}
		mu.Lock()
		defer mu.Unlock()
		taken = append(taken, proto.Clone(req).(*demarchev1.DecisionRequest))
		return &demarchev1.DecisionRecord{Number: 2, Kind: req.DecisionKind(), Principal: req.GetPrincipal(), Rationale: req.GetRationale(),
			Request: req, DecidedAt: timestamppb.Now()}, nil
	})
	api := httptest.NewServer(gateway.NewHandler(nc, nil, iss.Verifier(), zap.NewNop(), states, decisions))
	t.Cleanup(api.Close)
	// lastTaken is the decision the surface just sent (nil: none reached the crisis).
	lastTaken := func() *demarchev1.DecisionRequest {
		mu.Lock()
		defer mu.Unlock()
		if len(taken) == 0 {
			return nil
		}
		r := taken[len(taken)-1]
		taken = nil
		return r
	}

	page := consolePage(t, api.URL+"/console/crises/"+c.GetId(), token)
	walked := 0
	defer func() {
		if walked != len(demarchev1.DecisionKinds()) {
			t.Errorf("%d of %d decision kinds went through every surface", walked, len(demarchev1.DecisionKinds()))
		}
	}()
	for _, form := range demarchev1.DecisionForms() {
		kind := form.Kind
		rationale := "walking " + kind

		// The console: a form for the kind, a labelled control per field.
		f := page.form(kind)
		if f == nil {
			t.Errorf("console: the crisis page has no form for %s, pending and the user's to take", kind)
			continue
		}
		given := map[*demarchev1.DecisionInput]string{}
		post := url.Values{"rationale": {rationale}}
		for name, ctl := range f.controls {
			if ctl.hidden {
				post.Set(name, ctl.value)
			}
		}
		for _, in := range form.Inputs {
			ctl, ok := f.controls[in.Name]
			if !ok {
				t.Errorf("console: the %s form has no field %s (%s)", kind, in.Name, in.Label)
				continue
			}
			v := sampleValue(in)
			switch {
			case ctl.hidden || ctl.button || ctl.checkbox:
				v = ctl.value // what the page itself sends
			case ctl.options != nil && !ctl.hasOption(v):
				t.Errorf("console: %s %s offers %v, not %q", kind, in.Name, ctl.options, v)
			}
			if !ctl.hidden && !ctl.button {
				if label := f.labels[ctl.id]; !strings.Contains(label, in.Label) {
					t.Errorf("console: %s %s is labelled %q, want %q", kind, in.Name, label, in.Label)
				}
				if in.Required && !ctl.required {
					t.Errorf("console: %s %s is required but not marked so", kind, in.Name)
				}
			}
			given[in] = v
			post.Set(in.Name, v)
		}
		if status := consolePost(t, api.URL, "/console/crises/"+c.GetId()+"/decide", token, post); status != http.StatusSeeOther {
			t.Errorf("console: posting the %s form answered %d", kind, status)
		}
		fromConsole := lastTaken()
		if fromConsole == nil || fromConsole.DecisionKind() != kind {
			t.Errorf("console: the %s form recorded %v", kind, fromConsole)
			continue
		}
		d := fromConsole.ProtoReflect().Get(fromConsole.ProtoReflect().WhichOneof(fromConsole.ProtoReflect().Descriptor().Oneofs().ByName("decision"))).Message()
		for _, in := range form.Inputs {
			if !d.Has(d.Descriptor().Fields().ByName(protoreflect.Name(in.Name))) {
				t.Errorf("console: the %s form did not fill in %s from %q", kind, in.Name, given[in])
			}
		}

		// The CLI: the same values as flags give the same decision.
		args := []string{"crisis", "decide", kind, c.GetId(), "--server", api.URL, "--token", token, "--rationale", rationale}
		for _, in := range form.Inputs {
			v, ok := given[in]
			if !ok {
				continue
			}
			if in.Type == demarchev1.InputList && in.Multiline {
				for _, item := range strings.Split(v, "\n") {
					args = append(args, "--"+in.Flag+"="+item)
				}
				continue
			}
			args = append(args, "--"+in.Flag+"="+v)
		}
		if out, err := runRoot(t, args...); err != nil || !strings.Contains(out, "recorded decision 2 on "+c.GetId()+": "+kind+" by walker") {
			t.Errorf("cli: %v: %v\n%s", args, err, out)
		}
		fromCLI := lastTaken()
		if !proto.Equal(fromCLI, fromConsole) {
			t.Errorf("%s: the CLI and the console built different decisions:\ncli:     %v\nconsole: %v", kind, fromCLI, fromConsole)
		}

		// The HTTP API: the decision as a JSON body is parsed and accepted.
		body, err := apijson.Marshal(fromConsole)
		if err != nil {
			t.Fatal(err)
		}
		if status, answer := apiPost(t, api.URL+"/v1/crises/"+c.GetId()+"/decisions", token, string(body)); status != http.StatusOK {
			t.Errorf("api: a %s body answered %d: %s\n%s", kind, status, answer, body)
		}
		if fromAPI := lastTaken(); !proto.Equal(fromAPI, fromConsole) {
			t.Errorf("%s: the API read its body as %v, the console sent %v", kind, fromAPI, fromConsole)
		}
		walked++
		t.Logf("%s: console, CLI and API agree: %v", kind, fromConsole.GetDecision())
	}
}

// sampleValue is a valid value for an input, as a person types it (roster
// fields: ids of the test's roster, of the kind the field asks for).
func sampleValue(in *demarchev1.DecisionInput) string {
	if in.Source == demarchev1.DecisionInputSource_DECISION_INPUT_SOURCE_ROSTER {
		kind := in.ExpertKind
		if kind == "" {
			kind = "mediator"
		}
		if in.Type == demarchev1.InputList {
			return "walk-" + kind + "-a, walk-" + kind + "-b"
		}
		return "walk-" + kind + "-a"
	}
	switch in.Type {
	case demarchev1.InputText:
		if in.ID {
			return "ref-" + strings.ReplaceAll(in.Name, "_", "-")
		}
		return "the " + strings.ReplaceAll(in.Name, "_", " ") + " of the walk"
	case demarchev1.InputList:
		if in.Multiline {
			return "first, with a comma\nsecond"
		}
		return "walk-a, walk-b"
	case demarchev1.InputChoice:
		return in.Choices[len(in.Choices)-1].Value
	case demarchev1.InputInteger:
		if in.Max > in.Min {
			return strconv.FormatInt(in.Min+(in.Max-in.Min)/1000, 10)
		}
		return "42"
	case demarchev1.InputYesNo:
		return "true"
	case demarchev1.InputTime:
		return time.Now().AddDate(0, 1, 0).Format(time.DateOnly)
	}
	return ""
}

// consoleControl is one named control of a console form.
type consoleControl struct {
	id, value                          string
	hidden, button, checkbox, required bool
	options                            []string // a select's values (nil: not a select)
}

func (c consoleControl) hasOption(v string) bool {
	for _, o := range c.options {
		if o == v {
			return true
		}
	}
	return false
}

// consoleForm is a decision form of a console page: its named controls and
// the text of its labels by the id they are for.
type consoleForm struct {
	controls map[string]consoleControl
	labels   map[string]string
}

type parsedPage struct{ root *html.Node }

func consolePage(t *testing.T, pageURL, token string) parsedPage {
	t.Helper()
	req, _ := http.NewRequest("GET", pageURL, nil)
	req.AddCookie(&http.Cookie{Name: "demarche_session", Value: token})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d\n%s", pageURL, resp.StatusCode, b)
	}
	root, err := html.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return parsedPage{root}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func walkNodes(n *html.Node, visit func(*html.Node)) {
	visit(n)
	for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
		walkNodes(ch, visit)
	}
}

func textOf(n *html.Node) string {
	var b strings.Builder
	walkNodes(n, func(m *html.Node) {
		if m.Type == html.TextNode {
			b.WriteString(m.Data)
		}
	})
	return strings.Join(strings.Fields(b.String()), " ")
}

// form finds the page's first form that posts a decision of kind.
func (p parsedPage) form(kind string) *consoleForm {
	var found *consoleForm
	walkNodes(p.root, func(n *html.Node) {
		if found != nil || n.Type != html.ElementNode || n.Data != "form" {
			return
		}
		f := &consoleForm{controls: map[string]consoleControl{}, labels: map[string]string{}}
		walkNodes(n, func(m *html.Node) {
			if m.Type != html.ElementNode {
				return
			}
			name, named := attr(m, "name")
			id, _ := attr(m, "id")
			_, required := attr(m, "required")
			switch m.Data {
			case "label":
				if forID, ok := attr(m, "for"); ok {
					f.labels[forID] = textOf(m)
				}
			case "input":
				typ, _ := attr(m, "type")
				value, _ := attr(m, "value")
				if named {
					f.controls[name] = consoleControl{id: id, value: value, hidden: typ == "hidden", checkbox: typ == "checkbox", required: required}
				}
			case "textarea":
				if named {
					f.controls[name] = consoleControl{id: id, required: required}
				}
			case "select":
				ctl := consoleControl{id: id, required: required, options: []string{}}
				walkNodes(m, func(o *html.Node) {
					if v, ok := attr(o, "value"); ok && o.Type == html.ElementNode && o.Data == "option" {
						ctl.options = append(ctl.options, v)
					}
				})
				if named {
					f.controls[name] = ctl
				}
			case "button":
				value, _ := attr(m, "value")
				if _, seen := f.controls[name]; named && !seen { // the first of its buttons
					f.controls[name] = consoleControl{value: value, button: true}
				}
			}
		})
		if f.controls["kind"].hidden && f.controls["kind"].value == kind {
			found = f
		}
	})
	return found
}

// consolePost posts a console form as the browser does (session cookie,
// same origin, the page's CSRF token in the form) and returns the status.
func consolePost(t *testing.T, base, path, token string, form url.Values) int {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.AddCookie(&http.Cookie{Name: "demarche_session", Value: token})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		b, _ := io.ReadAll(resp.Body)
		t.Logf("POST %s: %d\n%s", path, resp.StatusCode, errorOf(string(b)))
	}
	return resp.StatusCode
}

// errorOf cuts a console page down to its error message.
func errorOf(page string) string {
	if i := strings.Index(page, "Not recorded"); i >= 0 {
		return page[i:min(len(page), i+400)]
	}
	if i := strings.Index(page, "Refused"); i >= 0 {
		return page[i:min(len(page), i+400)]
	}
	return page[:min(len(page), 400)]
}

func apiPost(t *testing.T, u, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
