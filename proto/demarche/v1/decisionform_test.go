package demarchev1

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Every decision kind and every field of its message is described for
// people in the schema: a kind names itself in words, each field has a type
// the surfaces can ask for, a label in plain words and help. A new kind
// without them fails here, before any surface shows it badly.
func TestDecisionFormsDescribeEveryKindAndField(t *testing.T) {
	forms := DecisionForms()
	if got := len(forms); got != len(DecisionKinds()) {
		t.Fatalf("%d forms for %d kinds", got, len(DecisionKinds()))
	}
	aliases := map[string]string{}
	for i, f := range forms {
		if f.Kind != DecisionKinds()[i] {
			t.Errorf("form %d is %q, kind %q", i, f.Kind, DecisionKinds()[i])
		}
		o, _ := proto.GetExtension(f.field.Options(), E_Kind).(*DecisionKindOptions)
		if o.GetLabel() == "" || o.GetSummary() == "" {
			t.Errorf("%s: its oneof field needs a (kind) option with label and summary", f.Kind)
		}
		for _, a := range append([]string{f.Kind}, f.Aliases...) {
			if other, dup := aliases[a]; dup {
				t.Errorf("%s: verb %q is also %s's", f.Kind, a, other)
			}
			aliases[a] = f.Kind
		}
		flags := map[string]bool{"rationale": true, "request-id": true} // the verbs' own flags
		for _, in := range f.Inputs {
			o, _ := proto.GetExtension(in.field.Options(), E_Input).(*DecisionInputOptions)
			switch {
			case in.Type == InputUnsupported:
				t.Errorf("%s: a %s field cannot be typed in (text, list of text, enum, integer, bool or Timestamp)", in.Path, in.field.Kind())
			case o.GetLabel() == "" || o.GetHelp() == "":
				t.Errorf("%s: needs an (input) option with label and help", in.Path)
			case strings.Contains(in.Label, "_"):
				t.Errorf("%s: label %q is not plain words", in.Path, in.Label)
			case flags[in.Flag]:
				t.Errorf("%s: flag --%s is taken", in.Path, in.Flag)
			}
			flags[in.Flag] = true
			if in.Source == DecisionInputSource_DECISION_INPUT_SOURCE_ROSTER && in.ExpertKind != "" {
				if _, err := parseEnum(ExpertKind(0).Descriptor(), "expert kind", in.ExpertKind); err != nil {
					t.Errorf("%s: expert_kind: %v", in.Path, err)
				}
			}
			if in.Default != "" {
				if _, err := f.Build(time.Now(), func(*DecisionInput) []string { return nil }); err != nil {
					t.Errorf("%s: default %q: %v", in.Path, in.Default, err)
				}
			}
		}
	}
	in := DecisionFormOf("funding-request").Inputs[2]
	if in.Name != "amount_usd" || in.Max != MaxFundingRequestUSD || in.Min != 1 {
		t.Errorf("amount_usd's range is %d to %d, MaxFundingRequestUSD %d", in.Min, in.Max, MaxFundingRequestUSD)
	}
	if w := DecisionFormOf("good-offices").Inputs[0].Choices[2]; w.Value != "demarche" || w.Words != "démarche" {
		t.Errorf("good-offices choice 3: %+v", w)
	}
}

// The input rules read from the options refuse what the hand-written rules
// of v0.1.0 refused: an empty decision of each kind fails on these fields.
func TestEmptyDecisionsFailOnTheirRequiredFields(t *testing.T) {
	want := map[string][]string{
		"triage":                   {"triage.assessment"},
		"good-offices":             {"good_offices.option"},
		"fact-finding-mandate":     {"fact_finding_mandate.terms_of_reference", "fact_finding_mandate.mandating_body", "fact_finding_mandate.team", "fact_finding_mandate.report_due"},
		"fact-finding-report":      {"fact_finding_report.summary"},
		"envoy-appointment":        {"envoy_appointment.standby_team"},
		"engagement":               {"engagement.type", "engagement.by", "engagement.with"},
		"council-action":           {"council_action.type", "council_action.date", "council_action.outcome"},
		"field-report":             {"field_report.type", "field_report.summary"},
		"standby-team-handed-back": {"standby_team_handed_back.handed_to"},
		"standby-team-deployed":    {"standby_team_deployed.location"},
		"funding-request":          {"funding_request.request_id", "funding_request.fund", "funding_request.amount_usd", "funding_request.purpose"},
		"funding-decision":         {"funding_decision.request_id"},
		"follow-up-check-in":       {"follow_up_check_in.recommendation"},
		"closure":                  {"closure.outcome", "closure.lessons"},
	}
	for _, f := range DecisionForms() {
		r, err := f.Build(time.Now(), func(*DecisionInput) []string { return nil })
		if err != nil {
			t.Fatal(err)
		}
		r.Principal, r.Rationale = "a", "why"
		if f.Kind == "follow-up-check-in" {
			r.GetFollowUpCheckIn().Recommendation = 0 // its default is continue
		}
		if f.Kind == "fact-finding-added" {
			// Nothing to fill in: left empty it adds a UN inquiry.
			if err := r.Validate(); err != nil {
				t.Errorf("%s: empty decision refused: %v", f.Kind, err)
			}
			continue
		}
		var verr *ValidationError
		if err := r.Validate(); !errors.As(err, &verr) {
			t.Fatalf("%s: empty decision passed: %v", f.Kind, err)
		}
		var got []string
		for _, fe := range verr.Fields {
			got = append(got, fe.Field)
		}
		if !reflect.DeepEqual(got, want[f.Kind]) {
			t.Errorf("%s: failed on %v, want %v", f.Kind, got, want[f.Kind])
		}
	}
	r := NewDecisionRequest("a", "why", &EnvoyAppointment{Envoy: "env-a"})
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "name at least one standby-team expert") {
		t.Errorf("appointment without a team: %v", err)
	}
	r = NewDecisionRequest("a", "why", &FundingRequest{RequestId: "FR-1", Fund: "f", Purpose: "p", AmountUsd: MaxFundingRequestUSD + 1})
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "funding_request.amount_usd: 100000001 is out of range (allowed: 1 to 100000000)") {
		t.Errorf("too large a request: %v", err)
	}
}

// Build reads typed-in values the way people give them.
func TestDecisionFormBuild(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	values := map[string][]string{
		"terms_of_reference": {"establish the facts"}, "mandating_body": {"security-council"},
		"team": {"ff-a, ff-b", "ff-c"}, "report_due": {"2026-12-24"},
	}
	r, err := DecisionFormOf("fact-finding-mandate").Build(now, func(in *DecisionInput) []string { return values[in.Name] })
	if err != nil {
		t.Fatal(err)
	}
	want := &FactFindingMandate{TermsOfReference: "establish the facts", MandatingBody: MandatingBody_MANDATING_BODY_SECURITY_COUNCIL,
		Team: []string{"ff-a", "ff-b", "ff-c"}, ReportDue: timestamppb.New(time.Date(2026, 12, 24, DueHour, 0, 0, 0, time.UTC))}
	if !proto.Equal(r.GetFactFindingMandate(), want) {
		t.Errorf("mandate: %v", r.GetFactFindingMandate())
	}
	r, _ = DecisionFormOf("closure").Build(now, func(in *DecisionInput) []string {
		return map[string][]string{"outcome": {"averted"}, "lessons": {"talks, not threats\nthe region led"}}[in.Name]
	})
	if got := r.GetClosure().GetLessons(); len(got) != 2 || got[0] != "talks, not threats" {
		t.Errorf("lessons are one a line, commas kept: %q", got)
	}
	for kind, v := range map[string]map[string]string{
		"good-offices":         {"option": "tea"},
		"funding-request":      {"amount_usd": "12k"},
		"fact-finding-mandate": {"report_due": "soon"},
	} {
		_, err := DecisionFormOf(kind).Build(now, func(in *DecisionInput) []string {
			if s, ok := v[in.Name]; ok {
				return []string{s}
			}
			return nil
		})
		var ie *InputError
		if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s %v: %v", kind, v, err)
		}
	}
	r = NewDecisionRequest("a", "why", &FundingRequest{})
	r.FillGenerated(func() string { return "FR-new" })
	if r.GetFundingRequest().GetRequestId() != "FR-new" {
		t.Errorf("generated id: %v", r)
	}
}

// The Security Council's tools left the good-offices options (issue 27,
// item 3): the form offers neither, and typing one in is refused, saying
// where it went (council-action); a request that carries one still passes
// Validate, so a decision recorded before reads back (the workflow refuses a
// new one, rule council-track).
func TestCouncilToolsLeftTheGoodOfficesOptions(t *testing.T) {
	f := DecisionFormOf("good-offices")
	var offered []string
	for _, c := range f.Inputs[0].Choices {
		offered = append(offered, c.Value)
	}
	if strings.Join(offered, ",") != "quiet-diplomacy,public-statement,demarche" {
		t.Fatalf("good-offices options offered: %v", offered)
	}
	for _, withdrawn := range []string{"security-council-dialogue", "horizon-scanning"} {
		_, err := f.Build(time.Now(), func(*DecisionInput) []string { return []string{withdrawn} })
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "no longer offered") || !strings.Contains(err.Error(), "council-action") {
			t.Errorf("%s: %v, want refused naming council-action", withdrawn, err)
		}
	}
	old := NewDecisionRequest("a", "why", &GoodOfficesDecision{Option: GoodOfficesOption_GOOD_OFFICES_OPTION_HORIZON_SCANNING})
	old.Roles = []Role{Role_ROLE_HEAD_OF_DEPARTMENT}
	if err := old.Validate(); err != nil {
		t.Errorf("a recorded decision with a withdrawn option no longer validates: %v", err)
	}
}
