package earlywarning

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestContentHashFormat holds contentHash to the hash of its fmt spelling:
// a changed hash would make every stored signal look revised.
func TestContentHashFormat(t *testing.T) {
	byFmt := func(sig *demarchev1.Signal) string {
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00%g\x00%d\x00%s\x00%s\x00%s",
			sig.GetCountryCode(), sig.GetCrisisType(), sig.GetObservedAt().AsTime().UnixNano(), sig.GetFatalities(),
			sig.GetWeight(), sig.GetSeverity(), sig.GetRule(), sig.GetLocation(), sig.GetSummary())
		return hex.EncodeToString(h.Sum(nil)[:12])
	}
	at := timestamppb.New(time.Date(2026, 3, 4, 5, 6, 7, 891, time.UTC))
	weights := []float64{0, math.Copysign(0, -1), 1, 0.1, 1.0 / 3, 2.5e-7, 1e21, 123456789.125, -4, math.MaxFloat64,
		math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1), math.NaN()}
	sigs := []*demarchev1.Signal{{}, {ObservedAt: at}}
	for i, w := range weights {
		sigs = append(sigs, &demarchev1.Signal{CountryCode: "GN", CrisisType: demarchev1.CrisisType(i % 7), ObservedAt: at,
			Fatalities: int32(i*37 - 100), Weight: w, Severity: int32(i - 3), Rule: "rule-x", Location: "Conakry, \"centre\"",
			Summary: "Clashes\x00 é 100% %d"})
	}
	for _, sig := range sigs {
		if got, want := contentHash(sig), byFmt(sig); got != want {
			t.Errorf("contentHash(%v) = %s, fmt spelling hashes to %s", sig, got, want)
		}
	}
}
