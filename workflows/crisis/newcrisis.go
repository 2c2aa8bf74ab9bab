package crisis

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// NewCrisisParams is what the opener of a crisis says; NewCrisis fills the rest.
type NewCrisisParams struct {
	// ID is the crisis id; empty: a readable new one, <CC>-<YYYYMMDD>-<5 base32
	// characters> (early warning passes its situation's id).
	ID              string
	Title           string
	CountryCode     string
	CrisisType      demarchev1.CrisisType
	Severity        int32
	Confidentiality demarchev1.Confidentiality
	// FirstSignalAt starts the warning-to-action clock; zero: the opening.
	FirstSignalAt time.Time
	// OpenedBy is the principal (or service) opening the crisis.
	OpenedBy   string
	Drill      bool
	SharedWith []string
	// LeadPresence is the field presence leading on the ground (its id in
	// the presences registry; empty: none named).
	LeadPresence string
}

// NewCrisis is the one constructor of a new crisis, for the CLI, the HTTP API
// and early warning: the id when none is given, the region from the country,
// opened_at = now, first_signal_at defaulting to opened_at and clamped to now
// when in the future (a source's clock ahead of ours). It does not validate:
// Open does.
func NewCrisis(p NewCrisisParams, now time.Time) *demarchev1.Crisis {
	region, _ := demarchev1.RegionOf(p.CountryCode)
	first := p.FirstSignalAt
	if first.IsZero() || first.After(now) {
		first = now
	}
	id := p.ID
	if id == "" {
		id = NewCrisisID(p.CountryCode, now)
	}
	return &demarchev1.Crisis{
		Id:              id,
		Title:           p.Title,
		CountryCode:     p.CountryCode,
		Region:          region,
		CrisisType:      p.CrisisType,
		Severity:        p.Severity,
		Confidentiality: p.Confidentiality,
		OpenedAt:        timestamppb.New(now),
		FirstSignalAt:   timestamppb.New(first),
		OpenedBy:        p.OpenedBy,
		Drill:           p.Drill,
		SharedWith:      p.SharedWith,
		LeadPresence:    p.LeadPresence,
	}
}

// NewCrisisID makes a readable, subject-safe crisis id: country (XX when it is
// not two letters, so validation names the country, not the id), date, and 5
// random base32 characters, e.g. GN-20261127-K7Q3P.
func NewCrisisID(country string, now time.Time) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (it crashes the program instead)
	suffix := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)[:5]
	if len(country) != 2 {
		country = "XX"
	}
	return fmt.Sprintf("%s-%s-%s", country, now.UTC().Format("20060102"), suffix)
}

// DrillIDPrefix starts every drill id a person chose (DrillID). A real
// crisis's id (NewCrisisID: two letters, a dash, a date) never starts so, so
// a drill's id can never be taken by, or reused for, a real crisis.
const DrillIDPrefix = "DRILL-"

// maxDrillName bounds the chosen part of a drill id (ids are at most 64).
const maxDrillName = 40

// DrillID is the id of a drill its opener named: DRILL-<tag>-<name>, the tag
// six characters derived from the opener's subject. Each opener names drills
// in a namespace of their own, so a name taken by someone else's crisis
// (which the opener may not be cleared to know of) can never be asked for.
func DrillID(opener, name string) (string, error) {
	switch {
	case len(name) > maxDrillName:
		return "", fmt.Errorf("a drill's name is at most %d characters (yours: %d)", maxDrillName, len(name))
	case !drillName.MatchString(name):
		return "", fmt.Errorf("%q: a drill's name is letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	sum := sha256.Sum256([]byte("demarche drill namespace/" + opener))
	tag := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])[:6]
	return DrillIDPrefix + tag + "-" + name, nil
}

// IsDrillID reports whether an id has the form of a chosen drill id.
func IsDrillID(id string) bool { return strings.HasPrefix(id, DrillIDPrefix) }

var drillName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
