// Package trail reads a crisis's workflow histories the way an auditor does:
// it replays them against today's workflow code (Temporal's replayer) and
// rebuilds, from the history alone, the decision trail: who decided what,
// when, under which rule and why; which controls were used; which deadlines
// fired; what money moved.
package trail

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// Entry is one line of a decision trail.
type Entry struct {
	Time     time.Time `json:"time"`
	Workflow string    `json:"workflow"`
	// EventID is the history event the entry comes from.
	EventID int64 `json:"event_id"`
	// Kind: decision, refused, control, signal (a warning attached), sharing
	// (who the crisis is shared with changed), comment, deadline, money,
	// stage, started, closed, outside (terminated, cancelled or reset outside
	// Démarche).
	Kind      string `json:"kind"`
	What      string `json:"what"`
	Principal string `json:"principal,omitempty"`
	// Rule: the decision kind for decisions, the rule that failed for refusals.
	Rule      string `json:"rule,omitempty"`
	Rationale string `json:"rationale,omitempty"`
	// PublishedEventID is the id of the crisis event the entry was read
	// from, when it was read from one (a history event may publish several).
	PublishedEventID string `json:"published_event_id,omitempty"`
}

// LoadJSON reads a history in the JSON of the standard Temporal tooling
// (`temporal workflow show --output json`) or of this platform.
func LoadJSON(r io.Reader) (*historypb.History, error) {
	h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return h, nil
}

// LoadFile reads a history file.
func LoadFile(path string) (*historypb.History, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	h, err := LoadJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}
