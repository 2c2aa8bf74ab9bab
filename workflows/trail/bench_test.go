package trail

import (
	"path/filepath"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
)

// BenchmarkReplayCommittedHistories replays every committed history per
// iteration and reports histories/s, against the baseline of only loading them.
func BenchmarkReplayCommittedHistories(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join("..", "crisis", "testdata", "*.json"))
	var hs []*historypb.History
	loadStart := time.Now()
	for range b.N {
		hs = hs[:0]
		for _, f := range files {
			h, err := LoadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			hs = append(hs, h)
		}
	}
	load := time.Since(loadStart)
	replayStart := time.Now()
	for range b.N {
		for _, h := range hs {
			if err := Replay(h); err != nil {
				b.Fatal(err)
			}
		}
	}
	replay := time.Since(replayStart)
	n := float64(b.N * len(files))
	b.ReportMetric(n/replay.Seconds(), "histories/s")
	b.ReportMetric(float64(load.Nanoseconds())/n, "baseline-load-ns/history")
	b.ReportMetric(float64(replay.Nanoseconds())/n, "replay-ns/history")
	b.ReportMetric(float64(replay)/float64(load), "x-baseline")
}
