package earlywarning_test

import (
	"testing"

	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestOpenerLabel: the worker serves the warning-to-action series of a
// threshold crossing at 0 from the start under opened_by
// crisis.EarlyWarningOpener; the crises this service opens say the same, or
// the series the alert reads would stay at 0 beside the real ones.
func TestOpenerLabel(t *testing.T) {
	if earlywarning.ServiceName != crisis.EarlyWarningOpener {
		t.Fatalf("the early-warning service opens crises as %q; the worker pre-creates %q", earlywarning.ServiceName, crisis.EarlyWarningOpener)
	}
}
