package earlywarning

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// BenchmarkPlanFlare plans one batch's share of a flare on a situation that
// holds 2,432 signals in its window (the ingest bench's flare: 20,000
// signals on 8 situations, ~128 of a batch of 1,024 on each): plan alone, no
// I/O. It reports ns per signal planned.
func BenchmarkPlanFlare(b *testing.B) {
	cfg := &Config{DefaultThreshold: MaxThreshold}
	cfg.defaults()
	s := &Service{}
	s.conf.Store(cfg)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	mk := func(i int) *item {
		return &item{result: &demarchev1.IngestResult{}, sig: &demarchev1.Signal{Source: "bench", SourceId: fmt.Sprintf("s%05d", i),
			CountryCode: "GN", CrisisType: demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE, Weight: 0.003,
			ObservedAt: timestamppb.New(start.Add(time.Duration(i) * time.Second)), Summary: "bench signal"}}
	}
	st := &demarchev1.SituationState{CountryCode: "GN", CrisisType: demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE}
	const batch = 128
	const held = 19 * batch
	for i := 0; i < held; i += batch {
		var items []*item
		for j := i; j < i+batch; j++ {
			items = append(items, mk(j))
		}
		st = s.plan(st, items, "", nil).state
	}
	var items []*item
	for j := held; j < held+batch; j++ {
		items = append(items, mk(j))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p := s.plan(st, items, "", nil)
		if len(p.state.GetContributions()) != held+batch || items[batch-1].result.GetStatus() != demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED {
			b.Fatalf("%d contributions, want %d", len(p.state.GetContributions()), held+batch)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/signal")
}
