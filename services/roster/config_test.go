package roster_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/roster"
)

func TestDemoAndExampleRostersAreValid(t *testing.T) {
	if demo := roster.DemoRoster(); len(demo) < 10 {
		t.Fatalf("demo roster: %d experts", len(demo))
	}
	experts, err := roster.LoadRoster("../../deploy/roster.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if experts[0].GetKind() != demarchev1.ExpertKind_EXPERT_KIND_SENIOR_ENVOY || experts[0].GetRegions()[0] != demarchev1.Region_REGION_AFRICA || !experts[0].GetAvailable() {
		t.Fatalf("example roster's first expert: %v", experts[0])
	}
}

// TestBadRosterFilesSayWhatAndWhere: file, line, entry, field, why and what is allowed.
func TestBadRosterFilesSayWhatAndWhere(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		says       []string
	}{
		{"empty", "", []string{"roster.yaml: the file is empty", `"experts"`}},
		{"unknown kind", "experts:\n  - id: env-one\n    name: One\n    kind: ambassador\n",
			[]string{`roster.yaml: line 4: experts[0] (id "env-one"): kind: "ambassador" is not a known kind (allowed: senior-envoy, mediator, standby-expert)`}},
		{"unknown region", "experts:\n  - id: env-one\n    name: One\n    kind: mediator\n    regions: [africa, atlantis]\n",
			[]string{`line 5: experts[0] (id "env-one"): regions: "atlantis" is not a known regions (allowed: africa`}},
		{"languages not a list", "experts:\n  - id: env-one\n    name: One\n    kind: mediator\n    languages: fr\n",
			[]string{`line 5: experts[0] (id "env-one"): languages: must be a list`}},
		{"no kind, no name", "experts:\n  - id: env-one\n",
			[]string{`experts[0] (id "env-one"): name: is required`, `experts[0] (id "env-one"): kind:`}},
		{"duplicate", "experts:\n  - {id: env-one, name: One, kind: mediator}\n  - {id: env-one, name: Two, kind: mediator}\n",
			[]string{`line 3: experts[1] (id "env-one"): id: "env-one" is already the id of the expert at line 2`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := roster.ParseRoster("roster.yaml", []byte(tc.yaml))
			if !errors.Is(err, errs.ErrInvalid) {
				t.Fatalf("accepted, or not ErrInvalid: %v", err)
			}
			for _, want := range tc.says {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
		})
	}
}

// TestRosterFileIsAppliedAtEachStart: a restart with another file stores the
// experts as it lists them, and keeps an expert it no longer lists but marks
// it unavailable (bookings name it; it is never proposed again).
func TestRosterFileIsAppliedAtEachStart(t *testing.T) {
	srv := natstest.ServerIn(t, t.TempDir())
	defer srv.Stop()
	demo := roster.DemoRoster()
	svc, err := roster.Start(context.Background(), srv.URL(), demo, crises, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	svc.Stop()
	kept := proto.Clone(demo[0]).(*demarchev1.Expert)
	kept.Name = "Renamed"
	svc, err = roster.Start(context.Background(), srv.URL(), []*demarchev1.Expert{kept}, crises, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	experts, err := svc.Store.Experts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(experts) != len(demo) {
		t.Fatalf("%d experts after the restart, want the %d kept", len(experts), len(demo))
	}
	for _, e := range experts {
		switch {
		case e.GetId() == kept.GetId() && (e.GetName() != "Renamed" || !e.GetAvailable()):
			t.Errorf("listed expert %v, want it as the file says", e)
		case e.GetId() != kept.GetId() && e.GetAvailable():
			t.Errorf("expert %s no longer listed is still available", e.GetId())
		}
	}
	if _, err := roster.Start(context.Background(), srv.URL(), nil, crises, zap.NewNop()); !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), "--roster FILE") {
		t.Fatalf("start without experts: %v", err)
	}
}
