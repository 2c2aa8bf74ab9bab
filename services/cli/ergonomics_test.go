package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/apijson"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// fakeGateway answers the routes the read verbs and completions use, in the
// API's JSON style.
func fakeGateway(t *testing.T) *httptest.Server {
	t.Helper()
	answer := func(m proto.Message) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				http.Error(w, `{"error": "no", "code": "unauthenticated"}`, http.StatusUnauthorized)
				return
			}
			b, _ := apijson.Marshal(m)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/whoami", answer(&demarchev1.Principal{Subject: "duty", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER},
		Clearance: demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL}))
	mux.HandleFunc("POST /v1/roster/experts", answer(&demarchev1.ExpertsResponse{Experts: []*demarchev1.Expert{
		{Id: "env-amara-diallo", Name: "Amara Diallo", Kind: demarchev1.ExpertKind_EXPERT_KIND_SENIOR_ENVOY, Available: true},
		{Id: "env-on-leave", Name: "On Leave", Kind: demarchev1.ExpertKind_EXPERT_KIND_SENIOR_ENVOY, Available: false},
		{Id: "sb-fatou-sow", Name: "Fatou Sow", Kind: demarchev1.ExpertKind_EXPERT_KIND_STANDBY_EXPERT, Available: true},
		{Id: "sb-femi-ade", Name: "Femi Ade", Kind: demarchev1.ExpertKind_EXPERT_KIND_STANDBY_EXPERT, Available: true},
	}}))
	mux.HandleFunc("POST /v1/roster/search", answer(&demarchev1.RosterSearchResponse{}))
	mux.HandleFunc("POST /v1/roster/assignments", answer(&demarchev1.AssignmentsResponse{}))
	mux.HandleFunc("POST /v1/funding/balance", answer(&demarchev1.BalanceResponse{}))
	mux.HandleFunc("POST /v1/funding/ledger", answer(&demarchev1.LedgerResponse{}))
	mux.HandleFunc("POST /v1/partners/list", answer(&demarchev1.ListPartnersResponse{Partners: []*demarchev1.PartnerInfo{
		{Name: "AU", Title: "African Union", Regions: []demarchev1.Region{demarchev1.Region_REGION_AFRICA}},
		{Name: "ECOWAS", Title: "Economic Community of West African States"},
	}}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// readVerbs are the commands that read: each takes --output table|json.
var readVerbs = []string{"whoami", "crisis list", "crisis show", "crisis figures", "crisis lessons", "roster search", "roster assignments",
	"roster experts", "fund balance", "fund ledger", "partner list", "playbook list", "playbook show", "warning score",
	"audit verify", "audit reconcile", "audit replay", "events tail"}

func TestEveryReadVerbTakesOutput(t *testing.T) {
	root := NewRoot()
	for _, path := range readVerbs {
		cmd, _, err := root.Find(strings.Fields(path))
		if err != nil || cmd.Name() != strings.Fields(path)[len(strings.Fields(path))-1] {
			t.Errorf("%s: no such command (%v)", path, err)
			continue
		}
		f := cmd.Flags().Lookup("output")
		if f == nil || f.Shorthand != "o" || f.DefValue != "table" || !strings.Contains(f.Usage, "json") {
			t.Errorf("%s: no --output table|json flag (%v)", path, f)
		}
	}
	// Any command named as a read (list, show, search, ...) is in the list above.
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		switch c.Name() {
		case "list", "show", "search", "lessons", "assignments", "experts", "balance", "ledger", "score", "figures", "tail", "whoami":
			if c.Flags().Lookup("output") == nil {
				t.Errorf("%s reads but has no --output", c.CommandPath())
			}
		}
	}
	walk(root)
}

func TestReadVerbsPrintTheAPIsJSON(t *testing.T) {
	srv := fakeGateway(t)
	for _, args := range [][]string{
		{"whoami", "-o", "json"}, {"roster", "experts", "--output", "json"}, {"roster", "search", "-o", "json"},
		{"roster", "assignments", "-o", "json"}, {"fund", "balance", "-o", "json"}, {"fund", "ledger", "-o", "json"},
		{"partner", "list", "-o", "json"}, {"playbook", "list", "-o", "json"}, {"playbook", "show", "general", "-o", "json"},
	} {
		out, err := runRoot(t, append(args, "--server", srv.URL, "--token", "tok")...)
		if err != nil {
			t.Errorf("%v: %v\n%s", args, err, out)
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("%v: not one JSON object: %v\n%s", args, err, out)
		}
		if strings.Contains(out, "EXPERT_KIND_") || strings.Contains(out, "ROLE_") || strings.Contains(out, "STAGE_") {
			t.Errorf("%v: full enum names in --output json:\n%s", args, out)
		}
	}
	out, _ := runRoot(t, "roster", "experts", "-o", "json", "--server", srv.URL, "--token", "tok")
	if !strings.Contains(out, `"kind": "senior-envoy"`) {
		t.Errorf("roster experts -o json:\n%s", out)
	}
	if _, err := runRoot(t, "partner", "list", "-o", "yaml", "--server", srv.URL, "--token", "tok"); err == nil || !strings.Contains(err.Error(), "allowed: table, json") {
		t.Errorf("an unknown format: %v", err)
	}
}

func TestRosterIDFlagsSaySoAndComplete(t *testing.T) {
	root := NewRoot()
	appoint, _, _ := root.Find([]string{"crisis", "decide", "envoy-appointment"})
	for _, name := range []string{"envoy", "standby-team"} {
		if f := appoint.Flags().Lookup(name); f == nil || !strings.Contains(f.Usage, "roster id") {
			t.Errorf("--%s does not say it takes roster ids: %v", name, f)
		}
	}
	srv := fakeGateway(t)
	// The word to complete is the last argument: the server's flags go before it.
	complete := func(args ...string) string {
		out, err := runRoot(t, append([]string{cobra.ShellCompRequestCmd, "--server", srv.URL, "--token", "tok"}, args...)...)
		if err != nil {
			t.Fatalf("complete %v: %v", args, err)
		}
		return out
	}
	out := complete("crisis", "decide", "envoy-appointment", "GN-1", "--envoy", "")
	if !strings.Contains(out, "env-amara-diallo\tAmara Diallo, senior-envoy") || strings.Contains(out, "sb-fatou-sow") || strings.Contains(out, "env-on-leave") {
		t.Errorf("--envoy completes available senior envoys only:\n%s", out)
	}
	out = complete("crisis", "decide", "envoy-appointment", "GN-1", "--standby-team", "sb-fatou-sow,sb")
	if !strings.Contains(out, "sb-fatou-sow,sb-femi-ade") || strings.Contains(out, "sb-fatou-sow,sb-fatou-sow") {
		t.Errorf("--standby-team completes the list's next id:\n%s", out)
	}
	out = complete("crisis", "share", "GN-1", "--with", "EC")
	if !strings.Contains(out, "ECOWAS") || strings.Contains(out, "AU\t") {
		t.Errorf("--with completes registered partners:\n%s", out)
	}
	// No verb books by hand: bookings come only from decisions.
	if _, err := runRoot(t, "roster", "reserve", "--crisis", "GN-1", "--role", "envoy", "--expert", "env-amara-diallo"); err == nil {
		t.Error("roster reserve still exists: bookings must come only from an envoy-appointment")
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2*time.Hour + 14*time.Minute + 30*time.Second: "2h 14m",
		71*time.Hour + 58*time.Minute:                 "71h 58m",
		72 * time.Hour:                                "72h",
		9*24*time.Hour + 3*time.Hour + 5*time.Minute:  "9d 3h",
		14*time.Minute + 5*time.Second:                "14m 5s",
		45 * time.Second:                              "45s",
		350 * time.Millisecond:                        "350ms",
		-90 * time.Minute:                             "-1h 30m",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	if got := until(timestamppb.New(now.Add(71*time.Hour+58*time.Minute)), now); got != "in 71h 58m" {
		t.Errorf("until: %q", got)
	}
	if got := until(timestamppb.New(now.Add(-2*time.Hour)), now); got != "overdue by 2h" {
		t.Errorf("until, past: %q", got)
	}
}

func TestShowSaysWhomEachRunningStageWaitsFor(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	st := &demarchev1.CrisisState{
		Crisis: &demarchev1.Crisis{Id: "GN-20261128-SHOW1", Title: "Coup", CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA,
			OpenedAt: at(-5 * time.Hour), SharedWith: []string{"ECOWAS"}},
		CurrentStage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT,
		ActiveStages: []demarchev1.Stage{demarchev1.Stage_STAGE_FACT_FINDING, demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT, demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP},
		Timeline: []*demarchev1.StageRecord{
			{Stage: demarchev1.Stage_STAGE_WARNING, Run: 1, EnteredAt: at(-5 * time.Hour), CompletedAt: at(-4 * time.Hour), Duration: durationpb.New(time.Hour)},
			{Stage: demarchev1.Stage_STAGE_FACT_FINDING, Run: 1, EnteredAt: at(-3 * time.Hour)},
			{Stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT, Run: 1, EnteredAt: at(-2*time.Hour - 14*time.Minute)},
			{Stage: demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP, Run: 1, EnteredAt: at(-time.Hour)},
		},
		PendingDecisions: []*demarchev1.PendingDecision{
			{Kind: "fact-finding-report", Stage: demarchev1.Stage_STAGE_FACT_FINDING, Who: "desk officer", Role: demarchev1.Role_ROLE_DESK_OFFICER, DueAt: at(240 * time.Hour)},
			{Kind: "envoy-appointment", Stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT, Who: "head of department", Role: demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT},
		},
		Deadlines: []*demarchev1.DeadlineState{{Name: "standby team deployment", Stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT,
			StartedAt: at(-2*time.Hour - 14*time.Minute), AtRiskAt: at(46 * time.Hour), DueAt: at(69*time.Hour + 46*time.Minute), Status: demarchev1.DeadlineStatus_DEADLINE_STATUS_RUNNING}},
	}
	var out bytes.Buffer
	printStateAt(&out, st, now)
	s := out.String()
	for _, want := range []string{
		"opened    2026-11-28 05:00:00.000Z (5h ago)",
		"shared    ECOWAS",
		"1h  ", // a completed stage's duration
		"for 2h 14m",
		"  fact-finding (run 1, for 3h)\n    waiting for: desk officer [role desk-officer] to decide fact-finding-report, due in 10d\n",
		"  envoy-deployment (run 1, for 2h 14m)\n    waiting for: head of department [role head-of-department] to decide envoy-appointment\n    deadline:    standby team deployment running, due in 69h 46m\n",
		"  sustained-follow-up (run 1, for 1h)\n    waiting for: no decision yet",
		"standby team deployment  envoy-deployment  running",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("crisis show lacks %q:\n%s", want, s)
		}
	}
}

func TestTailOfACrisisStartsAtItsFirstEvent(t *testing.T) {
	for _, c := range []struct {
		crisis, all, onlyNew bool
		want                 jetstream.DeliverPolicy
	}{
		{false, false, false, jetstream.DeliverNewPolicy},
		{true, false, false, jetstream.DeliverAllPolicy},
		{true, false, true, jetstream.DeliverNewPolicy},
		{false, true, false, jetstream.DeliverAllPolicy},
	} {
		if got := deliverPolicy(c.crisis, c.all, c.onlyNew); got != c.want {
			t.Errorf("crisis %v all %v new %v: %v, want %v", c.crisis, c.all, c.onlyNew, got, c.want)
		}
	}
}
