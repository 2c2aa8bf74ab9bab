package partners_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natstest"
	"github.com/demarche/demarche/pkg/origin"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/partners"
)

// waitTimeout bounds every wait; nothing asserts on elapsed time.
const waitTimeout = 30 * time.Second

type bus struct {
	url string
	nc  *nats.Conn
	js  jetstream.JetStream
	pub workflowPublisher
}

// workflowPublisher publishes events as the crisis workflow does: its
// ce-source and a workflow run and history event (pkg/origin's guard refuses
// anything else), unless the event sets its own.
type workflowPublisher struct{ *eventbus.Publisher }

func (p workflowPublisher) Publish(ctx context.Context, route eventbus.Route, ev eventbus.Event) (bool, error) {
	if ev.Source == "" {
		ev.Source = origin.WorkflowSource
	}
	if ev.Origin == (eventbus.Origin{}) && ev.Source == origin.WorkflowSource {
		ev.Origin = eventbus.Origin{WorkflowID: origin.WorkflowIDPrefix + route.CrisisID, RunID: "run-1", HistoryEventID: 5}
	}
	return p.Publisher.Publish(ctx, route, ev)
}

// startNATS runs a real embedded NATS server with JetStream on a random port.
func startNATS(t testing.TB) *bus {
	t.Helper()
	b := natstest.NewBus(t)
	return &bus{url: b.Server.URL(), nc: b.NC, js: b.JS, pub: workflowPublisher{eventbus.NewPublisher(b.JS, "/test")}}
}

// registry parses a test registry; secrets come from env.
func registry(t testing.TB, json string, env map[string]string) *partners.Registry {
	t.Helper()
	r, err := partners.ParseRegistry([]byte(json), "test", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fastConfig retries quickly so failures show up within a test.
func fastConfig(url string, reg *partners.Registry) partners.Config {
	return partners.Config{
		NATSURL:  url,
		Registry: reg,
		Delivery: partners.Retry{MaxDeliver: 3, Backoff: []time.Duration{20 * time.Millisecond}},
		Webhook:  partners.Retry{MaxDeliver: 4, Backoff: []time.Duration{20 * time.Millisecond, 40 * time.Millisecond}},
	}
}

func startService(t testing.TB, cfg partners.Config, sig partners.RoleSignaller) *partners.Service {
	t.Helper()
	if sig == nil {
		sig = &fakeSignaller{}
	}
	s, err := partners.Start(context.Background(), cfg, sig, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// fakeSignaller records acknowledgements instead of signalling Temporal.
type fakeSignaller struct {
	mu   sync.Mutex
	acks []signalled
	err  error
}

type signalled struct {
	crisisID string
	ack      *demarchev1.PartnerRoleAck
}

func (f *fakeSignaller) SignalPartnerRole(_ context.Context, crisisID string, ack *demarchev1.PartnerRoleAck) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.acks = append(f.acks, signalled{crisisID, ack})
	return nil
}

func (f *fakeSignaller) all() []signalled {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]signalled(nil), f.acks...)
}

func newCrisis(id, country string, typ demarchev1.CrisisType, conf demarchev1.Confidentiality, sharedWith ...string) *demarchev1.Crisis {
	region, _ := demarchev1.RegionOf(country)
	return &demarchev1.Crisis{
		Id: id, Title: "Test crisis " + id, CountryCode: country, Region: region, CrisisType: typ, Severity: 3,
		Confidentiality: conf, OpenedAt: timestamppb.Now(), OpenedBy: "tester", SharedWith: sharedWith,
	}
}

const (
	public       = demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC
	restricted   = demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED
	confidential = demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL
	election     = demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE
	coup         = demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE
	border       = demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE
)

// publishCrisis publishes the crisis's CrisisOpened and one StageEntered, and
// returns their event ids.
func publishCrisis(t testing.TB, b *bus, c *demarchev1.Crisis) []string {
	t.Helper()
	ctx := context.Background()
	route := eventbus.RouteOf(c)
	evs := []eventbus.Event{
		{ID: c.GetId() + "-opened", Time: time.Now(), Data: &demarchev1.CrisisOpened{Crisis: c}},
		{ID: c.GetId() + "-warning", Time: time.Now(), Data: &demarchev1.StageEntered{CrisisId: c.GetId(), Stage: demarchev1.Stage_STAGE_WARNING, EnteredAt: timestamppb.Now()}},
	}
	var ids []string
	for _, ev := range evs {
		if _, err := b.pub.Publish(ctx, route, ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// partnerSubjects lists the subjects stored for one partner, with counts.
func partnerSubjects(t testing.TB, b *bus, partner string) map[string]uint64 {
	t.Helper()
	st, err := b.js.Stream(context.Background(), partners.PartnerStream(partner))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(partners.PartnerSubjects(partner)))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects
}

// crisesOf lists the crisis ids of the subjects stored for a partner.
func crisesOf(subjects map[string]uint64) []string {
	seen := map[string]bool{}
	for s := range subjects {
		parts := strings.Split(s, ".")
		seen[parts[5]] = true
	}
	var out []string
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasSubject(t testing.TB, b *bus, partner string, c *demarchev1.Crisis, token string) func() bool {
	subject := partners.PartnerSubject(partner, eventbus.RouteOf(c), token)
	return func() bool { return partnerSubjects(t, b, partner)[subject] > 0 }
}

func fmtSubjects(m map[string]uint64) string {
	var keys []string
	for k, v := range m {
		keys = append(keys, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}
