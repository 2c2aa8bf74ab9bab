// Package presences is the registry of the United Nations' field presences
// a crisis can be led from on the ground: the regional offices
// (¶22 "forward platforms for preventive diplomacy"), the political missions
// (¶26 "much smaller political missions"), the peacekeeping operations
// (¶29 "first line of crisis response") and the resident coordinators with
// their country teams (¶33 "resident coordinators and country teams").
// It is data (presences.json, or a file of the same form): each presence
// has an id, a kind, a name, the countries it covers and the paragraph of
// the report that names its kind of work. The gateway checks a crisis's lead
// presence against it; a field officer's credential names one of its ids.
package presences

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// DefaultRegistry is the embedded registry used when no file is configured.
//
//go:embed presences.json
var DefaultRegistry []byte

// ErrInvalidRegistry is matched (errors.Is) by every registry loading failure.
var ErrInvalidRegistry = errors.New("invalid field presences registry")

// ErrUnknown is returned when a presence id is not in the registry, or does
// not cover the country named.
var ErrUnknown = errors.New("unknown field presence")

// Kinds of presence, as the report groups them.
const (
	RegionalOffice        = "regional-office"
	PoliticalMission      = "political-mission"
	PeacekeepingOperation = "peacekeeping-operation"
	ResidentCoordinator   = "resident-coordinator"
)

// Kinds lists the kinds a presence may be.
var Kinds = []string{RegionalOffice, PoliticalMission, PeacekeepingOperation, ResidentCoordinator}

// citation is the house form of a citation of the report: the pilcrow, the
// paragraph's number, a space and a phrase of it in double quotes
// (devstack/repocheck checks that the paragraph says it).
var citation = regexp.MustCompile("^\u00b6\\d+ \"[^\"]+\"$")

// citationForm says the house form in errors.
const citationForm = "\u00b6N \"phrase of paragraph N\""

// Presence is one field presence.
type Presence struct {
	// ID is its short code (UNOWA), the value of a crisis's lead_presence
	// and of a field officer's presence claim.
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Countries it covers (ISO 3166-1 alpha-2): a crisis it leads is in one.
	Countries []string `json:"countries"`
	// Cites the report's paragraph on its kind of work, in the house form.
	Cites string `json:"cites"`
}

// Covers reports whether the presence covers the country.
func (p *Presence) Covers(country string) bool { return slices.Contains(p.Countries, country) }

// Registry is the validated set of presences, by id.
type Registry struct {
	list []*Presence // sorted by id
	byID map[string]*Presence
}

type registryFile struct {
	Presences []*Presence `json:"presences"`
}

// Load reads the registry file at path, or the embedded default when path
// is empty.
func Load(path string) (*Registry, error) {
	if path == "" {
		return Parse(DefaultRegistry, "embedded default")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRegistry, err)
	}
	return Parse(data, path)
}

// Parse decodes and validates a registry (JSON); source names it in errors.
// Every problem is reported, each with its entry and field.
func Parse(data []byte, source string) (*Registry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f registryFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrInvalidRegistry, source, err)
	}
	var problems []string
	fail := func(i int, p *Presence, field, format string, args ...any) {
		name := ""
		if p != nil && p.ID != "" {
			name = " (" + p.ID + ")"
		}
		problems = append(problems, fmt.Sprintf("presences[%d]%s: %s: %s", i, name, field, fmt.Sprintf(format, args...)))
	}
	if len(f.Presences) == 0 {
		problems = append(problems, "presences: at least one presence is required")
	}
	r := &Registry{byID: map[string]*Presence{}}
	for i, p := range f.Presences {
		if p == nil {
			fail(i, nil, "entry", "is empty")
			continue
		}
		switch {
		case p.ID == "":
			fail(i, p, "id", "is required (a short upper-case code, e.g. UNOWA)")
		case demarchev1.CheckPresenceID(p.ID) != nil:
			fail(i, p, "id", "%v", demarchev1.CheckPresenceID(p.ID))
		case r.byID[p.ID] != nil:
			fail(i, p, "id", "%q is listed twice", p.ID)
		}
		if !slices.Contains(Kinds, p.Kind) {
			fail(i, p, "kind", "%q is not a kind of presence (allowed: %s)", p.Kind, strings.Join(Kinds, ", "))
		}
		if strings.TrimSpace(p.Name) == "" {
			fail(i, p, "name", "is required (the presence's full name)")
		}
		if len(p.Countries) == 0 {
			fail(i, p, "countries", "at least one country is required (ISO 3166-1 alpha-2, e.g. GN)")
		}
		for j, c := range p.Countries {
			if _, ok := demarchev1.RegionOf(c); !ok {
				fail(i, p, fmt.Sprintf("countries[%d]", j), "%q is not an ISO 3166-1 alpha-2 country code (upper case, e.g. GN)", c)
			}
		}
		if !citation.MatchString(p.Cites) {
			fail(i, p, "cites", "%q is not a citation of the report in the form %s", p.Cites, citationForm)
		}
		if p.ID != "" && r.byID[p.ID] == nil {
			r.byID[p.ID] = p
			r.list = append(r.list, p)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w %s: %s", ErrInvalidRegistry, source, strings.Join(problems, "; "))
	}
	sort.Slice(r.list, func(i, j int) bool { return r.list[i].ID < r.list[j].ID })
	return r, nil
}

// Get is the presence with that id.
func (r *Registry) Get(id string) (*Presence, bool) {
	p, ok := r.byID[id]
	return p, ok
}

// IDs are the presences' ids, sorted.
func (r *Registry) IDs() []string {
	out := make([]string, len(r.list))
	for i, p := range r.list {
		out[i] = p.ID
	}
	return out
}

// Lead checks that id may lead a crisis in country: a registered presence
// that covers it. Errors match ErrUnknown and name the allowed presences.
func (r *Registry) Lead(id, country string) (*Presence, error) {
	p, ok := r.Get(id)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a registered field presence (registered: %s)", ErrUnknown, id, strings.Join(r.IDs(), ", "))
	}
	if !p.Covers(country) {
		var covering []string
		for _, q := range r.list {
			if q.Covers(country) {
				covering = append(covering, q.ID)
			}
		}
		allowed := "none is registered"
		if len(covering) > 0 {
			allowed = "presences covering it: " + strings.Join(covering, ", ")
		}
		return nil, fmt.Errorf("%w: %s (%s) does not cover %s (%s)", ErrUnknown, p.ID, p.Name, country, allowed)
	}
	return p, nil
}
