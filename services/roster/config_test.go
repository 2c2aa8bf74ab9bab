package roster_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/demarche/demarche/pkg/errs"
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
