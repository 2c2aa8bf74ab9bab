package eventbus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Each benchmark times Démarche's path and a bare baseline in the same run and
// reports both, plus their ratio (x-baseline): the figure that matters is what
// CloudEvents headers, validation and de-duplication cost on top of the bare path.

func BenchmarkEncodeDecode(b *testing.B) {
	ev := entered("bench", demarchev1.Stage_STAGE_GOOD_OFFICES)
	subject := route.Subject("stage_entered")
	base := timeLoop(b.N, func(int) {
		data, _ := proto.Marshal(ev.Data)
		var m demarchev1.StageEntered
		_ = proto.Unmarshal(data, &m)
	})
	ours := timeLoop(b.N, func(int) {
		msg, err := eventbus.Encode(subject, ev)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := eventbus.Decode(msg.Header, msg.Data); err != nil {
			b.Fatal(err)
		}
	})
	report(b, base, ours)
}

func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	_, js := startNATS(b)
	pub := eventbus.NewPublisher(js, "/bench")
	raw, _ := proto.Marshal(entered("raw", demarchev1.Stage_STAGE_WARNING).Data)
	b.ResetTimer()
	base := timeLoop(b.N, func(i int) {
		if _, err := js.Publish(ctx, route.Subject("stage_entered"), raw); err != nil {
			b.Fatal(err)
		}
	})
	ours := timeLoop(b.N, func(i int) {
		if _, err := pub.Publish(ctx, route, entered(fmt.Sprintf("e-%d", i), demarchev1.Stage_STAGE_WARNING)); err != nil {
			b.Fatal(err)
		}
	})
	report(b, base, ours)
}

func timeLoop(n int, f func(i int)) time.Duration {
	start := time.Now()
	for i := range n {
		f(i)
	}
	return time.Since(start)
}

func report(b *testing.B, base, ours time.Duration) {
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "baseline-ns/op")
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N), "demarche-ns/op")
	b.ReportMetric(float64(ours)/float64(base), "x-baseline")
}
