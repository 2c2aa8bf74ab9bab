package playbook

import (
	"errors"
	"strings"
	"testing"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func TestEveryBuiltinPlaybookLoads(t *testing.T) {
	all, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	types := map[demarchev1.CrisisType]string{}
	for _, p := range all {
		types[p.GetCrisisType()] = p.GetName()
	}
	for _, slug := range demarchev1.CrisisTypeSlugs() {
		ct, _ := demarchev1.ParseCrisisType(slug)
		if types[ct] == "" {
			t.Errorf("no playbook for crisis type %s", slug)
		}
		p, err := ForType(ct)
		if err != nil || p.GetCrisisType() != ct {
			t.Errorf("ForType(%s) = %v, %v", slug, p.GetName(), err)
		}
	}
	ep, err := Get("election-violence")
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.GetPhases()[1].GetStages()) != 2 {
		t.Fatalf("election-violence should run good offices beside fact-finding: %v", ep.GetPhases()[1])
	}
	if _, err := Get("nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "general") {
		t.Fatalf("unknown playbook: %v", err)
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	bad := `
name: broken
version: ""
crisis_type: coup
phases:
  - [warning, good-offices]
  - [good-offices, teatime]
  - [sustained-follow-up]
deadlines:
  warning: {due: 12h, at_risk: 24h}
  good-offices: {due: soon, at_risk: 1h}
  fact-finding: {due: 12h, at_risk: 6h}
`
	_, err := Parse("broken.yaml", []byte(bad))
	if !errors.Is(err, demarchev1.ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	for _, want := range []string{
		"broken.yaml",
		`crisis_type: "coup" is not a crisis type`,
		`phases[1][1]: "teatime" is not a stage`,
		`deadlines.good-offices.due: "soon" is not a duration`,
		`deadlines.fact-finding: no phase runs "fact-finding"`,
		"version: is required",
		"good-offices runs twice",
		"phases[0][0].deadline.at_risk: must be a positive duration shorter than due",
		"follow_up: is required when sustained-follow-up runs",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestParseRejectsUnknownFieldsWithLine(t *testing.T) {
	_, err := Parse("typo.yaml", []byte("name: x\nphasez: []\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "phasez") {
		t.Fatalf("unknown field not reported with its line: %v", err)
	}
}
