package trail

import (
	"testing"
	"time"
)

func TestRoundDurationKeepsTimelinesReadable(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want string
	}{
		{50008031 * time.Nanosecond, "50ms"},
		{4248 * time.Millisecond, "4.2s"},
		{3*time.Hour + 12*time.Minute + 5*time.Second + 400*time.Millisecond, "3h12m5s"},
	} {
		if got := roundDuration(c.in).String(); got != c.want {
			t.Errorf("roundDuration(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}
