package presences

import (
	"errors"
	"strings"
	"testing"
)

// The embedded registry loads, holds the three regional offices the report
// names and one presence of every kind.
func TestEmbeddedRegistry(t *testing.T) {
	r, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"UNOWA", "UNRCCA", "UNOCA"} {
		p, ok := r.Get(id)
		if !ok || p.Kind != RegionalOffice {
			t.Errorf("%s: %+v, want a regional office", id, p)
		}
	}
	kinds := map[string]bool{}
	for _, id := range r.IDs() {
		p, _ := r.Get(id)
		kinds[p.Kind] = true
	}
	for _, k := range Kinds {
		if !kinds[k] {
			t.Errorf("no presence of kind %s", k)
		}
	}
}

// Lead accepts a presence covering the country and refuses one that does
// not, or an unknown id, naming what is allowed.
func TestLead(t *testing.T) {
	r, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id, country string
		want        string // "" accepted; else a part of the error
	}{
		{"UNOWA", "GN", ""},
		{"UNOWA", "ML", ""},
		{"UNRCCA", "KG", ""},
		{"UNOCA", "CF", ""},
		{"UNMIS", "SD", ""},
		{"RC-HN", "HN", ""},
		{"UNOWA", "KG", "presences covering it: UNRCCA"},
		{"UNOCA", "GN", "presences covering it: UNOWA"},
		{"UNOWA", "UA", "none is registered"},
		{"UNOXX", "GN", "not a registered field presence (registered: RC-FJ"},
	}
	for _, c := range cases {
		p, err := r.Lead(c.id, c.country)
		switch {
		case c.want == "" && (err != nil || p.ID != c.id):
			t.Errorf("%s in %s: %v, %v; want accepted", c.id, c.country, p, err)
		case c.want != "" && (!errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s in %s: %v; want ErrUnknown with %q", c.id, c.country, err, c.want)
		}
	}
}

// A bad registry is refused naming the entry, the field and what is allowed.
func TestParseRefusesBadEntries(t *testing.T) {
	good := `{"id": "UNOWA", "kind": "regional-office", "name": "Office", "countries": ["GN"], "cites": "¶24 \"In Guinea\""}`
	cases := []struct {
		name, file, want string
	}{
		{"empty", `{"presences": []}`, "at least one presence"},
		{"unknown field", `{"presences": [{"id": "A1", "colour": "blue"}]}`, "unknown field"},
		{"bad id", `{"presences": [{"id": "unowa", "kind": "regional-office", "name": "x", "countries": ["GN"], "cites": "¶24 \"In Guinea\""}]}`, `presences[0] (unowa): id: "unowa" is not a field presence's id`},
		{"twice", `{"presences": [` + good + `,` + good + `]}`, `presences[1] (UNOWA): id: "UNOWA" is listed twice`},
		{"kind", `{"presences": [{"id": "UNOWA", "kind": "embassy", "name": "x", "countries": ["GN"], "cites": "¶24 \"In Guinea\""}]}`, `kind: "embassy" is not a kind of presence (allowed: regional-office, political-mission, peacekeeping-operation, resident-coordinator)`},
		{"country", `{"presences": [{"id": "UNOWA", "kind": "regional-office", "name": "x", "countries": ["gn"], "cites": "¶24 \"In Guinea\""}]}`, `countries[0]: "gn" is not an ISO 3166-1 alpha-2`},
		{"no countries", `{"presences": [{"id": "UNOWA", "kind": "regional-office", "name": "x", "cites": "¶24 \"In Guinea\""}]}`, "countries: at least one country"},
		{"citation", `{"presences": [{"id": "UNOWA", "kind": "regional-office", "name": "x", "countries": ["GN"], "cites": "paragraph 24"}]}`, `cites: "paragraph 24" is not a citation of the report in the form`},
		{"no name", `{"presences": [{"id": "UNOWA", "kind": "regional-office", "countries": ["GN"], "cites": "¶24 \"In Guinea\""}]}`, "name: is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.file), "test.json")
			if !errors.Is(err, ErrInvalidRegistry) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrInvalidRegistry with %q", err, c.want)
			}
		})
	}
	if _, err := Parse([]byte(`{"presences": [`+good+`]}`), "test.json"); err != nil {
		t.Fatalf("a good registry: %v", err)
	}
}
