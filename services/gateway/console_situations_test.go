package gateway

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func TestSituationChartMarksCrossings(t *testing.T) {
	t0 := time.Date(2009, 9, 1, 0, 0, 0, 0, time.UTC)
	var h []*demarchev1.ScorePoint
	for i, s := range []float64{2, 6, 11, 14, 8, 12} {
		h = append(h, &demarchev1.ScorePoint{At: timestamppb.New(t0.AddDate(0, 0, i)), Score: s, Threshold: 10, Crossing: i == 2 || i == 5})
	}
	ch := buildSituationChart(h)
	if len(ch.Points) != 6 || len(ch.Crossings) != 2 || !ch.Crossings[0].At.Equal(t0.AddDate(0, 0, 2)) || !ch.Crossings[1].At.Equal(t0.AddDate(0, 0, 5)) {
		t.Fatalf("crossings %+v", ch.Crossings)
	}
	if ch.Points[0].X != ch.PlotX || ch.Points[5].X != ch.PlotX+ch.PlotW || ch.Points[3].Y >= ch.ThresholdY || ch.Points[0].Y <= ch.ThresholdY {
		t.Fatalf("geometry: %+v threshold y %g", ch.Points, ch.ThresholdY)
	}
	if _, _, err := parseSituationKey("GN-unconstitutional-change"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"GN", "XX-general", "GN-coup", "<script>-general"} {
		if _, _, err := parseSituationKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
