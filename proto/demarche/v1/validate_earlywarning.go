package demarchev1

// Input rules of the earlywarning service's messages (see validate.go).

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// sourcePattern keeps a signal's source safe as a NATS subject token and KV key.
var sourcePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{1,31}$`)

// A signal's source is who sent it, taken from the credential, never from the
// body (services/earlywarning): a signal source's NATS user speaks for its
// source alone (demarche.signals.<source>, a name of letters, digits and
// dashes, never "_"), the operator identity for "operator", and a person's
// signal through the gateway is that person's, PersonSource(subject). A
// person's source has "_" in it, so it is never a NATS source's name.
const (
	// PersonSourcePrefix begins every person's source.
	PersonSourcePrefix = "person_"
	// OperatorSource is the operator identity's signals (demarche.signals.operator).
	OperatorSource = "operator"
)

// personSubjectPattern is a subject that stays readable in its source.
var personSubjectPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,23}$`)

// streamSourcePattern is a source a NATS credential may speak for: a source
// name without "_" (a person's source is never one).
var streamSourcePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,31}$`)

// PersonSource is the source of the signals a person sends: person_<subject>
// for a short lower-case subject, else person_h_<first 20 hex digits of the
// subject's SHA-256> (an OIDC subject may be long, mixed-case or hold any
// character; "_h_" cannot be a readable subject's, so the two never meet).
func PersonSource(subject string) string {
	if personSubjectPattern.MatchString(subject) {
		return PersonSourcePrefix + subject
	}
	sum := sha256.Sum256([]byte(subject))
	return PersonSourcePrefix + "h_" + hex.EncodeToString(sum[:10])
}

// IsPersonSource says whether a source is a person's (PersonSource).
func IsPersonSource(source string) bool {
	return strings.HasPrefix(source, PersonSourcePrefix) && sourcePattern.MatchString(source)
}

// IsStreamSource says whether a source may be spoken for by a NATS
// credential on demarche.signals.<source>: a valid source without "_".
func IsStreamSource(source string) bool { return streamSourcePattern.MatchString(source) }

// exercisePattern keeps an exercise id safe in keys and crisis ids.
var exercisePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,39}$`)

// Signal limits.
const (
	MaxSignalWeight   = 100
	MaxSignalSourceID = 200
	// MaxIngestBatch bounds the signals of one ingest request.
	MaxIngestBatch = 5000
)

func (c *checker) signal(x *Signal) {
	switch s := x.GetSource(); {
	case s == "":
		c.fail("source", "is required (lower case, e.g. acled, ucdp, ecowarn)")
	case !sourcePattern.MatchString(s):
		c.fail("source", "%q must be 2-32 characters of lower-case letters, digits, '-' or '_'", s)
	}
	switch id := x.GetSourceId(); {
	case strings.TrimSpace(id) == "":
		c.fail("source_id", "is required (the source's own id of the signal)")
	case !utf8.ValidString(id):
		c.fail("source_id", "is not valid UTF-8")
	case len(id) > MaxSignalSourceID:
		c.fail("source_id", "is %d bytes long (allowed: at most %d)", len(id), MaxSignalSourceID)
	}
	switch cc := x.GetCountryCode(); {
	case cc == "":
		c.fail("country_code", "is required (an ISO 3166-1 alpha-2 code such as GN, ML or UA)")
	default:
		if _, ok := RegionOf(cc); !ok {
			c.fail("country_code", "%q is not an ISO 3166-1 alpha-2 country code (upper case, e.g. GN, ML, UA)", cc)
		}
	}
	if t := x.GetCrisisType(); t == CrisisType_CRISIS_TYPE_UNSPECIFIED || CrisisType_name[int32(t)] == "" {
		c.fail("crisis_type", "is required (allowed: %s)", strings.Join(CrisisTypeSlugs(), ", "))
	}
	if w := x.GetWeight(); math.IsNaN(w) || w <= 0 || w > MaxSignalWeight {
		c.fail("weight", "%g is out of range (allowed: above 0 up to %d)", w, MaxSignalWeight)
	}
	c.timestamp("observed_at", x.GetObservedAt())
	c.text("summary", x.GetSummary(), true)
	if f := x.GetFatalities(); f < 0 {
		c.fail("fatalities", "%d is negative", f)
	}
	c.text("location", x.GetLocation(), false)
	if s := x.GetSeverity(); s < 0 || s > 5 {
		c.fail("severity", "%d is out of range (allowed: 1 to 5, or 0 to derive it from the weight)", s)
	}
	c.text("rule", x.GetRule(), false)
	c.text("rules_version", x.GetRulesVersion(), false)
}

// Validate checks one signal as it enters (bus, ingest endpoint, CLI).
func (x *Signal) Validate() error {
	c := newChecker("signal")
	c.signal(x)
	return c.err()
}

// Validate checks the batch envelope; each signal is checked on its own by the
// service so that one bad signal rejects only itself.
func (x *IngestRequest) Validate() error {
	c := newChecker("ingest request")
	if id := x.GetImportId(); id != "" && !importPattern.MatchString(id) {
		c.fail("import_id", "%q must be 1-64 letters, digits or '-'", truncateID(id))
	}
	finish := x.GetFinishSituations()
	switch {
	case len(finish) > 0 && x.GetImportId() == "":
		c.fail("finish_situations", "finish an import by its import_id (none given)")
	case len(finish) > 0 && len(x.GetSignals()) > 0:
		c.fail("finish_situations", "the import's last request carries no signals (%d given)", len(x.GetSignals()))
	case len(finish) > MaxImportSituations:
		c.fail("finish_situations", "%d situations (allowed: at most %d)", len(finish), MaxImportSituations)
	}
	for i, k := range finish {
		if len(k) == 0 || len(k) > 64 {
			c.fail(fmt.Sprintf("finish_situations[%d]", i), "%q is not a situation key (<country>-<crisis type>)", truncateID(k))
			break
		}
	}
	switch n := len(x.GetSignals()); {
	case n == 0 && len(finish) > 0:
	case n == 0:
		c.fail("signals", "at least one signal is required")
	case n > MaxIngestBatch:
		c.fail("signals", "%d signals in one request (allowed: at most %d; split the batch)", n, MaxIngestBatch)
	}
	if x.GetExercise() != nil {
		c.nested("exercise", true, func(c *checker) {
			if id := x.GetExercise().GetId(); !exercisePattern.MatchString(id) {
				c.fail("id", "%q must be 1-40 letters, digits or '-'", id)
			}
			c.nested("drill", x.GetExercise().GetDrill() != nil, func(c *checker) { c.drillSettings(x.GetExercise().GetDrill()) })
		})
	}
	return c.err()
}

// MaxImportSituations bounds the situations an import's last request names.
const MaxImportSituations = 10_000

var importPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

func truncateID(s string) string {
	if len(s) > 70 {
		return s[:70] + "…"
	}
	return s
}

// MaxSituations bounds a SituationsRequest's limit.
const MaxSituations = 200

// Validate checks a situations request.
func (x *SituationsRequest) Validate() error {
	c := newChecker("situations request")
	if l := x.GetLimit(); l < 0 || l > MaxSituations {
		c.fail("limit", "%d is out of range (allowed: 0 for the default 50, up to %d)", l, MaxSituations)
	}
	return c.err()
}

// MaxSignalsQueryLimit bounds a SignalsQuery's limit.
const MaxSignalsQueryLimit = 5000

// Validate checks a query of the signal store.
func (x *SignalsQuery) Validate() error {
	c := newChecker("signals query")
	if cc := x.GetCountryCode(); cc != "" {
		if _, ok := RegionOf(cc); !ok {
			c.fail("country_code", "%q is not an ISO 3166-1 alpha-2 country code (upper case, e.g. GN, ML, UA; empty for every country)", truncateID(cc))
		}
	}
	if t := x.GetCrisisType(); CrisisType_name[int32(t)] == "" {
		c.fail("crisis_type", "%d is not a crisis type (allowed: %s, or none for every type)", t, strings.Join(CrisisTypeSlugs(), ", "))
	}
	if s, u := x.GetSince(), x.GetUntil(); s != nil && u != nil && !s.AsTime().Before(u.AsTime()) {
		c.fail("until", "must be after since (%s)", s.AsTime().Format(time.RFC3339))
	}
	if l := x.GetLimit(); l < 0 || l > MaxSignalsQueryLimit {
		c.fail("limit", "%d is out of range (allowed: 0 for the default 1000, up to %d)", l, MaxSignalsQueryLimit)
	}
	if len(x.GetAfter()) > 400 {
		c.fail("after", "is %d characters long: pass a page's next as it came", len(x.GetAfter()))
	}
	return c.err()
}

// Validate checks a score request.
func (x *ScoreRequest) Validate() error {
	c := newChecker("score request")
	if _, ok := RegionOf(x.GetCountryCode()); !ok {
		c.fail("country_code", "%q is not an ISO 3166-1 alpha-2 country code (upper case, e.g. GN, ML, UA)", x.GetCountryCode())
	}
	if t := x.GetCrisisType(); t == CrisisType_CRISIS_TYPE_UNSPECIFIED || CrisisType_name[int32(t)] == "" {
		c.fail("crisis_type", "is required (allowed: %s)", strings.Join(CrisisTypeSlugs(), ", "))
	}
	return c.err()
}

// SituationKey names a situation (country + crisis type) as a subject-safe
// token, e.g. "GN-unconstitutional-change". It is not a crisis id: early
// warning opens each of a situation's crises as an episode with an id of its
// own (see WarningRaised.crisis_id, ScoreResponse.crisis_id).
func SituationKey(country string, t CrisisType) string {
	return fmt.Sprintf("%s-%s", country, t.Slug())
}

// MaxRulesFile bounds a rules file sent to the service (the default rules
// are a few kilobytes).
const MaxRulesFile = 1 << 20

// Validate checks an apply-rules request's envelope; the rules themselves
// are checked by early warning's own parser (line, field and reason).
func (x *ApplyRulesRequest) Validate() error {
	c := newChecker("apply rules request")
	switch n := len(x.GetRules()); {
	case n == 0:
		c.fail("rules", "is required (the rules file's YAML)")
	case n > MaxRulesFile:
		c.fail("rules", "%d bytes is too large (at most %d)", n, MaxRulesFile)
	}
	if len(x.GetName()) > 200 || !utf8.ValidString(x.GetName()) {
		c.fail("name", "must be valid UTF-8 of at most 200 bytes")
	}
	if strings.TrimSpace(x.GetAppliedBy()) == "" {
		c.fail("applied_by", "is required (the gateway stamps it from the caller's credential)")
	}
	return c.err()
}

// MaxDialogueAge is how far back an early-warning dialogue may be dated: a
// record a year late is history, not early warning.
const MaxDialogueAge = 366 * 24 * time.Hour

// Validate checks an early-warning dialogue to record: the situation
// (country and crisis type), the organisation (whether the partner registry
// knows it is early warning's to check), the day it was held (not ahead of
// now by more than a day, nor more than a year back), what was discussed and
// its outcome, and who records it (stamped by the gateway).
func (x *RecordDialogueRequest) Validate() error {
	c := newChecker("dialogue")
	d := x.GetDialogue()
	if d == nil {
		c.fail("dialogue", "is required: country_code, crisis_type, organisation, date, summary and outcome")
		return c.err()
	}
	if _, ok := RegionOf(d.GetCountryCode()); !ok {
		c.fail("dialogue.country_code", "%q is not an ISO 3166-1 alpha-2 country code (upper case, e.g. GN, ML, UA)", d.GetCountryCode())
	}
	if t := d.GetCrisisType(); t == CrisisType_CRISIS_TYPE_UNSPECIFIED || CrisisType_name[int32(t)] == "" {
		c.fail("dialogue.crisis_type", "is required (allowed: %s)", strings.Join(CrisisTypeSlugs(), ", "))
	}
	switch o := d.GetOrganisation(); {
	case strings.TrimSpace(o) == "":
		c.fail("dialogue.organisation", "is required: a regional organisation of the partner registry (demarche partner list)")
	case len(o) > 64 || strings.ContainsAny(o, " \t\n.*>"):
		c.fail("dialogue.organisation", "%q is not a partner's name (allowed: a registry name such as ECOWAS, AU; see demarche partner list)", o)
	}
	switch t := d.GetDate(); {
	case t == nil:
		c.fail("dialogue.date", "is required: the day the dialogue was held (YYYY-MM-DD)")
	case !t.IsValid():
		c.fail("dialogue.date", "is not a valid time")
	case t.AsTime().After(time.Now().Add(24 * time.Hour)):
		c.fail("dialogue.date", "%s is ahead: record a dialogue once held", t.AsTime().UTC().Format(time.DateOnly))
	case t.AsTime().Before(time.Now().Add(-MaxDialogueAge)):
		c.fail("dialogue.date", "%s is more than a year back (allowed: within the last year)", t.AsTime().UTC().Format(time.DateOnly))
	}
	c.text("dialogue.summary", d.GetSummary(), true)
	c.text("dialogue.outcome", d.GetOutcome(), true)
	c.principal("dialogue.recorded_by", d.GetRecordedBy())
	return c.err()
}
