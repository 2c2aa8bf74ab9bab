package earlywarning

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// visibilityOpener answers FindOpen as Temporal's visibility would, and
// counts the questions.
type visibilityOpener struct {
	quietOpener
	asked  atomic.Int32
	answer string
}

func (v *visibilityOpener) FindOpen(context.Context, string, demarchev1.CrisisType) (string, error) {
	v.asked.Add(1)
	return v.answer, nil
}

// startWithVisibility starts early warning on a NATS server of its own with
// a visibilityOpener, the index not yet started; it returns the server's URL.
func startWithVisibility(t *testing.T) (*Service, *visibilityOpener, string) {
	t.Helper()
	srv := natstest.Server(t)
	vis := &visibilityOpener{answer: "FROM-VISIBILITY"}
	s, err := Start(context.Background(), Config{NATSURL: srv.URL()}, vis, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, vis, srv.URL()
}

// TestOpenCrisesIndex: crossings find the open real crisis of their
// situation in the crisis stream's CrisisOpened and CrisisClosed events once
// the index has caught up (visibility before), the oldest when several are
// open, never a drill, never a closed one, whatever order the two event
// types' consumers read them in; a crisis found closed when a warning is
// refused leaves the index.
func TestOpenCrisesIndex(t *testing.T) {
	ctx := context.Background()
	s, vis, url := startWithVisibility(t)
	_, js := natstest.Connect(t, url)
	pub := eventbus.NewPublisher(js, "test")
	publish := func(id string, data any) {
		t.Helper()
		route := eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "ML", CrisisID: id}
		var ev eventbus.Event
		switch d := data.(type) {
		case *demarchev1.CrisisOpened:
			ev = eventbus.Event{ID: id + "-opened", Time: time.Now(), Data: d}
		case *demarchev1.CrisisClosed:
			ev = eventbus.Event{ID: id + "-closed", Time: time.Now(), Data: d}
		case *demarchev1.StageEntered:
			ev = eventbus.Event{ID: id + "-stage", Time: time.Now(), Data: d}
		}
		if _, err := pub.Publish(ctx, route, ev); err != nil {
			t.Fatal(err)
		}
	}
	opened := func(id string, drill bool) *demarchev1.CrisisOpened {
		return &demarchev1.CrisisOpened{Crisis: &demarchev1.Crisis{Id: id, CountryCode: "ML", Region: demarchev1.Region_REGION_AFRICA,
			CrisisType: demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE, Drill: drill, Title: "t", Severity: 3, OpenedAt: timestamppb.Now(),
			Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedBy: "test"}}
	}
	closed := func(id string) *demarchev1.CrisisClosed {
		return &demarchev1.CrisisClosed{CrisisId: id, ClosedAt: timestamppb.Now()}
	}
	const typ = demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE
	find := func() string {
		t.Helper()
		id, err := s.findOpen(ctx, "ML", typ)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	eventually := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := find()
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("open crisis of ML election violence: %q, want %q", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// What the stream holds before the index starts: an opening since
	// closed, a drill, two open crises (the older wins), an event of
	// another type.
	publish("ML-A", opened("ML-A", false))
	publish("ML-D", opened("ML-D", true))
	publish("ML-B", opened("ML-B", false))
	publish("ML-C", opened("ML-C", false))
	publish("ML-A", closed("ML-A"))
	publish("ML-B", &demarchev1.StageEntered{CrisisId: "ML-B", Stage: demarchev1.Stage_STAGE_GOOD_OFFICES, EnteredAt: timestamppb.Now()})

	if got := find(); got != "FROM-VISIBILITY" || vis.asked.Load() != 1 {
		t.Fatalf("without the index: %q after %d questions to visibility, want visibility's answer", got, vis.asked.Load())
	}
	s.IndexOpenCrises(ctx)
	eventually("ML-B")
	asked := vis.asked.Load()

	// Live: B closes, C is the one; C closes, none.
	publish("ML-B", closed("ML-B"))
	eventually("ML-C")
	publish("ML-C", closed("ML-C"))
	eventually("")
	if vis.asked.Load() != asked {
		t.Errorf("visibility was asked %d more times once the index caught up", vis.asked.Load()-asked)
	}

	// A closing read before its opening (the two consumers run apart)
	// keeps the crisis out.
	x := s.openIdx.Load()
	x.forget("ML-E")
	x.opened(opened("ML-E", false).GetCrisis())
	if got := find(); got != "" {
		t.Errorf("a crisis whose closing was read first is open in the index: %q", got)
	}
	// A crisis ended without CrisisClosed is forgotten when a warning is
	// refused as closed.
	publish("ML-F", opened("ML-F", false))
	eventually("ML-F")
	x.forget("ML-F")
	if got := find(); got != "" {
		t.Errorf("a crisis found closed is still open in the index: %q", got)
	}
}

// TestOpenCrisesIndexEmptyStream: an index of a stream with no opening is
// ready at once (no message would ever say it caught up).
func TestOpenCrisesIndexEmptyStream(t *testing.T) {
	ctx := context.Background()
	s, vis, _ := startWithVisibility(t)
	s.IndexOpenCrises(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for !s.openIdx.Load().ready() {
		if time.Now().After(deadline) {
			t.Fatal("the index of an empty crisis stream never caught up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if id, err := s.findOpen(ctx, "ML", demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE); err != nil || id != "" || vis.asked.Load() != 0 {
		t.Errorf("find on an empty index: %q, %v, visibility asked %d times", id, err, vis.asked.Load())
	}
}
