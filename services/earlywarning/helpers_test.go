package earlywarning_test

import (
	"context"
	"fmt"
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
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow } // the tests' signals are live unless they say otherwise
	}
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
// crisis on the first call for its id and attaches the warning afterwards; a
// closed crisis is refused (ErrCrisisClosed). manual are open crises that
// FindOpen reports (opened by people), by country-type.
type fakeOpener struct {
	mu     sync.Mutex
	calls  []openerCall
	opened map[string]*demarchev1.CrisisWorkflowInput
	closed map[string]bool
	manual map[string]string
	fail   error
}

func (f *fakeOpener) IsOpen(_ context.Context, id string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return false, f.fail
	}
	_, ok := f.opened[id]
	for _, m := range f.manual {
		ok = ok || m == id
	}
	return ok && !f.closed[id], nil
}

func (f *fakeOpener) FindOpen(_ context.Context, country string, t demarchev1.CrisisType) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return "", f.fail
	}
	if id := f.manual[demarchev1.SituationKey(country, t)]; id != "" && !f.closed[id] {
		return id, nil
	}
	return "", nil
}

// close closes a crisis, as its closure decision would.
func (f *fakeOpener) close(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed[id] = true
}

type openerCall struct {
	in *demarchev1.CrisisWorkflowInput
	w  *demarchev1.Warning
}

func newFakeOpener() *fakeOpener {
	return &fakeOpener{opened: map[string]*demarchev1.CrisisWorkflowInput{}, closed: map[string]bool{}, manual: map[string]string{}}
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
	if f.closed[in.GetCrisis().GetId()] {
		return fmt.Errorf("%w: %s", earlywarning.ErrCrisisClosed, in.GetCrisis().GetId())
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

// testNow is the tests' clock: 12 days after t0, so signals from t0 on are live.
var testNow = t0.Add(12 * 24 * time.Hour)

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
