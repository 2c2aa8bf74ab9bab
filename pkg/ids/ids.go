// Package ids mints Démarche's identifiers as standard UUIDs: name-based
// (version 5) where an id must come out the same every time, as inside a
// workflow that replays; time-ordered (version 7) where an id is minted once,
// outside workflows. Human-facing crisis ids keep their readable form.
package ids

import (
	"strings"

	"github.com/google/uuid"
)

// Namespace is Démarche's UUID namespace for name-based ids. Changing it
// changes every derived id, and so every recorded event id: never change it.
var Namespace = uuid.MustParse("5d1b3f0e-8c2a-4c47-9a8e-2f6d0c1e7b44")

// Derived is the name-based (v5) UUID of parts joined with "/", e.g.
// Derived("GN-20261127-K7Q3P", "event", "12"): the same parts always give the
// same id, so a replayed or retried step publishes or pays under one id.
func Derived(parts ...string) string {
	return uuid.NewSHA1(Namespace, []byte(strings.Join(parts, "/"))).String()
}

// New is a fresh time-ordered (v7) UUID, for ids minted outside workflows:
// request ids, signal ids from sources that have none. It sorts by time.
func New() string {
	id, err := uuid.NewV7()
	if err != nil {
		// Only a failing random source gets here; a v4 id is still unique.
		return uuid.NewString()
	}
	return id.String()
}
