package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// searchFixture is a listing and the crises' states behind it: the listing
// stand-in applies the visibility part of the filter (confidentiality,
// sharing, stage, type, region) as Temporal's query would, and records the
// filter List sent, so a test sees both what was asked and what came back.
type searchFixture struct {
	states  map[string]*demarchev1.CrisisState
	order   []string // newest first
	filters []crisis.Filter
	mu      sync.Mutex
	reads   []string // states read
	audited []string // reads recorded by the audit service: "id via"
}

// newSearchFixture answers the audit service's read endpoint, as the real
// one records a read of a restricted or confidential crisis.
func newSearchFixture(t *testing.T) (*searchFixture, *nats.Conn) {
	fx := &searchFixture{states: map[string]*demarchev1.CrisisState{}}
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	svc, err := micro.AddService(nc, micro.Config{Name: "audit", Version: "0.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	if err := svc.AddGroup(natsrpc.AuditGroup).AddEndpoint("read", natsrpc.Handler(func() *demarchev1.AuditReadRequest { return &demarchev1.AuditReadRequest{} },
		func(_ context.Context, req *demarchev1.AuditReadRequest) (*demarchev1.AuditReadResponse, error) {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			fx.audited = append(fx.audited, req.GetCrisisId()+" "+req.GetDetail())
			return &demarchev1.AuditReadResponse{}, nil
		})); err != nil {
		t.Fatal(err)
	}
	return fx, nc
}

func (fx *searchFixture) add(id, title string, conf demarchev1.Confidentiality, ct demarchev1.CrisisType, region demarchev1.Region, outcome demarchev1.Outcome, closedAt time.Time, lessons ...string) {
	st := &demarchev1.CrisisState{Crisis: &demarchev1.Crisis{Id: id, Title: title, Confidentiality: conf, CrisisType: ct, Region: region, CountryCode: "GN", SharedWith: []string{"ECOWAS"}},
		Outcome: outcome, Lessons: lessons}
	st.CurrentStage = demarchev1.Stage_STAGE_WARNING
	if outcome != demarchev1.Outcome_OUTCOME_UNSPECIFIED {
		st.CurrentStage, st.ClosedAt = demarchev1.Stage_STAGE_CLOSED, timestamppb.New(closedAt)
	}
	fx.states[id] = st
	fx.order = append(fx.order, id)
}

func (fx *searchFixture) app(nc *nats.Conn) *App {
	return New(nc, nil, nil,
		WithCrisisStates(func(_ context.Context, id string) (*demarchev1.CrisisState, error) {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			fx.reads = append(fx.reads, id)
			if st, ok := fx.states[id]; ok {
				return st, nil
			}
			return nil, fmt.Errorf("%w: %s", errs.ErrNotFound, id)
		}),
		WithListing(func(_ context.Context, f crisis.Filter, limit int) ([]crisis.Summary, error) {
			fx.filters = append(fx.filters, f)
			var out []crisis.Summary
			for _, id := range fx.order {
				c := fx.states[id].GetCrisis()
				switch {
				case f.SharedWith != "" && !slices.Contains(c.GetSharedWith(), f.SharedWith),
					f.SharedWith == "" && !slices.Contains(f.Confidentialities, c.GetConfidentiality()),
					f.Stage == demarchev1.Stage_STAGE_CLOSED && fx.states[id].GetClosedAt() == nil,
					f.CrisisType != 0 && c.GetCrisisType() != f.CrisisType,
					f.Region != 0 && c.GetRegion() != f.Region:
					continue
				}
				out = append(out, crisis.Summary{CrisisID: id, Confidentiality: c.GetConfidentiality().Slug()})
				if limit > 0 && len(out) >= limit {
					break
				}
			}
			return out, nil
		}))
}

func rowIDs(rows []crisis.Summary) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.CrisisID
	}
	return out
}

// Search by text and outcome: visibility is narrowed to the principal first
// (whatever the filter said), then each candidate's state is matched; the
// rows carry the title and outcome they were matched on.
func TestListSearchesWithinWhatThePrincipalMaySee(t *testing.T) {
	fx, nc := newSearchFixture(t)
	pub, conf := demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL
	coup, border := demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE
	africa := demarchev1.Region_REGION_AFRICA
	now := time.Now()
	fx.add("GN-3", "Coup in Conakry", pub, coup, africa, 0, time.Time{})
	fx.add("GN-2", "Quiet talks in Conakry", conf, coup, africa, demarchev1.Outcome_OUTCOME_AVERTED, now, "a confidential lesson")
	fx.add("GN-1", "Border clash", pub, border, africa, demarchev1.Outcome_OUTCOME_CONTAINED, now.Add(-time.Hour), "fund early")
	a := fx.app(nc)
	duty := &authn.Principal{Subject: "duty", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}, Clearance: conf}
	low := &authn.Principal{Subject: "desk", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DESK_OFFICER}, Clearance: pub}
	ecowas := &authn.Principal{Subject: "ecowas", Roles: []demarchev1.Role{demarchev1.Role_ROLE_PARTNER}, Partner: "ECOWAS", Clearance: pub}
	// A filter asking for more than the principal may see is narrowed.
	sneaky := crisis.Filter{Confidentialities: []demarchev1.Confidentiality{conf}, SharedWith: "AU"}

	cases := []struct {
		name string
		p    *authn.Principal
		q    ListQuery
		want []string
	}{
		{"text in titles, any case", duty, ListQuery{Text: "conakry"}, []string{"GN-3", "GN-2"}},
		{"text in ids", duty, ListQuery{Text: "gn-1"}, []string{"GN-1"}},
		{"low clearance: the confidential one is not there", low, ListQuery{Text: "conakry", Filter: sneaky}, []string{"GN-3"}},
		{"outcome: closed crises with it", duty, ListQuery{Outcome: demarchev1.Outcome_OUTCOME_AVERTED}, []string{"GN-2"}},
		{"outcome for the low clearance", low, ListQuery{Outcome: demarchev1.Outcome_OUTCOME_AVERTED}, nil},
		{"a partner: its sharing, not clearance", ecowas, ListQuery{Text: "conakry", Filter: sneaky}, []string{"GN-3", "GN-2"}},
		{"limit", duty, ListQuery{Text: "GN", Limit: 2}, []string{"GN-3", "GN-2"}},
		{"no text nor outcome: the listing as is", low, ListQuery{Filter: sneaky}, []string{"GN-3", "GN-1"}},
	}
	for _, c := range cases {
		c.q.Via = "GET /v1/crises?q=x"
		fx.filters, fx.reads, fx.audited = nil, nil, nil
		rows, err := a.List(context.Background(), c.p, c.q)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := rowIDs(rows); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if len(fx.filters) != 1 {
			t.Fatalf("%s: %d listings", c.name, len(fx.filters))
		}
		f := fx.filters[0]
		switch {
		case c.p == ecowas && (f.SharedWith != "ECOWAS" || f.Confidentialities != nil):
			t.Errorf("%s: a partner's listing %+v, want shared with ECOWAS only", c.name, f)
		case c.p != ecowas && (f.SharedWith != "" || slices.Contains(f.Confidentialities, conf) != (c.p == duty)):
			t.Errorf("%s: listing %+v, not the principal's clearance", c.name, f)
		}
		if c.q.Outcome != 0 && f.Stage != demarchev1.Stage_STAGE_CLOSED {
			t.Errorf("%s: an outcome lists closed crises only, listed %+v", c.name, f)
		}
		if c.q.Text == "" && c.q.Outcome == 0 && len(fx.reads) != 0 {
			t.Errorf("%s: a plain listing read %v", c.name, fx.reads)
		}
		// The confidential crisis read to match it is recorded as the
		// search's read, whether it matched or not.
		if slices.Contains(fx.reads, "GN-2") && !slices.Contains(fx.audited, "GN-2 GET /v1/crises?q=x") {
			t.Errorf("%s: GN-2 was read but the audit trail has %v", c.name, fx.audited)
		}
		for _, r := range rows {
			if c.q.Text != "" && r.Title != fx.states[r.CrisisID].GetCrisis().GetTitle() {
				t.Errorf("%s: %s carries the title %q", c.name, r.CrisisID, r.Title)
			}
		}
	}
	if rows, _ := a.List(context.Background(), duty, ListQuery{Outcome: demarchev1.Outcome_OUTCOME_AVERTED}); len(rows) != 1 || rows[0].Outcome != "averted" {
		t.Errorf("the outcome is not on the row: %+v", rows)
	}
	// An outcome with an open crisis's filter is a contradiction, said so.
	for _, f := range []crisis.Filter{{OpenOnly: true}, {Stage: demarchev1.Stage_STAGE_GOOD_OFFICES}} {
		if _, err := a.List(context.Background(), duty, ListQuery{Filter: f, Outcome: demarchev1.Outcome_OUTCOME_AVERTED}); !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), "outcome") {
			t.Errorf("outcome with %+v: %v, want invalid naming the outcome", f, err)
		}
	}
}

// Lessons: closed crises' lessons within the principal's clearance, by
// type, region, outcome and text, most recently closed first; never a
// partner's, nor anyone's the policy does not allow.
func TestLessons(t *testing.T) {
	fx, nc := newSearchFixture(t)
	pub, conf := demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL
	coup, border := demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE
	africa, europe := demarchev1.Region_REGION_AFRICA, demarchev1.Region_REGION_EUROPE
	now := time.Now()
	fx.add("GN-4", "Open one", pub, coup, africa, 0, time.Time{})
	fx.add("GN-3", "Older closure, newer opening", pub, coup, africa, demarchev1.Outcome_OUTCOME_CONTAINED, now.Add(-2*time.Hour), "envoy within 72 hours")
	fx.add("GN-2", "Quiet", conf, coup, africa, demarchev1.Outcome_OUTCOME_AVERTED, now, "quiet diplomacy held")
	fx.add("UA-1", "Border", pub, border, europe, demarchev1.Outcome_OUTCOME_ESCALATED, now.Add(-time.Hour), "fund before deploying")
	a := fx.app(nc)
	duty := &authn.Principal{Subject: "duty", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}, Clearance: conf}
	low := &authn.Principal{Subject: "analyst", Roles: []demarchev1.Role{demarchev1.Role_ROLE_ANALYST}, Clearance: pub}
	cases := []struct {
		name string
		p    *authn.Principal
		q    LessonsQuery
		want []string
	}{
		{"all, most recently closed first", duty, LessonsQuery{}, []string{"GN-2", "UA-1", "GN-3"}},
		{"low clearance", low, LessonsQuery{}, []string{"UA-1", "GN-3"}},
		{"by type", duty, LessonsQuery{CrisisType: coup}, []string{"GN-2", "GN-3"}},
		{"by region", duty, LessonsQuery{Region: europe}, []string{"UA-1"}},
		{"by outcome", duty, LessonsQuery{Outcome: demarchev1.Outcome_OUTCOME_CONTAINED}, []string{"GN-3"}},
		{"by text in the lessons", duty, LessonsQuery{Text: "FUND"}, []string{"UA-1"}},
		{"limit", duty, LessonsQuery{Limit: 1}, []string{"GN-2"}},
	}
	for _, c := range cases {
		got, err := a.Lessons(context.Background(), c.p, c.q)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var gotIDs []string
		for _, l := range got {
			gotIDs = append(gotIDs, l.GetCrisisId())
			if l.GetOutcome() == "" || l.GetClosedAt() == nil || len(l.GetLessons()) == 0 || l.GetCrisisType() == "" || l.GetRegion() == "" {
				t.Errorf("%s: %s is missing a field: %v", c.name, l.GetCrisisId(), l)
			}
		}
		if !slices.Equal(gotIDs, c.want) {
			t.Errorf("%s: %v, want %v", c.name, gotIDs, c.want)
		}
	}
	ecowas := &authn.Principal{Subject: "ecowas", Roles: []demarchev1.Role{demarchev1.Role_ROLE_PARTNER}, Partner: "ECOWAS"}
	if _, err := a.Lessons(context.Background(), ecowas, LessonsQuery{}); !errors.Is(err, errs.ErrForbidden) {
		t.Errorf("a partner's lessons: %v, want forbidden", err)
	}
}
