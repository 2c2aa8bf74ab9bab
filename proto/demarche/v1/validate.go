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

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{2,99}$`)

const maxTitle = 200

func (c *checker) id(field, v string) {
	switch {
	case v == "":
		c.fail(field, "is required")
	case !idPattern.MatchString(v):
		c.fail(field, "%q must be 3-100 characters of letters, digits, '-' or '_', starting with a letter or digit", v)
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
	case t.AsTime().Year() >= 2100:
		// A fixed bound, not "now": rules also run inside workflows, which
		// must not read the clock.
		c.fail(field, "%s is after the year 2099", t.AsTime().Format(time.RFC3339))
	}
}

func (c *checker) stage(field string, s Stage) {
	if _, ok := Stage_name[int32(s)]; !ok || s == Stage_STAGE_UNSPECIFIED {
		c.fail(field, "%d is not a stage (allowed: %s)", s, strings.Join(StageSlugs(), ", "))
	}
}

func (c *checker) crisis(x *Crisis) {
	c.id("id", x.GetId())
	if len(x.GetId()) > 64 {
		c.fail("id", "is %d characters long (allowed: at most 64)", len(x.GetId()))
	}
	if p := x.GetPreviousCrisisId(); p != "" {
		c.id("previous_crisis_id", p)
	}
	title := strings.TrimSpace(x.GetTitle())
	switch {
	case title == "":
		c.fail("title", "is required (a short description, 1-%d characters)", maxTitle)
	case !utf8.ValidString(title):
		c.fail("title", "is not valid UTF-8")
	case utf8.RuneCountInString(title) > maxTitle:
		c.fail("title", "is %d characters long (allowed: at most %d)", utf8.RuneCountInString(title), maxTitle)
	case hasControl(title) || strings.ContainsAny(title, "\n\r"):
		c.fail("title", "contains control characters or line breaks (one line of plain text)")
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
	if lp := x.GetLeadPresence(); lp != "" {
		if err := CheckPresenceID(lp); err != nil {
			c.fail("lead_presence", "%v", err)
		}
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
	if s := x.GetTimeScale(); !(s >= 0 && s <= 1) { // NaN fails too
		c.fail("time_scale", "%g is out of range (allowed: above 0 up to 1; 0 means 1)", s)
	}
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
	if x.GetPlaybook() != nil {
		c.nested("playbook", true, func(c *checker) { c.playbook(x.GetPlaybook()) })
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

// Validate checks a playbook's structure: known stages, each at most once, a
// deadline for every decision stage, the standby deadline when an envoy is
// deployed, and a follow-up plan when follow-up runs.
func (x *Playbook) Validate() error {
	c := newChecker("playbook " + x.GetName())
	c.playbook(x)
	return c.err()
}

func (c *checker) playbook(x *Playbook) {
	if !idPattern.MatchString(x.GetName()) {
		c.fail("name", "%q must be 3-100 characters of letters, digits, '-' or '_'", x.GetName())
	}
	if strings.TrimSpace(x.GetVersion()) == "" {
		c.fail("version", "is required (bump it whenever the playbook changes)")
	}
	if t := x.GetCrisisType(); t == CrisisType_CRISIS_TYPE_UNSPECIFIED || CrisisType_name[int32(t)] == "" {
		c.fail("crisis_type", "is required (allowed: %s)", strings.Join(CrisisTypeSlugs(), ", "))
	}
	if len(x.GetPhases()) == 0 {
		c.fail("phases", "at least one phase is required")
	}
	seen := map[Stage]bool{}
	for i, ph := range x.GetPhases() {
		if len(ph.GetStages()) == 0 {
			c.fail(fmt.Sprintf("phases[%d]", i), "is empty: list the stages that run side by side")
		}
		for j, st := range ph.GetStages() {
			field := fmt.Sprintf("phases[%d][%d]", i, j)
			s := st.GetStage()
			if s == Stage_STAGE_UNSPECIFIED || s == Stage_STAGE_CLOSED || Stage_name[int32(s)] == "" {
				c.fail(field, "%s is not a stage a playbook can run (allowed: %s)", s.Slug(), strings.Join(enumSlugs(Stage(0).Descriptor())[:6], ", "))
				continue
			}
			if seen[s] {
				c.fail(field, "%s runs twice: a stage may appear in one phase only", s.Slug())
			}
			seen[s] = true
			if s == Stage_STAGE_SUSTAINED_FOLLOW_UP {
				continue // follow-up has its own plan, not a single deadline
			}
			if st.GetDeadline() == nil {
				c.fail(field, "%s has no deadline (add it under deadlines)", s.Slug())
				continue
			}
			c.deadline(field+".deadline", st.GetDeadline())
		}
	}
	if seen[Stage_STAGE_ENVOY_DEPLOYMENT] {
		if x.GetStandbyTeam() == nil {
			c.fail("standby_team", "is required when envoy-deployment runs (the standby team deploys within 72h)")
		} else {
			c.deadline("standby_team", x.GetStandbyTeam())
		}
	}
	if seen[Stage_STAGE_SUSTAINED_FOLLOW_UP] {
		f := x.GetFollowUp()
		switch {
		case f == nil:
			c.fail("follow_up", "is required when sustained-follow-up runs")
		default:
			if d := f.GetInterval(); d == nil || !d.IsValid() || d.AsDuration() <= 0 {
				c.fail("follow_up.interval", "must be a positive duration, e.g. 720h")
			}
			if f.GetCheckIns() < 1 {
				c.fail("follow_up.check_ins", "%d: at least 1", f.GetCheckIns())
			}
			if f.GetCheckInsPerRun() < 1 {
				c.fail("follow_up.check_ins_per_run", "%d: at least 1", f.GetCheckInsPerRun())
			}
			if s := f.GetRelapseSeverity(); s < 1 || s > 5 {
				c.fail("follow_up.relapse_severity", "%d is out of range (allowed: 1 to 5)", s)
			}
		}
	}
}

func (c *checker) deadline(field string, d *Deadline) {
	due, risk := d.GetDue(), d.GetAtRisk()
	if due == nil || !due.IsValid() || due.AsDuration() <= 0 {
		c.fail(field+".due", "must be a positive duration, e.g. 72h")
		return
	}
	if risk == nil || !risk.IsValid() || risk.AsDuration() <= 0 || risk.AsDuration() >= due.AsDuration() {
		c.fail(field+".at_risk", "must be a positive duration shorter than due (%s)", due.AsDuration())
	}
}

const maxText = 4000

func (c *checker) text(field, v string, required bool) {
	switch {
	case strings.TrimSpace(v) == "" && required:
		c.fail(field, "is required")
	case !utf8.ValidString(v):
		c.fail(field, "is not valid UTF-8")
	case utf8.RuneCountInString(v) > maxText:
		c.fail(field, "is %d characters long (allowed: at most %d)", utf8.RuneCountInString(v), maxText)
	case hasControl(v):
		c.fail(field, "contains control characters (terminal escapes and the like are not allowed; line breaks and tabs are)")
	}
}

// hasControl finds control characters other than line breaks and tabs:
// text is printed in terminals and pages, where they would act.
func hasControl(v string) bool {
	for _, r := range v {
		if (r < 0x20 && r != '\n' && r != '\t' && r != '\r') || (r >= 0x7f && r <= 0x9f) {
			return true
		}
	}
	return false
}

func (c *checker) principal(field, v string) {
	switch {
	case strings.TrimSpace(v) == "":
		c.fail(field, "is required: say who decides (e.g. --as alice)")
	case len(v) > 100 || strings.ContainsAny(v, " \t\n"):
		c.fail(field, "%q must be a principal name without spaces, at most 100 characters", v)
	}
}

// roles checks a principal's roles: each a known role.
func (c *checker) roles(field string, rs []Role) {
	for i, r := range rs {
		if _, ok := Role_name[int32(r)]; !ok || r == Role_ROLE_UNSPECIFIED {
			c.fail(fmt.Sprintf("%s[%d]", field, i), "%d is not a role (allowed: %s)", r, strings.Join(enumSlugs(Role(0).Descriptor()), ", "))
		}
	}
}

func (c *checker) enumSet(field string, n int32, names map[int32]string, allowed []string) {
	if _, ok := names[n]; !ok || n == 0 {
		c.fail(field, "is required (allowed: %s)", strings.Join(allowed, ", "))
	}
}

// DecisionKind names the decision a request carries: its oneof field's name in
// kebab case, e.g. "good-offices"; "" when none. The schema is the one place a
// decision is named: workflow, CLI verbs, HTTP bodies and events use this name.
func (x *DecisionRequest) DecisionKind() string {
	f := x.ProtoReflect().WhichOneof(decisionOneof())
	if f == nil {
		return ""
	}
	return kindOf(f)
}

// DecisionKinds lists every decision kind, in schema order.
func DecisionKinds() []string {
	fields := decisionOneof().Fields()
	out := make([]string, fields.Len())
	for i := range out {
		out[i] = kindOf(fields.Get(i))
	}
	return out
}

func decisionOneof() protoreflect.OneofDescriptor {
	return (*DecisionRequest)(nil).ProtoReflect().Descriptor().Oneofs().ByName("decision")
}

func kindOf(f protoreflect.FieldDescriptor) string {
	return strings.ReplaceAll(string(f.Name()), "_", "-")
}

// MaxFundingRequestUSD bounds one request; larger sums go through other channels.
const MaxFundingRequestUSD = 100_000_000

// Validate checks a decision's own rules; the workflow checks the rules that
// depend on the crisis (stage, pending decisions, four-eyes).
func (x *DecisionRequest) Validate() error {
	c := newChecker("decision")
	c.principal("principal", x.GetPrincipal())
	c.roles("roles", x.GetRoles())
	c.text("rationale", x.GetRationale(), true)
	if x.GetDecision() == nil {
		c.fail("decision", "is required: one of %s", strings.Join(DecisionKinds(), ", "))
	} else {
		c.checkInputs(x) // each field's rules, from its (input) options: decisionform.go
		if cl := x.GetClosure(); cl != nil {
			c.handOver(cl)
		}
	}
	return c.err()
}

// handOver checks a closure's hand-over: a regional organisation is named
// when, and only when, the crisis is handed over to one.
func (c *checker) handOver(cl *ClosureDecision) {
	to, org := cl.GetHandOverTo(), cl.GetHandOverPartner()
	switch {
	case to == HandOverRecipient_HAND_OVER_RECIPIENT_REGIONAL_ORGANISATION && org == "":
		c.fail("closure.hand_over_partner", "is required when handing over to a regional organisation: its registry name, e.g. ECOWAS (see demarche partner list)")
	case to != HandOverRecipient_HAND_OVER_RECIPIENT_REGIONAL_ORGANISATION && org != "":
		c.fail("closure.hand_over_partner", "names a regional organisation, but hand_over_to is %q (allowed only with regional-organisation)", enumSlug(to.Descriptor(), to.Number()))
	}
	// Which organisation may take over is the crisis's to say (its partners'
	// roles: workflows/crisis closure.go), as for a joint inquiry's partner.
}

// Validate checks an escalation or de-escalation.
func (x *SeverityControl) Validate() error {
	c := newChecker("severity control")
	c.principal("principal", x.GetPrincipal())
	c.roles("roles", x.GetRoles())
	c.text("reason", x.GetReason(), true)
	return c.err()
}

// Validate checks a skip or reopen.
func (x *StageControl) Validate() error {
	c := newChecker("stage control")
	c.principal("principal", x.GetPrincipal())
	c.roles("roles", x.GetRoles())
	c.text("reason", x.GetReason(), true)
	if s := x.GetStage(); s == Stage_STAGE_UNSPECIFIED || s == Stage_STAGE_CLOSED || Stage_name[int32(s)] == "" {
		c.fail("stage", "is required (allowed: %s)", strings.Join(StageSlugs()[:6], ", "))
	}
	return c.err()
}

// Validate checks a partner's role acknowledgement.
func (x *PartnerRoleAck) Validate() error {
	c := newChecker("partner role")
	c.text("partner", x.GetPartner(), true)
	c.enumSet("role", int32(x.GetRole()), PartnerRoleKind_name, enumSlugs(PartnerRoleKind(0).Descriptor()))
	c.principal("principal", x.GetPrincipal())
	c.roles("roles", x.GetRoles())
	return c.err()
}

// Validate checks an operator's warning.
func (x *WarnControl) Validate() error {
	c := newChecker("warn control")
	c.principal("principal", x.GetPrincipal())
	c.roles("roles", x.GetRoles())
	c.nested("warning", x.GetWarning() != nil, func(c *checker) { c.warning(x.GetWarning()) })
	return c.err()
}

// Validate checks a comment control: who comments, and the comment.
func (x *CommentControl) Validate() error {
	c := newChecker("comment control")
	c.principal("principal", x.GetPrincipal())
	c.roles("roles", x.GetRoles())
	c.text("text", x.GetText(), true)
	return c.err()
}

// presenceIDPattern is a field presence's id as the presences registry
// (pkg/presences) and a field officer's presence claim write it.
var presenceIDPattern = regexp.MustCompile(`^[A-Z][A-Z0-9-]{1,31}$`)

// CheckPresenceID checks the form of a field presence's id (UNOWA, RC-HN);
// whether it is registered is the registry's to say.
func CheckPresenceID(id string) error {
	if !presenceIDPattern.MatchString(id) {
		return fmt.Errorf("%q is not a field presence's id (2-32 upper-case letters, digits or '-', starting with a letter, e.g. UNOWA)", truncateID(id))
	}
	return nil
}

// partnerNamePattern is a partner organisation's name as the registry
// keeps it (upper case, safe as a NATS subject token), e.g. ECOWAS.
var partnerNamePattern = regexp.MustCompile(`^[A-Z][A-Z0-9_-]{1,31}$`)

// MaxSharedWith bounds how many organisations one crisis is shared with.
const MaxSharedWith = 64

// partners checks a list of partner names: each well formed, none twice
// (seen collects the names across lists, so a name cannot be in two).
func (c *checker) partners(field string, names []string, seen map[string]string) {
	if len(names) > MaxSharedWith {
		c.fail(field, "names %d organisations (allowed: at most %d)", len(names), MaxSharedWith)
		return
	}
	for i, n := range names {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !partnerNamePattern.MatchString(n):
			c.fail(f, "%q is not a partner organisation's name (upper case letters, digits, '-' or '_', e.g. ECOWAS; see demarche partner list)", truncateText(n, 40))
		case seen[n] != "":
			c.fail(f, "%s is named twice (also in %s)", n, seen[n])
		default:
			seen[n] = f
		}
	}
}

// Validate checks a change of sharing: at least one organisation, each well
// formed and named once; whether each is registered is the gateway's check
// (the registry is the partners service's), whether each change applies is
// the crisis's.
func (x *SharingControl) Validate() error {
	c := newChecker("sharing control")
	c.principal("principal", x.GetPrincipal())
	c.roles("roles", x.GetRoles())
	c.text("reason", x.GetReason(), true)
	if len(x.GetShare()) == 0 && len(x.GetUnshare()) == 0 {
		c.fail("share", "name at least one partner organisation to share with or (in unshare) to stop sharing with")
	}
	seen := map[string]string{}
	c.partners("share", x.GetShare(), seen)
	c.partners("unshare", x.GetUnshare(), seen)
	return c.err()
}

// Validate checks a request to open a crisis.
func (x *OpenCrisisRequest) Validate() error {
	c := newChecker("crisis")
	c.nested("crisis", x.GetCrisis() != nil, func(c *checker) { c.crisis(x.GetCrisis()) })
	if p := x.GetPlaybook(); p != "" && !idPattern.MatchString(p) {
		c.fail("playbook", "%q is not a playbook name (see demarche playbook list)", p)
	}
	if d := x.GetDrill(); d != nil {
		c.nested("drill", true, func(c *checker) { c.drillSettings(d) })
	}
	return c.err()
}

func (c *checker) drillSettings(d *DrillSettings) {
	if s := d.GetTimeScale(); !(s > 0 && s <= 1) {
		c.fail("time_scale", "%g is out of range (allowed: above 0 up to 1)", s)
	}
	if dd := d.GetDecisionDelay(); dd == nil || !dd.IsValid() || dd.AsDuration() < MinDrillStageDuration || dd.AsDuration() > MaxDrillStageDuration {
		c.fail("decision_delay", "%s is out of range (allowed: %s to %s)", durationString(dd), MinDrillStageDuration, MaxDrillStageDuration)
	}
}

// Validate checks a warning attached to a crisis.
func (x *Warning) Validate() error {
	c := newChecker("warning")
	c.warning(x)
	return c.err()
}

func (c *checker) warning(x *Warning) {
	c.text("source", x.GetSource(), true)
	c.text("summary", x.GetSummary(), true)
	if s := x.GetSeverity(); s < 1 || s > 5 {
		c.fail("severity", "%d is out of range (allowed: 1 to 5)", s)
	}
	if s := x.GetScoreSeverity(); s < 0 || s > 5 {
		c.fail("score_severity", "%d is out of range (allowed: 0, not scored, or 1 to 5)", s)
	}
	c.timestamp("observed_at", x.GetObservedAt())
}

// Rules of the lifecycle events: every event names its crisis, plus its own.

// Validate checks a DecisionRecorded event.
func (x *DecisionRecorded) Validate() error {
	c := newChecker("DecisionRecorded")
	c.id("crisis_id", x.GetCrisisId())
	if x.GetDecision() == nil {
		c.fail("decision", "is required")
	} else if err := x.GetDecision().GetRequest().Validate(); err != nil {
		c.fail("decision.request", "%v", err)
	}
	return c.err()
}

// Validate checks a DeadlineAtRisk event.
func (x *DeadlineAtRisk) Validate() error {
	c := newChecker("DeadlineAtRisk")
	c.id("crisis_id", x.GetCrisisId())
	if x.GetDeadline().GetDueAt() == nil {
		c.fail("deadline.due_at", "is required")
	}
	return c.err()
}

// Validate checks a DeadlineBreached event.
func (x *DeadlineBreached) Validate() error {
	c := newChecker("DeadlineBreached")
	c.id("crisis_id", x.GetCrisisId())
	if x.GetDeadline().GetDueAt() == nil {
		c.fail("deadline.due_at", "is required")
	}
	return c.err()
}

// Validate checks a PartnerRoleAcknowledged event.
func (x *PartnerRoleAcknowledged) Validate() error {
	c := newChecker("PartnerRoleAcknowledged")
	c.id("crisis_id", x.GetCrisisId())
	if err := x.GetAck().Validate(); err != nil {
		c.fail("ack", "%v", err)
	}
	return c.err()
}

// Validate checks a SeverityChanged event.
func (x *SeverityChanged) Validate() error {
	c := newChecker("SeverityChanged")
	c.id("crisis_id", x.GetCrisisId())
	for _, s := range []int32{x.GetFrom(), x.GetTo()} {
		if s < 1 || s > 5 {
			c.fail("severity", "%d is out of range (allowed: 1 to 5)", s)
		}
	}
	return c.err()
}

// Validate checks a WarningAttached event.
func (x *WarningAttached) Validate() error {
	c := newChecker("WarningAttached")
	c.id("crisis_id", x.GetCrisisId())
	if err := x.GetWarning().Validate(); err != nil {
		c.fail("warning", "%v", err)
	}
	return c.err()
}

// Validate checks a SharingChanged event.
func (x *SharingChanged) Validate() error {
	c := newChecker("SharingChanged")
	c.id("crisis_id", x.GetCrisisId())
	if len(x.GetAdded()) == 0 && len(x.GetRemoved()) == 0 {
		c.fail("added", "a change adds or removes at least one organisation")
	}
	c.partners("shared_with", x.GetSharedWith(), map[string]string{})
	seen := map[string]string{}
	c.partners("added", x.GetAdded(), seen)
	c.partners("removed", x.GetRemoved(), seen)
	return c.err()
}

// Validate checks a CommentAdded event.
func (x *CommentAdded) Validate() error {
	c := newChecker("CommentAdded")
	c.id("crisis_id", x.GetCrisisId())
	c.nested("comment", x.GetComment() != nil, func(c *checker) {
		c.principal("principal", x.GetComment().GetPrincipal())
		c.text("text", x.GetComment().GetText(), true)
	})
	return c.err()
}

// Validate checks a StageSkipped event.
func (x *StageSkipped) Validate() error {
	c := newChecker("StageSkipped")
	c.id("crisis_id", x.GetCrisisId())
	c.stage("stage", x.GetStage())
	return c.err()
}

// Validate checks a StageReopened event.
func (x *StageReopened) Validate() error {
	c := newChecker("StageReopened")
	c.id("crisis_id", x.GetCrisisId())
	c.stage("stage", x.GetStage())
	return c.err()
}

// Validate checks a FollowUpCheckInDue event.
func (x *FollowUpCheckInDue) Validate() error {
	c := newChecker("FollowUpCheckInDue")
	c.id("crisis_id", x.GetCrisisId())
	if x.GetNumber() < 1 {
		c.fail("number", "must be at least 1")
	}
	return c.err()
}

// Validate checks a FollowUpCheckInRecorded event.
func (x *FollowUpCheckInRecorded) Validate() error {
	c := newChecker("FollowUpCheckInRecorded")
	c.id("crisis_id", x.GetCrisisId())
	if x.GetNumber() < 1 {
		c.fail("number", "must be at least 1")
	}
	return c.err()
}

// Validate checks a CrisisRelapsed event.
func (x *CrisisRelapsed) Validate() error {
	c := newChecker("CrisisRelapsed")
	c.id("crisis_id", x.GetCrisisId())
	c.text("reason", x.GetReason(), true)
	return c.err()
}

// Validate checks a FundsDisbursed event.
func (x *FundsDisbursed) Validate() error {
	c := newChecker("FundsDisbursed")
	c.id("crisis_id", x.GetCrisisId())
	if x.GetAmountUsd() <= 0 {
		c.fail("amount_usd", "must be positive")
	}
	c.id("disbursement_key", x.GetDisbursementKey())
	return c.err()
}

// Validate checks a WarningRaised event.
func (x *WarningRaised) Validate() error {
	c := newChecker("WarningRaised")
	c.id("crisis_id", x.GetCrisisId())
	if _, ok := RegionOf(x.GetCountryCode()); !ok {
		c.fail("country_code", "%q is not an ISO 3166-1 alpha-2 country code", x.GetCountryCode())
	}
	if x.GetScore() < x.GetThreshold() {
		c.fail("score", "%g is below the threshold %g", x.GetScore(), x.GetThreshold())
	}
	if len(x.GetContributions()) == 0 {
		c.fail("contributions", "a warning names the signals that raised it")
	}
	return c.err()
}

// Validate checks a DeadlineReport a stage's workflow sends its crisis.
func (x *DeadlineReport) Validate() error {
	c := newChecker("DeadlineReport")
	c.nested("deadline", x.GetDeadline() != nil, func(c *checker) {
		d := x.GetDeadline()
		c.text("name", d.GetName(), true)
		c.stage("stage", d.GetStage())
		c.timestamp("started_at", d.GetStartedAt())
		c.timestamp("due_at", d.GetDueAt())
	})
	return c.err()
}

// Validate checks a CheckInDue a follow-up workflow sends its crisis.
func (x *CheckInDue) Validate() error {
	c := newChecker("CheckInDue")
	if x.GetNumber() < 1 {
		c.fail("number", "%d is out of range (allowed: 1 or more)", x.GetNumber())
	}
	c.timestamp("due_at", x.GetDueAt())
	return c.err()
}

// NewDecisionRequest wraps a decision message (a *FundingDecision, ...) in a
// request, in the oneof field whose type it is; nil when no field takes it.
func NewDecisionRequest(principal, rationale string, d proto.Message) *DecisionRequest {
	r := &DecisionRequest{Principal: principal, Rationale: rationale}
	fields := decisionOneof().Fields()
	for i := 0; i < fields.Len(); i++ {
		if f := fields.Get(i); f.Message().FullName() == d.ProtoReflect().Descriptor().FullName() {
			r.ProtoReflect().Set(f, protoreflect.ValueOfMessage(d.ProtoReflect()))
			return r
		}
	}
	return nil
}

// truncateText shortens a value quoted back in an error.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Validate checks a CrisisAlteredOutside event.
func (x *CrisisAlteredOutside) Validate() error {
	c := newChecker("CrisisAlteredOutside")
	c.id("crisis_id", x.GetCrisisId())
	c.nested("operation", x.GetOperation() != nil, func(c *checker) {
		op := x.GetOperation()
		if _, ok := OutsideOperationKind_name[int32(op.GetKind())]; !ok || op.GetKind() == OutsideOperationKind_OUTSIDE_OPERATION_KIND_UNSPECIFIED {
			c.fail("kind", "is required (allowed: terminate, cancel, reset)")
		}
		c.timestamp("at", op.GetAt())
		if op.GetWorkflowId() == "" {
			c.fail("workflow_id", "is required")
		}
	})
	return c.err()
}

// Validate checks a stage workflow's outcome, as the crisis receives it.
func (x *StageOutcome) Validate() error {
	c := newChecker("stage outcome")
	c.stage("stage", x.GetStage())
	if x.GetRun() < 1 {
		c.fail("run", "must be 1 or more (the stage run the outcome ends)")
	}
	if x.GetDisbursedUsd() < 0 {
		c.fail("disbursed_usd", "must not be negative")
	}
	return c.err()
}
