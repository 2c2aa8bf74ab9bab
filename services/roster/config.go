package roster

import (
	"context"
	_ "embed"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/internal/configfile"
)

// The roster comes from a configuration file (YAML or JSON):
//
//	experts:
//	  - id: env-amara-diallo                # 3-100 letters, digits, '-' or '_'
//	    name: Amara Diallo
//	    kind: senior-envoy                  # senior-envoy, mediator or standby-expert
//	    languages: [fr, en, wo]
//	    regions: [africa]                   # africa, americas, asia-pacific, europe, middle-east
//	    expertise: [process-design]
//	    available: true                     # false while on leave
//
// At each start the service applies it: every listed expert is stored as the
// file says; an expert the bucket holds but the file no longer lists is kept
// (bookings name it) and marked unavailable, so it is never proposed again.

// DemoRosterFile is the embedded demo roster's name in messages.
const DemoRosterFile = "demo roster (embedded services/roster/demo-roster.json)"

//go:embed demo-roster.json
var demoRosterJSON []byte

// DemoRoster is the roster `demarche dev` loads: demo data, never production.
func DemoRoster() []*demarchev1.Expert {
	experts, err := ParseRoster(DemoRosterFile, demoRosterJSON)
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return experts
}

// LoadRoster reads and checks a roster file.
func LoadRoster(path string) ([]*demarchev1.Expert, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("roster file: %w", err)
	}
	return ParseRoster(path, data)
}

// ParseRoster decodes and checks a roster file (file names it in errors):
// every problem of every entry is reported (a *configfile.Error, matching
// errs.ErrInvalid), each with its line, entry, field, why and what is allowed.
func ParseRoster(file string, data []byte) ([]*demarchev1.Expert, error) {
	entries, p := configfile.List(file, data, "experts", func() *demarchev1.Expert { return &demarchev1.Expert{} })
	seen := map[string]int{}
	var out []*demarchev1.Expert
	for _, e := range entries {
		if first, dup := seen[e.Msg.GetId()]; dup {
			p.Fail(e.FieldLines["id"], e.Name, "id", "%q is already the id of the expert at line %d: each expert once", e.Msg.GetId(), first)
			continue
		}
		seen[e.Msg.GetId()] = e.Line
		out = append(out, e.Msg)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Apply stores the configured experts and marks unavailable those the bucket
// holds that the configuration no longer lists. It returns how many were
// stored (new or changed) and how many retired.
func (s *Store) Apply(ctx context.Context, experts []*demarchev1.Expert) (stored, retired int, err error) {
	have, err := s.Experts(ctx)
	if err != nil {
		return 0, 0, err
	}
	byID := map[string]*demarchev1.Expert{}
	for _, e := range have {
		byID[e.GetId()] = e
	}
	listed := map[string]bool{}
	for _, e := range experts {
		listed[e.GetId()] = true
		if old := byID[e.GetId()]; old != nil && proto.Equal(old, e) {
			continue
		}
		if err := s.PutExpert(ctx, e); err != nil {
			return stored, retired, err
		}
		stored++
	}
	for _, e := range have {
		if listed[e.GetId()] || !e.GetAvailable() {
			continue
		}
		off := proto.Clone(e).(*demarchev1.Expert)
		off.Available = false
		if err := s.PutExpert(ctx, off); err != nil {
			return stored, retired, err
		}
		retired++
	}
	return stored, retired, nil
}

// DemoRosterJSON is the demo roster file itself, for tests that run the
// services as their own processes (they pass it with --roster).
func DemoRosterJSON() []byte { return append([]byte(nil), demoRosterJSON...) }
