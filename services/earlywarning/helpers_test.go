package earlywarning_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

func startService(t testing.TB, url string, cfg earlywarning.Config, opener earlywarning.CrisisOpener) *earlywarning.Service {
	t.Helper()
	cfg.NATSURL = url
	var log *zap.Logger
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
	} else {
		log = zap.NewNop()
	}
	s, err := earlywarning.Start(context.Background(), cfg, opener, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// fakeOpener records OpenOrSignal calls and, like signal-with-start, opens a
// crisis on the first call for its id and attaches the warning afterwards.
type fakeOpener struct {
	mu     sync.Mutex
	calls  []openerCall
	opened map[string]*demarchev1.CrisisWorkflowInput
	fail   error
}

type openerCall struct {
	in *demarchev1.CrisisWorkflowInput
	w  *demarchev1.Warning
}

func newFakeOpener() *fakeOpener {
	return &fakeOpener{opened: map[string]*demarchev1.CrisisWorkflowInput{}}
}

func (f *fakeOpener) OpenOrSignal(_ context.Context, in *demarchev1.CrisisWorkflowInput, w *demarchev1.Warning) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if err := in.Validate(); err != nil { // what crisis.OpenOrSignal would refuse
		return err
	}
	if err := w.Validate(); err != nil {
		return err
	}
	in, w = proto.Clone(in).(*demarchev1.CrisisWorkflowInput), proto.Clone(w).(*demarchev1.Warning)
	f.calls = append(f.calls, openerCall{in: in, w: w})
	if _, ok := f.opened[in.GetCrisis().GetId()]; !ok {
		f.opened[in.GetCrisis().GetId()] = in
	}
	return nil
}

func (f *fakeOpener) snapshot() ([]openerCall, map[string]*demarchev1.CrisisWorkflowInput) {
	f.mu.Lock()
	defer f.mu.Unlock()
	opened := map[string]*demarchev1.CrisisWorkflowInput{}
	for k, v := range f.opened {
		opened[k] = v
	}
	return append([]openerCall(nil), f.calls...), opened
}

var t0 = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)

func signal(source, id, country string, ct demarchev1.CrisisType, weight float64, at time.Time) *demarchev1.Signal {
	return &demarchev1.Signal{
		Source: source, SourceId: id, CountryCode: country, CrisisType: ct, Weight: weight,
		ObservedAt: timestamppb.New(at), Summary: "signal " + id,
	}
}

// eventually polls cond until it holds or a generous deadline passes; the
// deadline only bounds a failing test, a passing one returns as soon as it can.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var zapNop = zap.NewNop()
