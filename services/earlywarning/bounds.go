package earlywarning

import (
	"fmt"
	"math"
	"time"
)

// Bounds of the scoring rules. A rules file, the service's configuration and
// its flags are refused outside them, each with the field, the value, the
// allowed range and why: a value outside is a mistake, never a choice (a
// 1-hour window scores one incident, a 100,000-hour horizon makes 2009
// data live, a threshold of 1e9 can never be crossed).
const (
	// MinWindow: a shorter window scores a single day's incidents, not a
	// situation (conflict-event data is dated by day).
	MinWindow = 24 * time.Hour
	// MaxWindow: a longer window mixes last year's violence into today's score.
	MaxWindow = 365 * 24 * time.Hour
	// MinHorizon: a shorter live horizon makes the signals of the last hour
	// historical before they are imported.
	MinHorizon = time.Hour
	// MaxHorizon: what happened more than 90 days ago is history, not a live
	// warning (a longer horizon makes old files open live crises).
	MaxHorizon = 90 * 24 * time.Hour
	// MinHalfLife and MaxHalfLife bound the decay (0s: no decay): a weight
	// that halves within an hour is gone before the data are; one that halves
	// over more than a year is no decay at all.
	MinHalfLife = time.Hour
	MaxHalfLife = 365 * 24 * time.Hour
	// MaxThreshold: a signal weighs at most 100, so a higher threshold needs
	// more than a hundred of the heaviest signals in one window: never crossed.
	MaxThreshold = 10000.0
	// MaxNewEpisodeMargin: the margin is a fraction of the threshold; beyond
	// ten thresholds a closed crisis hides every flare that does not
	// multiply the score.
	MaxNewEpisodeMargin = 10.0
)

// days writes a bound in hours and in days ("24h (1 day)").
func days(d time.Duration) string {
	n := d / (24 * time.Hour)
	switch {
	case d%(24*time.Hour) != 0:
		return hours(d)
	case n == 1:
		return hours(d) + " (1 day)"
	default:
		return fmt.Sprintf("%s (%d days)", hours(d), n)
	}
}

// hours writes a duration as a whole number of hours when it is one, as
// the rules file does (336h), else as Go does.
func hours(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// CheckWindow says why a scoring window is refused ("" when it is allowed).
func CheckWindow(d time.Duration) string {
	if d < MinWindow || d > MaxWindow {
		return fmt.Sprintf("%s is out of range (allowed: %s to %s): a shorter window scores a single day's incidents, a longer one mixes last year's violence into today's score",
			hours(d), days(MinWindow), days(MaxWindow))
	}
	return ""
}

// CheckHorizon says why a live horizon is refused ("" when it is allowed;
// 0 is the window in force).
func CheckHorizon(d time.Duration) string {
	if d == 0 {
		return ""
	}
	if d < MinHorizon || d > MaxHorizon {
		return fmt.Sprintf("%s is out of range (allowed: 0s for the window, or %s to %s): events older than %d days are history, never a live warning",
			hours(d), hours(MinHorizon), days(MaxHorizon), MaxHorizon/(24*time.Hour))
	}
	return ""
}

// CheckHalfLife says why a decay half-life is refused ("" when allowed; 0 is no decay).
func CheckHalfLife(d time.Duration) string {
	if d == 0 {
		return ""
	}
	if d < MinHalfLife || d > MaxHalfLife {
		return fmt.Sprintf("%s is out of range (allowed: 0s for no decay, or %s to %s)", hours(d), hours(MinHalfLife), days(MaxHalfLife))
	}
	return ""
}

// CheckThreshold says why a threshold is refused ("" when allowed).
func CheckThreshold(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprintf("%g is not a finite number (allowed: above 0, at most %g)", v, MaxThreshold)
	case v <= 0 || v > MaxThreshold:
		return fmt.Sprintf("%g is out of range (allowed: above 0, at most %g): a signal weighs at most 100, so a higher threshold is never crossed", v, MaxThreshold)
	}
	return ""
}

// CheckNewEpisodeMargin says why a new-episode margin is refused ("" when allowed).
func CheckNewEpisodeMargin(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprintf("%g is not a finite number (allowed: 0 to %g, a fraction of the threshold)", v, MaxNewEpisodeMargin)
	case v < 0 || v > MaxNewEpisodeMargin:
		return fmt.Sprintf("%g is out of range (allowed: 0 to %g, a fraction of the threshold): 0 opens the next episode with the first live signal after a closure", v, MaxNewEpisodeMargin)
	}
	return ""
}

// validate refuses a configuration outside the bounds, once the defaults
// are filled in, naming the setting (the serve flag that sets it).
func (c *Config) validate() error {
	if why := CheckWindow(c.Window); why != "" {
		return fmt.Errorf("window (--window): %s", why)
	}
	if why := CheckHorizon(c.Horizon); why != "" {
		return fmt.Errorf("horizon (--horizon): %s", why)
	}
	if why := CheckThreshold(c.DefaultThreshold); why != "" {
		return fmt.Errorf("default threshold (--threshold): %s", why)
	}
	for region, t := range c.Thresholds {
		if why := CheckThreshold(t); why != "" {
			return fmt.Errorf("threshold of %s (--region-threshold %s=…): %s", region.Slug(), region.Slug(), why)
		}
	}
	return nil
}

// Bounds of the indicators beyond fatalities (indicators.go).
const (
	// MaxCategoryWeight: a report of hate speech or of a human-rights
	// violation is a sign to watch, not an alarm on its own; a
	// weight above 20 makes one report weigh as much as an event with some
	// 630 deaths (20 under the default weight formula) and nearly cross the
	// default threshold (25) alone.
	MaxCategoryWeight = 20.0
	// MaxRiskFactorWeight: a risk factor multiplies its category's weight;
	// beyond 5 one factor outweighs the rest of the framework together.
	MaxRiskFactorWeight = 5.0
	// MinCredibility and MaxCredibility bound a source's credibility: below
	// 0.1 its reports count for nothing (remove the source instead); above
	// 2 one source's report counts as more than two corroborating ones.
	MinCredibility = 0.1
	MaxCredibility = 2.0

	categoryWeightRange   = "above 0, at most 20"
	riskFactorWeightRange = "above 0, at most 5"
)

// CheckCategoryWeight says why a category's weight is refused ("" when allowed).
func CheckCategoryWeight(v float64) string {
	if v <= 0 || v > MaxCategoryWeight {
		return fmt.Sprintf("%g is out of range (allowed: %s): one report of a category is a sign to watch, and a weight above %g weighs as much as an event with some 630 deaths", v, categoryWeightRange, MaxCategoryWeight)
	}
	return ""
}

// CheckRiskFactorWeight says why a risk factor's weight is refused ("" when allowed).
func CheckRiskFactorWeight(v float64) string {
	if v <= 0 || v > MaxRiskFactorWeight {
		return fmt.Sprintf("%g is out of range (allowed: %s): a factor multiplies its category's weight, and beyond %g one factor outweighs the rest of the framework", v, riskFactorWeightRange, MaxRiskFactorWeight)
	}
	return ""
}

// CheckCredibility says why a source's credibility is refused ("" when allowed).
func CheckCredibility(v float64) string {
	if v < MinCredibility || v > MaxCredibility {
		return fmt.Sprintf("%g is out of range (allowed: %g to %g): below %g a source's reports count for nothing (remove it instead), above %g one report counts as more than two corroborating ones", v, MinCredibility, MaxCredibility, MinCredibility, MaxCredibility)
	}
	return ""
}
