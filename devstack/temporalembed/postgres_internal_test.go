package temporalembed

import (
	"errors"
	"testing"
	"time"
)

// A database that is still starting is waited for; one that never comes is
// given up on after the wait, with its last error.
func TestUntilReadyWaitsForTheDatabase(t *testing.T) {
	starting := errors.New("pq: the database system is starting up (57P03)")
	tries, retried := 0, 0
	err := untilReady(10*time.Second, func() error {
		tries++
		if tries < 3 {
			return starting
		}
		return nil
	}, func(error) { retried++ })
	if err != nil || tries != 3 || retried != 2 {
		t.Fatalf("untilReady = %v after %d tries (%d retry logs), want nil after 3 (2)", err, tries, retried)
	}

	tries = 0
	err = untilReady(300*time.Millisecond, func() error { tries++; return starting }, func(error) {})
	if !errors.Is(err, starting) || tries < 2 {
		t.Fatalf("untilReady on a database that never starts = %v after %d tries, want the last error after at least 2", err, tries)
	}
}
