package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestSideRoutesConfidentiality: roster bookings, fund ledgers and scores
// name only the crises the reader may see (a crisis no workflow answers for
// counts as confidential), and every restricted or confidential crisis left
// in an answer is recorded as read, with who and where, before it leaves.
func TestSideRoutesConfidentiality(t *testing.T) {
	const pub, restr, conf, ghost = "NE-20261127-PUBL1", "NE-20261127-RSTR1", "NE-20261127-CONF1", "XX-20261127-GHOST"
	states := map[string]*demarchev1.CrisisState{
		pub:   {Crisis: &demarchev1.Crisis{Id: pub, Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC}},
		restr: {Crisis: &demarchev1.Crisis{Id: restr, Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED, SharedWith: []string{"ECOWAS"}}},
		conf:  {Crisis: &demarchev1.Crisis{Id: conf, Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL}},
	}
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	var mu sync.Mutex
	var reads []string
	svc, err := micro.AddService(nc, micro.Config{Name: "fakes", Version: "0.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	add := func(group, name string, h micro.Handler) {
		t.Helper()
		if err := svc.AddGroup(group).AddEndpoint(name, h); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{pub, restr, conf, ghost}
	add(natsrpc.AuditGroup, "read", natsrpc.Handler(func() *demarchev1.AuditReadRequest { return &demarchev1.AuditReadRequest{} },
		func(_ context.Context, r *demarchev1.AuditReadRequest) (*demarchev1.AuditReadResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			reads = append(reads, r.GetReader()+" "+r.GetCrisisId()+" "+r.GetDetail())
			return &demarchev1.AuditReadResponse{}, nil
		}))
	add(natsrpc.RosterGroup, "assignments", natsrpc.Handler(func() *demarchev1.AssignmentsRequest { return &demarchev1.AssignmentsRequest{} },
		func(context.Context, *demarchev1.AssignmentsRequest) (*demarchev1.AssignmentsResponse, error) {
			out := &demarchev1.AssignmentsResponse{}
			for i, id := range all {
				out.Assignments = append(out.Assignments, &demarchev1.Assignment{CrisisId: id, Role: "envoy", ExpertId: fmt.Sprintf("env-%d", i)})
			}
			return out, nil
		}))
	add(natsrpc.FundingGroup, "ledger", natsrpc.Handler(func() *demarchev1.FundQuery { return &demarchev1.FundQuery{} },
		func(context.Context, *demarchev1.FundQuery) (*demarchev1.LedgerResponse, error) {
			out := &demarchev1.LedgerResponse{Entries: []*demarchev1.LedgerEntry{{Line: 1, Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING, AmountUsd: 1_000_000}}}
			totals := map[string]int64{}
			for i, id := range all {
				totals[id] = int64(1000 * (i + 1))
				cp := map[string]int64{}
				for k, v := range totals {
					cp[k] = v
				}
				out.Entries = append(out.Entries, &demarchev1.LedgerEntry{Line: uint64(i + 2), CrisisId: id, AmountUsd: int64(1000 * (i + 1)), CrisisTotalsUsd: cp})
			}
			return out, nil
		}))
	add(natsrpc.EarlyWarningGroup, "score", natsrpc.Handler(func() *demarchev1.ScoreRequest { return &demarchev1.ScoreRequest{} },
		func(context.Context, *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error) {
			return &demarchev1.ScoreResponse{CountryCode: "NE", CrisisId: conf, PreviousCrisisId: pub,
				History: []*demarchev1.ScorePoint{{CrisisId: pub}, {CrisisId: restr}, {CrisisId: conf}}}, nil
		}))

	add(natsrpc.EarlyWarningGroup, "ingest", natsrpc.Handler(func() *demarchev1.IngestRequest { return &demarchev1.IngestRequest{} },
		func(context.Context, *demarchev1.IngestRequest) (*demarchev1.IngestResponse, error) {
			out := &demarchev1.IngestResponse{}
			for i, id := range all {
				out.Results = append(out.Results, &demarchev1.IngestResult{Index: int32(i), CrisisId: id, CrisisOpened: true})
				out.Crises = append(out.Crises, &demarchev1.CrisisTouch{CrisisId: id, Opened: true})
			}
			return out, nil
		}))
	iss := issuer(t)
	api := httptest.NewServer(NewHandler(nc, nil, iss.Verifier(), zap.NewNop(), WithCrisisStates(func(_ context.Context, id string) (*demarchev1.CrisisState, error) {
		if st, ok := states[id]; ok {
			return st, nil
		}
		return nil, fmt.Errorf("%w: %s", crisis.ErrNotFound, id)
	})))
	defer api.Close()
	as := func(subject, clearance string, roles ...string) string {
		tok, err := iss.Mint(authn.Claims{Subject: subject, Roles: roles, Clearance: clearance}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	call := func(token, method, path, body string, into proto.Message) {
		t.Helper()
		req, _ := http.NewRequest(method, api.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if err := apijson.Unmarshal(b, into); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	took := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := reads
		reads = nil
		sort.Strings(out)
		return out
	}
	for _, c := range []struct {
		who, clearance string
		roles          []string
		sees           []string
	}{
		{"rosa", "public", []string{"roster-coordinator", "fund-manager", "analyst"}, []string{pub}},
		{"rita", "restricted", []string{"roster-coordinator", "fund-manager", "analyst"}, []string{pub, restr}},
		{"audrey", "confidential", []string{"auditor"}, all},
	} {
		tok := as(c.who, c.clearance, c.roles...)
		wantReads := func(path string) []string {
			var out []string
			for _, id := range c.sees {
				if id != pub {
					out = append(out, c.who+" "+id+" POST "+path)
				}
			}
			sort.Strings(out)
			return out
		}
		var asg demarchev1.AssignmentsResponse
		call(tok, "POST", "/v1/roster/assignments", `{}`, &asg)
		var got []string
		for _, a := range asg.GetAssignments() {
			got = append(got, a.GetCrisisId())
		}
		if !slices.Equal(got, c.sees) {
			t.Errorf("%s (%s) sees bookings of %v, want %v", c.who, c.clearance, got, c.sees)
		}
		if r := took(); !slices.Equal(r, wantReads("/v1/roster/assignments")) {
			t.Errorf("%s: assignments reads recorded %v, want %v", c.who, r, wantReads("/v1/roster/assignments"))
		}
		var led demarchev1.LedgerResponse
		call(tok, "POST", "/v1/funding/ledger", `{}`, &led)
		got = nil
		for _, e := range led.GetEntries() {
			if e.GetCrisisId() != "" {
				got = append(got, e.GetCrisisId())
			}
			for id := range e.GetCrisisTotalsUsd() {
				if !slices.Contains(c.sees, id) {
					t.Errorf("%s (%s): ledger line %d totals name %s", c.who, c.clearance, e.GetLine(), id)
				}
			}
		}
		if !slices.Equal(got, c.sees) || led.GetEntries()[0].GetLine() != 1 {
			t.Errorf("%s (%s) sees ledger lines of %v, want the opening and %v", c.who, c.clearance, got, c.sees)
		}
		if r := took(); !slices.Equal(r, wantReads("/v1/funding/ledger")) {
			t.Errorf("%s: ledger reads recorded %v, want %v", c.who, r, wantReads("/v1/funding/ledger"))
		}
		if c.clearance == "confidential" {
			continue // auditors do not read scores or send signals here
		}
		// The crises a sender's signals opened or fed: those it may see only.
		var ing demarchev1.IngestResponse
		call(tok, "POST", "/v1/signals", `{"signals": [{"sourceId": "1", "countryCode": "NE", "crisisType": "general", "weight": 3, "observedAt": "2026-11-20T10:00:00Z", "summary": "x"}]}`, &ing)
		got = nil
		for _, res := range ing.GetResults() {
			if res.GetCrisisId() != "" {
				got = append(got, res.GetCrisisId())
			} else if res.GetCrisisOpened() {
				t.Errorf("%s (%s): a hidden crisis's opening is told", c.who, c.clearance)
			}
		}
		var touched []string
		for _, ct := range ing.GetCrises() {
			touched = append(touched, ct.GetCrisisId())
		}
		if !slices.Equal(got, c.sees) || !slices.Equal(touched, c.sees) {
			t.Errorf("%s (%s): signals answered crises %v and %v, want %v", c.who, c.clearance, got, touched, c.sees)
		}
		if r := took(); !slices.Equal(r, wantReads("/v1/signals")) {
			t.Errorf("%s: signals reads recorded %v, want %v", c.who, r, wantReads("/v1/signals"))
		}
		var sc demarchev1.ScoreResponse
		call(tok, "GET", "/v1/situations/NE/general", "", &sc)
		got = nil
		for _, id := range []string{sc.GetCrisisId(), sc.GetPreviousCrisisId()} {
			if id != "" {
				got = append(got, id)
			}
		}
		for _, pt := range sc.GetHistory() {
			if id := pt.GetCrisisId(); id != "" && !slices.Contains(c.sees, id) {
				t.Errorf("%s (%s): score history names %s", c.who, c.clearance, id)
			}
		}
		if slices.Contains(got, conf) {
			t.Errorf("%s (%s): score names the confidential crisis: %v", c.who, c.clearance, got)
		}
		r := took()
		if c.clearance == "restricted" && (len(r) != 1 || !strings.HasPrefix(r[0], "rita "+restr+" GET /v1/situations/NE/general")) {
			t.Errorf("%s: score reads recorded %v", c.who, r)
		}
	}
}
