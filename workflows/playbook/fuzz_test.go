package playbook

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzParse: whatever a playbook file holds, Parse either returns a playbook
// that passes its own rules or an error naming the source; the same bytes give
// the same answer twice (the error lists are ordered, so a refusal reads the
// same every time), and nothing panics. Seeds: every built-in playbook and a
// few broken ones; the corpus is committed under testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	entries, err := builtin.ReadDir("files")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		b, err := builtin.ReadFile("files/" + e.Name())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "name: x\n", "name: [\n", "phases: [[warning], [closure]]\nname: p\nversion: '1'\n",
		"name: p\nversion: '1'\nphases: [[warning, warning]]\ndeadlines: {warning: {due: -1h}, envoy-deployment: {due: 1h}}\n",
		"name: p\nversion: '1'\nphases: [[warning]]\nfollow_up: {interval: 9999999999h, check_ins: -1}\nstandby_team: {due: x}\n",
		"a: &a [*a, *a]\n", "name: p\nunknown: 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		p2, err2 := Parse("fuzz.yaml", data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !proto.Equal(p, p2) {
			t.Fatalf("two parses of the same bytes differ: %v / %v", err, err2)
		}
		if err != nil {
			if p != nil {
				t.Fatal("a refused playbook came back with a value")
			}
			return
		}
		if verr := p.Validate(); verr != nil {
			t.Fatalf("an accepted playbook breaks its rules: %v", verr)
		}
		if p.GetName() == "" || len(p.GetPhases()) == 0 {
			t.Fatalf("an accepted playbook without a name or phases: %v", p)
		}
	})
}
