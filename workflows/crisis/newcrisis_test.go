package crisis

import (
	"regexp"
	"testing"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func TestNewCrisis(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	p := NewCrisisParams{Title: "Coup attempt", CountryCode: "GN", CrisisType: demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE,
		Severity: 4, Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedBy: "duty"}
	c := NewCrisis(p, now)
	if !regexp.MustCompile(`^GN-20261127-[A-Z2-7]{5}$`).MatchString(c.GetId()) {
		t.Errorf("generated id %q", c.GetId())
	}
	if c.GetRegion() != demarchev1.Region_REGION_AFRICA || c.GetOpenedBy() != "duty" || !c.GetOpenedAt().AsTime().Equal(now) {
		t.Errorf("defaults: %v", c)
	}
	if !c.GetFirstSignalAt().AsTime().Equal(now) {
		t.Errorf("first signal %v, want the opening", c.GetFirstSignalAt().AsTime())
	}
	if err := c.Validate(); err != nil {
		t.Errorf("constructed crisis does not validate: %v", err)
	}
	if other := NewCrisis(p, now); other.GetId() == c.GetId() {
		t.Errorf("two crises got the same id %s", c.GetId())
	}

	p.ID = "GN-20261127-K7Q3P" // as early warning reserves one for an episode
	p.FirstSignalAt = now.Add(-48 * time.Hour)
	if c := NewCrisis(p, now); c.GetId() != p.ID || !c.GetFirstSignalAt().AsTime().Equal(p.FirstSignalAt) {
		t.Errorf("given id and first signal: %v", c)
	}
	p.FirstSignalAt = now.Add(time.Minute) // a source's clock ahead of ours
	if c := NewCrisis(p, now); !c.GetFirstSignalAt().AsTime().Equal(now) {
		t.Errorf("future first signal %v, want clamped to now", c.GetFirstSignalAt().AsTime())
	}
	p.CountryCode = "Guinea"
	if c := NewCrisis(p, time.Now()); c.GetRegion() != demarchev1.Region_REGION_UNSPECIFIED {
		t.Errorf("unknown country got region %v", c.GetRegion())
	}
	if id := NewCrisisID("Guinea", now); !regexp.MustCompile(`^XX-20261127-`).MatchString(id) {
		t.Errorf("id for a bad country: %q", id)
	}
}
