package demarchev1

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func validCrisis() *Crisis {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	return &Crisis{
		Id: "GN-20261127-K7Q3P", Title: "Coup attempt", CountryCode: "GN", Region: Region_REGION_AFRICA,
		CrisisType: CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, Severity: 4,
		Confidentiality: Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedAt: timestamppb.New(now),
		FirstSignalAt: timestamppb.New(now.Add(-time.Hour)),
	}
}

func TestCrisisValidateAcceptsAValidCrisis(t *testing.T) {
	if err := validCrisis().Validate(); err != nil {
		t.Fatalf("valid crisis rejected: %v", err)
	}
}

func TestCrisisValidateNamesEachFailingField(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Crisis)
		field  string
		reason string
	}{
		{"empty title", func(c *Crisis) { c.Title = "  " }, "title", "is required"},
		{"long title", func(c *Crisis) { c.Title = strings.Repeat("x", 201) }, "title", "at most 200"},
		{"unknown country", func(c *Crisis) { c.CountryCode = "XX" }, "country_code", "not an ISO 3166-1"},
		{"lower-case country", func(c *Crisis) { c.CountryCode = "gn" }, "country_code", "not an ISO 3166-1"},
		{"missing country", func(c *Crisis) { c.CountryCode = "" }, "country_code", "is required"},
		{"region mismatch", func(c *Crisis) { c.Region = Region_REGION_EUROPE }, "region", "does not match country GN"},
		{"severity 9", func(c *Crisis) { c.Severity = 9 }, "severity", "allowed: 1 to 5"},
		{"severity 0", func(c *Crisis) { c.Severity = 0 }, "severity", "allowed: 1 to 5"},
		{"no type", func(c *Crisis) { c.CrisisType = 0 }, "crisis_type", "unconstitutional-change"},
		{"unknown type number", func(c *Crisis) { c.CrisisType = 99 }, "crisis_type", "is required"},
		{"no confidentiality", func(c *Crisis) { c.Confidentiality = 0 }, "confidentiality", "restricted"},
		{"bad id", func(c *Crisis) { c.Id = "a.b>" }, "id", "letters, digits"},
		{"no opened_at", func(c *Crisis) { c.OpenedAt = nil }, "opened_at", "is required"},
		{"signal after opening", func(c *Crisis) { c.FirstSignalAt = timestamppb.New(c.OpenedAt.AsTime().Add(time.Minute)) }, "first_signal_at", "after opened_at"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validCrisis()
			tc.mutate(c)
			err := c.Validate()
			var verr *ValidationError
			if !errors.As(err, &verr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want a ValidationError matching ErrInvalid, got %v", err)
			}
			if len(verr.Fields) != 1 || verr.Fields[0].Field != tc.field {
				t.Fatalf("want exactly field %q to fail, got %v", tc.field, err)
			}
			if !strings.Contains(verr.Fields[0].Reason, tc.reason) {
				t.Fatalf("reason %q does not say %q", verr.Fields[0].Reason, tc.reason)
			}
		})
	}
}

func TestWorkflowInputPrefixesNestedFields(t *testing.T) {
	c := validCrisis()
	c.Severity = 7
	in := &CrisisWorkflowInput{Crisis: c, DrillPolicy: &DrillPolicy{StageDuration: durationpb.New(time.Millisecond)}}
	var verr *ValidationError
	if !errors.As(in.Validate(), &verr) {
		t.Fatal("want a validation error")
	}
	if !verr.HasField("crisis.severity") || !verr.HasField("drill_policy.stage_duration") || len(verr.Fields) != 2 {
		t.Fatalf("want crisis.severity and drill_policy.stage_duration, got %v", verr)
	}
	if err := (&CrisisWorkflowInput{}).Validate(); err == nil || !strings.Contains(err.Error(), "crisis: is required") {
		t.Fatalf("missing crisis not reported: %v", err)
	}
}

func TestEventValidation(t *testing.T) {
	now := timestamppb.Now()
	if err := (&StageEntered{CrisisId: "GN-1", Stage: Stage_STAGE_GOOD_OFFICES, EnteredAt: now}).Validate(); err != nil {
		t.Fatalf("valid event rejected: %v", err)
	}
	var verr *ValidationError
	err := (&StageEntered{CrisisId: "GN-1"}).Validate()
	if !errors.As(err, &verr) || !verr.HasField("stage") || !verr.HasField("entered_at") {
		t.Fatalf("missing stage and time not both reported: %v", err)
	}
	err = (&StageCompleted{CrisisId: "GN-1", Stage: 42, CompletedAt: now}).Validate()
	if !errors.As(err, &verr) || !verr.HasField("stage") {
		t.Fatalf("unknown stage number accepted: %v", err)
	}
	err = (&CrisisOpened{}).Validate()
	if !errors.As(err, &verr) || !verr.HasField("crisis") {
		t.Fatalf("CrisisOpened without crisis accepted: %v", err)
	}
}

func TestEnumSlugsRoundTrip(t *testing.T) {
	for _, s := range CrisisTypeSlugs() {
		ct, err := ParseCrisisType(s)
		if err != nil || ct.Slug() != s {
			t.Fatalf("slug %q: parsed %v, %v", s, ct, err)
		}
	}
	if got, _ := ParseStage("STAGE_FACT_FINDING"); got != Stage_STAGE_FACT_FINDING {
		t.Fatalf("full enum name not accepted: %v", got)
	}
	if got, _ := ParseStage("Good_Offices"); got != Stage_STAGE_GOOD_OFFICES {
		t.Fatalf("short name not accepted: %v", got)
	}
	if _, err := ParseCrisisType("coup"); err == nil || !strings.Contains(err.Error(), "election-violence") {
		t.Fatalf("unknown type error does not list what is allowed: %v", err)
	}
	if Region_REGION_ASIA_PACIFIC.Slug() != "asia-pacific" {
		t.Fatalf("region slug: %s", Region_REGION_ASIA_PACIFIC.Slug())
	}
}

func TestEveryCountryHasOneRegion(t *testing.T) {
	seen := map[string]Region{}
	for r, codes := range regionCountries {
		for _, c := range strings.Fields(codes) {
			if prev, dup := seen[c]; dup {
				t.Errorf("%s is in %s and %s", c, prev.Slug(), r.Slug())
			}
			if len(c) != 2 || strings.ToUpper(c) != c {
				t.Errorf("%q is not an upper-case alpha-2 code", c)
			}
			seen[c] = r
		}
	}
	if len(seen) < 240 {
		t.Errorf("only %d countries known", len(seen))
	}
}

func TestDecisionKindIsTheOneofFieldName(t *testing.T) {
	kinds := DecisionKinds()
	if len(kinds) != 15 || kinds[0] != "triage" || kinds[2] != "engagement" || kinds[3] != "council-action" || kinds[4] != "field-report" || kinds[5] != "fact-finding-added" || kinds[6] != "fact-finding-mandate" || kinds[10] != "standby-team-handed-back" || kinds[14] != "closure" {
		t.Fatalf("kinds: %v", kinds)
	}
	r := &DecisionRequest{Decision: &DecisionRequest_FundingDecision{FundingDecision: &FundingDecision{}}}
	if got := r.DecisionKind(); got != "funding-decision" {
		t.Fatalf("kind %q", got)
	}
	if got := (&DecisionRequest{}).DecisionKind(); got != "" {
		t.Fatalf("empty request has kind %q", got)
	}
}

func TestNewDecisionRequestFillsTheFieldOfItsType(t *testing.T) {
	r := NewDecisionRequest("bob", "why", &FundingDecision{RequestId: "FR-1", Approve: true})
	if r.DecisionKind() != "funding-decision" || r.GetFundingDecision().GetRequestId() != "FR-1" || r.GetPrincipal() != "bob" {
		t.Fatalf("request: %v", r)
	}
	if NewDecisionRequest("bob", "why", &Crisis{}) != nil {
		t.Fatal("a message that is no decision was wrapped")
	}
}

func TestOpenCrisisRequestAndRoles(t *testing.T) {
	nan := math.NaN()
	r := &OpenCrisisRequest{Crisis: &Crisis{}, Playbook: "bad name!", Drill: &DrillSettings{TimeScale: nan}}
	err := r.Validate()
	var verr *ValidationError
	if !errors.As(err, &verr) || !verr.HasField("drill.time_scale") || !verr.HasField("drill.decision_delay") || !verr.HasField("playbook") || !verr.HasField("crisis.country_code") {
		t.Fatalf("open request: %v", err)
	}
	if err := (&DrillPolicy{StageDuration: durationpb.New(time.Second), TimeScale: nan}).Validate(); err == nil {
		t.Fatal("a NaN time scale passed")
	}
	d := &DecisionRequest{Principal: "a", Rationale: "r", Roles: []Role{Role_ROLE_ANALYST, Role(99)},
		Decision: &DecisionRequest_Triage{Triage: &WarningTriage{Assessment: "x"}}}
	if err := d.Validate(); !errors.As(err, &verr) || !verr.HasField("roles[1]") {
		t.Fatalf("unknown role: %v", err)
	}
	w := &WarnControl{Principal: "a", Warning: &Warning{Source: "s", Summary: "x", Severity: 9}}
	if err := w.Validate(); !errors.As(err, &verr) || !verr.HasField("warning.severity") || !verr.HasField("warning.observed_at") {
		t.Fatalf("warn control: %v", err)
	}
}

func TestControlCharactersAreRefused(t *testing.T) {
	c := validCrisis()
	c.Title = "Coup \x1b[31mattempt"
	var verr *ValidationError
	if err := c.Validate(); !errors.As(err, &verr) || !verr.HasField("title") {
		t.Fatalf("escape in a title: %v", err)
	}
	w := &Warning{Source: "acled", Summary: "line one\nline two\u0085", Severity: 3, ObservedAt: c.GetOpenedAt()}
	if err := w.Validate(); !errors.As(err, &verr) || !verr.HasField("summary") {
		t.Fatalf("C1 control in a summary: %v", err)
	}
	w.Summary = "line one\nline two\twith a tab"
	if err := w.Validate(); err != nil {
		t.Fatalf("line breaks and tabs are allowed: %v", err)
	}
}

func TestTimestampsFarInTheFutureAreRefused(t *testing.T) {
	w := &Warning{Source: "acled", Summary: "x", Severity: 3, ObservedAt: timestamppb.New(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))}
	var verr *ValidationError
	if err := w.Validate(); !errors.As(err, &verr) || !verr.HasField("observed_at") {
		t.Fatalf("a warning observed in 9999: %v", err)
	}
}
