package ids

import (
	"sort"
	"testing"

	"github.com/google/uuid"
)

func TestDerivedIsStableNameBasedAndDistinct(t *testing.T) {
	a, b := Derived("GN-1", "event", "1"), Derived("GN-1", "event", "1")
	if a != b {
		t.Fatalf("derived ids differ: %s %s", a, b)
	}
	if Derived("GN-1", "event", "2") == a || Derived("GN-1/event", "1") != a {
		t.Fatal("derived ids must depend on the joined name only")
	}
	if u := uuid.MustParse(a); u.Version() != 5 {
		t.Fatalf("version %d, want 5", u.Version())
	}
}

func TestNewIsTimeOrdered(t *testing.T) {
	var got []string
	for range 50 {
		got = append(got, New())
	}
	if u := uuid.MustParse(got[0]); u.Version() != 7 {
		t.Fatalf("version %d, want 7", u.Version())
	}
	if !sort.StringsAreSorted(got) {
		t.Fatalf("v7 ids minted in order must sort in order: %v", got)
	}
}
