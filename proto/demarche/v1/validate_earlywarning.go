package demarchev1

// Input rules of the earlywarning service's messages (see validate.go).

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode/utf8"
)

// sourcePattern keeps a signal's source safe as a NATS subject token and KV key.
var sourcePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{1,31}$`)

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
	switch n := len(x.GetSignals()); {
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
