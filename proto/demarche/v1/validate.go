package demarchev1

// Input rules, written once per message and enforced wherever an input enters:
// the CLI and API before starting a workflow, the workflow on its input, the
// event bus on publish and on consume. protovalidate annotations would be the
// natural home for these rules, but the buf/validate/validate.proto import cannot
// be resolved offline here (see DESIGN.md, pitfalls), so they live beside the
// schema, in Go, one method per message.

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ErrInvalid is matched (errors.Is) by every validation failure.
var ErrInvalid = errors.New("invalid input")

// FieldError says which field failed, and why (including what is allowed).
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap lets callers match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// ValidationError lists every field of one message that broke a rule.
type ValidationError struct {
	Message string
	Fields  []*FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return fmt.Sprintf("invalid %s: %s", e.Message, strings.Join(parts, "; "))
}

// Unwrap lets callers match ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// HasField reports whether the named field failed.
func (e *ValidationError) HasField(name string) bool {
	for _, f := range e.Fields {
		if f.Field == name {
			return true
		}
	}
	return false
}

// Validator is implemented by every message with input rules.
type Validator interface {
	Validate() error
}

// checker collects field errors of one message; nested messages are prefixed.
type checker struct {
	msg    string
	prefix string
	errs   []*FieldError
}

func newChecker(msg string) *checker { return &checker{msg: msg} }

func (c *checker) fail(field, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Field: c.prefix + field, Reason: fmt.Sprintf(format, args...)})
}

// nested runs a nested message's rules with its field name as prefix.
func (c *checker) nested(field string, present bool, check func(*checker)) {
	if !present {
		c.fail(field, "is required")
		return
	}
	saved := c.prefix
	c.prefix = saved + field + "."
	check(c)
	c.prefix = saved
}

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return &ValidationError{Message: c.msg, Fields: c.errs}
}

// idPattern keeps ids safe as NATS subject tokens and workflow ids.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$`)

const maxTitle = 200

func (c *checker) id(field, v string) {
	switch {
	case v == "":
		c.fail(field, "is required")
	case !idPattern.MatchString(v):
		c.fail(field, "%q must be 3-64 characters of letters, digits, '-' or '_', starting with a letter or digit", v)
	}
}

func (c *checker) timestamp(field string, t *timestamppb.Timestamp) {
	switch {
	case t == nil:
		c.fail(field, "is required")
	case !t.IsValid():
		c.fail(field, "is not a valid timestamp")
	case t.AsTime().Year() < 2000:
		c.fail(field, "%s is before the year 2000", t.AsTime().Format(time.RFC3339))
	}
}

func (c *checker) stage(field string, s Stage) {
	if _, ok := Stage_name[int32(s)]; !ok || s == Stage_STAGE_UNSPECIFIED {
		c.fail(field, "%d is not a stage (allowed: %s)", s, strings.Join(StageSlugs(), ", "))
	}
}

func (c *checker) crisis(x *Crisis) {
	c.id("id", x.GetId())
	title := strings.TrimSpace(x.GetTitle())
	switch {
	case title == "":
		c.fail("title", "is required (a short description, 1-%d characters)", maxTitle)
	case !utf8.ValidString(title):
		c.fail("title", "is not valid UTF-8")
	case utf8.RuneCountInString(title) > maxTitle:
		c.fail("title", "is %d characters long (allowed: at most %d)", utf8.RuneCountInString(title), maxTitle)
	}
	region, known := RegionOf(x.GetCountryCode())
	switch {
	case x.GetCountryCode() == "":
		c.fail("country_code", "is required (an ISO 3166-1 alpha-2 code such as GN, ML or UA)")
	case !known:
		c.fail("country_code", "%q is not an ISO 3166-1 alpha-2 country code (upper case, e.g. GN, ML, UA)", x.GetCountryCode())
	case x.GetRegion() != Region_REGION_UNSPECIFIED && x.GetRegion() != region:
		c.fail("region", "%s does not match country %s (which is in %s)", x.GetRegion().Slug(), x.GetCountryCode(), region.Slug())
	}
	if t := x.GetCrisisType(); t == CrisisType_CRISIS_TYPE_UNSPECIFIED || CrisisType_name[int32(t)] == "" {
		c.fail("crisis_type", "is required (allowed: %s)", strings.Join(CrisisTypeSlugs(), ", "))
	}
	if s := x.GetSeverity(); s < 1 || s > 5 {
		c.fail("severity", "%d is out of range (allowed: 1 to 5)", s)
	}
	if v := x.GetConfidentiality(); v == Confidentiality_CONFIDENTIALITY_UNSPECIFIED || Confidentiality_name[int32(v)] == "" {
		c.fail("confidentiality", "is required (allowed: %s)", strings.Join(ConfidentialitySlugs(), ", "))
	}
	c.timestamp("opened_at", x.GetOpenedAt())
	if fs := x.GetFirstSignalAt(); fs != nil && x.GetOpenedAt() != nil && fs.AsTime().After(x.GetOpenedAt().AsTime()) {
		c.fail("first_signal_at", "is after opened_at: the first warning signal cannot follow the opening")
	}
}

// Validate checks a crisis as it is opened or carried in an event.
func (x *Crisis) Validate() error {
	c := newChecker("crisis")
	c.crisis(x)
	return c.err()
}

// Validate checks a CrisisOpened event.
func (x *CrisisOpened) Validate() error {
	c := newChecker("CrisisOpened")
	c.nested("crisis", x.GetCrisis() != nil, func(c *checker) { c.crisis(x.GetCrisis()) })
	return c.err()
}

// Validate checks a StageEntered event.
func (x *StageEntered) Validate() error {
	c := newChecker("StageEntered")
	c.id("crisis_id", x.GetCrisisId())
	c.stage("stage", x.GetStage())
	c.timestamp("entered_at", x.GetEnteredAt())
	return c.err()
}

// Validate checks a StageCompleted event.
func (x *StageCompleted) Validate() error {
	c := newChecker("StageCompleted")
	c.id("crisis_id", x.GetCrisisId())
	c.stage("stage", x.GetStage())
	c.timestamp("completed_at", x.GetCompletedAt())
	if d := x.GetDuration(); d != nil && (!d.IsValid() || d.AsDuration() < 0) {
		c.fail("duration", "must be a non-negative duration")
	}
	return c.err()
}

// Validate checks a CrisisClosed event.
func (x *CrisisClosed) Validate() error {
	c := newChecker("CrisisClosed")
	c.id("crisis_id", x.GetCrisisId())
	c.timestamp("closed_at", x.GetClosedAt())
	if _, ok := Outcome_name[int32(x.GetOutcome())]; !ok {
		c.fail("outcome", "%d is not an outcome", x.GetOutcome())
	}
	return c.err()
}

// Drill stage durations are bounded so a drill neither spins nor runs for ever.
const (
	MinDrillStageDuration = time.Second
	MaxDrillStageDuration = 30 * 24 * time.Hour
)

func (c *checker) drillPolicy(x *DrillPolicy) {
	d := x.GetStageDuration()
	if d == nil {
		c.fail("stage_duration", "is required")
		return
	}
	if !d.IsValid() || d.AsDuration() < MinDrillStageDuration || d.AsDuration() > MaxDrillStageDuration {
		c.fail("stage_duration", "%s is out of range (allowed: %s to %s)", durationString(d), MinDrillStageDuration, MaxDrillStageDuration)
	}
}

func durationString(d *durationpb.Duration) string {
	if !d.IsValid() {
		return "invalid duration"
	}
	return d.AsDuration().String()
}

// Validate checks a drill policy.
func (x *DrillPolicy) Validate() error {
	c := newChecker("drill policy")
	c.drillPolicy(x)
	return c.err()
}

// Validate checks the input of a CrisisResponse workflow.
func (x *CrisisWorkflowInput) Validate() error {
	c := newChecker("crisis workflow input")
	c.nested("crisis", x.GetCrisis() != nil, func(c *checker) { c.crisis(x.GetCrisis()) })
	if x.GetDrillPolicy() != nil {
		c.nested("drill_policy", true, func(c *checker) { c.drillPolicy(x.GetDrillPolicy()) })
	}
	return c.err()
}

// Validate checks a publish request (the envelope; the data is checked by the bus).
func (x *PublishEventRequest) Validate() error {
	c := newChecker("publish request")
	c.id("event_id", x.GetEventId())
	c.id("crisis_id", x.GetCrisisId())
	if _, ok := RegionOf(x.GetCountryCode()); !ok {
		c.fail("country_code", "%q is not an ISO 3166-1 alpha-2 country code", x.GetCountryCode())
	}
	c.timestamp("time", x.GetTime())
	if x.GetData() == nil {
		c.fail("data", "is required")
	}
	return c.err()
}
