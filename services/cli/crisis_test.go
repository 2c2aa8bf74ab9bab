package cli

import (
	"strings"
	"testing"
	"time"
)

func validFlags() openFlags {
	return openFlags{title: "Coup attempt", country: "gn", crisisType: "unconstitutional-change", severity: 4,
		confidentiality: "public", drill: true, drillDelay: 10 * time.Second, drillTimeScale: 0.001}
}

func TestOpenFlagsBuildAValidInput(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	in, err := validFlags().input(now)
	if err != nil {
		t.Fatal(err)
	}
	c := in.GetCrisis()
	// The id is the platform's to mint: the CLI sends none (a drill's
	// --id is a name, sent as typed).
	if c.GetCountryCode() != "GN" || c.GetRegion().Slug() != "africa" || c.GetId() != "" {
		t.Fatalf("crisis built from flags: %v", c)
	}
	named := validFlags()
	named.id = "conakry-1"
	if in, err := named.input(now); err != nil || in.GetCrisis().GetId() != "conakry-1" {
		t.Fatalf("a drill's name: %v %v", in, err)
	}
	if !c.GetFirstSignalAt().AsTime().Equal(now) || in.GetDrill().GetDecisionDelay().AsDuration() != 10*time.Second || !c.GetDrill() {
		t.Fatalf("defaults: first signal %v, drill delay %v", c.GetFirstSignalAt().AsTime(), in.GetDrill().GetDecisionDelay().AsDuration())
	}
	if in.GetPlaybook() != "" || c.GetOpenedBy() != "" {
		t.Fatalf("the gateway chooses the playbook (%q) and the opener (%q)", in.GetPlaybook(), c.GetOpenedBy())
	}
}

func TestOpenFlagsReportEveryBadFlag(t *testing.T) {
	f := validFlags()
	f.title = ""
	f.country = "XX"
	f.severity = 9
	f.crisisType = "riot"
	f.confidentiality = "secret"
	f.firstSignal = "last tuesday"
	f.drillDelay = time.Millisecond
	f.drillTimeScale = 2
	f.playbook = "nope"
	_, err := f.input(time.Now())
	if err == nil {
		t.Fatal("bad flags accepted")
	}
	for _, want := range []string{
		"title (--title): is required",
		`country_code (--country): "XX" is not an ISO 3166-1 alpha-2`,
		"severity (--severity): 9 is out of range (allowed: 1 to 5)",
		`crisis_type (--type): "riot" is not a known crisis_type (allowed: election-violence`,
		`confidentiality (--confidentiality): "secret"`,
		`first_signal_at (--first-signal-at): "last tuesday" is not an RFC 3339 time`,
		"decision_delay (--drill-delay): 1ms is out of range",
		"time_scale (--drill-time-scale): 2 is out of range",
		`playbook (--playbook): playbook not found: "nope"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
