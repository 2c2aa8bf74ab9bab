package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Fault kinds, as the figures table names them.
const (
	faultWorkerKill  = "kill -9 worker"
	faultStackKill   = "kill -9 whole stack"
	faultNATS        = "NATS restart in a burst"
	faultOutage      = "audit down, then catching up"
	faultDuplicates  = "duplicated events"
	faultLateDup     = "late duplicates (new msg id)"
	faultReordered   = "reordered events"
	faultPoison      = "poison events"
	faultInjectRound = "bus injection round"
)

// injector keeps what the faults did, for the checks and the figures.
type injector struct {
	p    *platform
	w    *workload
	rng  *rand.Rand
	size size
	// sabotage (DEMARCHE_CHAOS_SABOTAGE=1) hides the late duplicates from the
	// checks: the run must then fail, which shows the checks can.
	sabotage bool

	mu       sync.Mutex
	faults   map[string]int
	log      []string
	dupsSent int
	// absorbedAtStream: duplicates the stream recognised by Nats-Msg-Id.
	absorbedAtStream int
	// lateDups: stream sequences of events republished under a new msg id,
	// which consumers must absorb by ce-id.
	lateDups map[uint64]string
	// poison: msg ids of the poison events published.
	poison []string
	// synthetic crises whose events were published out of order: id -> ce-ids.
	synthetic map[string][]string
}

func newInjector(p *platform, w *workload, rng *rand.Rand, sz size) *injector {
	return &injector{p: p, w: w, rng: rng, size: sz, faults: map[string]int{}, lateDups: map[uint64]string{}, synthetic: map[string][]string{}}
}

func (in *injector) note(kind, format string, args ...any) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults[kind]++
	in.log = append(in.log, fmt.Sprintf("%s %s: %s", time.Now().Format("15:04:05.000"), kind, fmt.Sprintf(format, args...)))
}

// plan is the seeded order of the faults and the pauses before each.
func (in *injector) plan() []string {
	var kinds []string
	add := func(kind string, n int) {
		for range n {
			kinds = append(kinds, kind)
		}
	}
	add(faultWorkerKill, in.size.workerKills)
	add(faultStackKill, in.size.stackKills)
	add(faultNATS, in.size.natsRestarts)
	add(faultOutage, in.size.outages)
	add(faultInjectRound, in.size.busRounds)
	in.rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	return kinds
}

// run injects the planned faults at random points; it returns the first
// fault that could not be injected or recovered from.
func (in *injector) run(ctx context.Context, plan []string) error {
	for _, kind := range plan {
		pause := time.Duration(2000+in.rng.IntN(8000)) * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		var err error
		switch kind {
		case faultWorkerKill:
			err = in.killWorker(ctx)
		case faultStackKill:
			err = in.killStack(ctx)
		case faultNATS:
			err = in.restartNATS(ctx)
		case faultOutage:
			err = in.outage(ctx)
		case faultInjectRound:
			err = in.injectRound(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	return nil
}

func (in *injector) downtime() time.Duration {
	return time.Duration(200+in.rng.IntN(2800)) * time.Millisecond
}

func (in *injector) killWorker(ctx context.Context) error {
	down := in.downtime()
	in.p.kill("worker")
	in.note(faultWorkerKill, "worker killed, restarted after %v", down)
	time.Sleep(down)
	return in.p.startService("worker")
}

func (in *injector) killStack(ctx context.Context) error {
	down := in.downtime()
	withServices := in.rng.IntN(2) == 0
	in.p.kill("dev")
	if withServices {
		for _, s := range in.p.separate {
			in.p.kill(s)
		}
	}
	in.note(faultStackKill, "demarche dev killed (worker and audit too: %v), restarted after %v", withServices, down)
	time.Sleep(down)
	if err := in.p.startDev(ctx); err != nil {
		return err
	}
	if withServices {
		for _, s := range in.p.separate {
			if err := in.p.startService(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// restartNATS opens a burst of drills and restarts NATS while they start.
func (in *injector) restartNATS(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, in.size.burst)
	for i := range in.size.burst {
		c := &crisisRun{name: in.w.newID("BF"), country: "BF", crisisType: drillTypes[i%len(drillTypes)], drill: true}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := in.w.open(ctx, c); err != nil {
				errs <- err
			}
		}()
	}
	time.Sleep(time.Duration(200+in.rng.IntN(800)) * time.Millisecond)
	if err := in.p.signal("dev", syscall.SIGUSR1); err != nil {
		return err
	}
	in.note(faultNATS, "NATS restarted (2s down) while %d drills opened", in.size.burst)
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

// outage kills the audit service and brings it back after a while; it must
// then catch up with everything published meanwhile.
func (in *injector) outage(ctx context.Context) error {
	in.p.kill("audit")
	in.note(faultOutage, "audit down for %v", in.size.outage)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(in.size.outage):
	}
	return in.p.startService("audit")
}

// injectRound publishes, with the worker's credentials (the only identity
// that may publish crisis events), duplicates of real events, late
// duplicates under a new msg id, a synthetic crisis's events out of order,
// and poison.
func (in *injector) injectRound(ctx context.Context) error {
	in.note(faultInjectRound, "")
	nc, err := in.p.connect(natsauth.Worker)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// The plan may put this round first, before the workflows have published
	// anything: wait for events to duplicate (a process that exited by itself
	// is why none will come, and is said at once).
	var events []streamMsg
	var exited []string
	err = eventually(ctx, 5*time.Minute, "an event of the workflows on the crisis stream to duplicate", func() (bool, string) {
		if exited = in.p.unexpectedExits(); len(exited) > 0 {
			return true, ""
		}
		real, err := readStream(ctx, in.p, eventbus.StreamName, eventbus.AllEvents())
		if err != nil {
			return false, err.Error()
		}
		events = events[:0]
		for _, m := range real {
			if m.msg.Header.Get(eventbus.HeaderID) != "" && m.msg.Header.Get("Nats-Msg-Id") == m.msg.Header.Get(eventbus.HeaderID) {
				events = append(events, m)
			}
		}
		return len(events) > 0, fmt.Sprintf("%d messages on %s, none a workflow's event", len(real), eventbus.StreamName)
	})
	if len(exited) > 0 {
		return fmt.Errorf("no event to duplicate: %s", strings.Join(exited, "; "))
	}
	if err != nil {
		return err
	}
	publish := func(m *nats.Msg) (*jetstream.PubAck, error) {
		var ack *jetstream.PubAck
		err := eventually(ctx, 2*time.Minute, "publish on "+m.Subject, func() (bool, string) {
			var err error
			ack, err = js.PublishMsg(ctx, m)
			if err != nil {
				return false, err.Error()
			}
			return true, ""
		})
		return ack, err
	}
	copyOf := func(m *nats.Msg) *nats.Msg {
		c := nats.NewMsg(m.Subject)
		for k, vs := range m.Header {
			for _, v := range vs {
				c.Header.Add(k, v)
			}
		}
		c.Data = m.Data
		return c
	}
	// Duplicates, as a retried activity republishes: same ce-id and msg id, in a shuffled order.
	for range in.size.dups {
		m := events[in.rng.IntN(len(events))]
		ack, err := publish(copyOf(m.msg))
		if err != nil {
			return err
		}
		in.mu.Lock()
		in.dupsSent++
		if ack.Duplicate {
			in.absorbedAtStream++
		}
		in.mu.Unlock()
	}
	in.note(faultDuplicates, "%d events republished with their msg id", in.size.dups)
	// Late duplicates: the same event after the stream's duplicate window
	// (simulated with a new msg id); the consumers must absorb it by ce-id.
	for range 2 {
		m := events[in.rng.IntN(len(events))]
		c := copyOf(m.msg)
		c.Header.Set("Nats-Msg-Id", "late-"+m.msg.Header.Get(eventbus.HeaderID)+fmt.Sprintf("-%d", in.rng.Int64()))
		ack, err := publish(c)
		if err != nil {
			return err
		}
		in.mu.Lock()
		if !in.sabotage { // sabotage: a duplicate the checks were not told of, which they must catch
			in.lateDups[ack.Sequence] = m.msg.Header.Get(eventbus.HeaderID)
		}
		in.mu.Unlock()
	}
	in.note(faultLateDup, "2 events republished under a new msg id")
	// A synthetic crisis's events, out of order.
	if err := in.reordered(ctx, publish); err != nil {
		return err
	}
	// Poison on a real crisis's subjects.
	target := events[in.rng.IntN(len(events))].msg.Subject
	base := target[:strings.LastIndex(target, ".")]
	for i, p := range poisonMsgs(base, events[0].msg) {
		id := fmt.Sprintf("poison-%d-%d", i, in.rng.Int64())
		p.Header.Set("Nats-Msg-Id", id)
		if _, err := publish(p); err != nil {
			return err
		}
		in.mu.Lock()
		in.poison = append(in.poison, id)
		in.mu.Unlock()
	}
	in.note(faultPoison, "%d poison events on %s.*", len(poisonMsgs(base, events[0].msg)), base)
	return nil
}

// poisonMsgs are messages no consumer can take: garbage data, missing
// attributes, an unknown type, data that fails its rules.
func poisonMsgs(base string, sample *nats.Msg) []*nats.Msg {
	mk := func(token string, data []byte, edit func(nats.Header)) *nats.Msg {
		m := nats.NewMsg(base + "." + token)
		for k, vs := range sample.Header {
			for _, v := range vs {
				m.Header.Add(k, v)
			}
		}
		m.Header.Set(eventbus.HeaderID, fmt.Sprintf("poison-%s-%d", token, time.Now().UnixNano()))
		m.Data = data
		if edit != nil {
			edit(m.Header)
		}
		return m
	}
	return []*nats.Msg{
		mk("decision_recorded", []byte("\xff\xfe not protobuf"), func(h nats.Header) {
			h.Set(eventbus.HeaderType, "org.demarche.crisis.decision_recorded.v1")
			h.Set(eventbus.HeaderDataSchema, "type.googleapis.com/demarche.v1.DecisionRecorded")
		}),
		mk("stage_entered", nil, func(h nats.Header) { h.Del(eventbus.HeaderSpecVersion); h.Del(eventbus.HeaderType) }),
		mk("mystery", []byte{0x0a, 0x00}, func(h nats.Header) {
			h.Set(eventbus.HeaderType, "org.demarche.crisis.mystery.v9")
			h.Del(eventbus.HeaderDataSchema)
		}),
		mk("stage_entered", []byte{}, func(h nats.Header) { // an empty StageEntered breaks its rules
			h.Set(eventbus.HeaderType, "org.demarche.crisis.stage_entered.v1")
			h.Set(eventbus.HeaderDataSchema, "type.googleapis.com/demarche.v1.StageEntered")
		}),
	}
}

// reordered publishes a whole synthetic crisis (opening, stages, closing)
// in a shuffled order: consumers must take every event, in whatever order.
func (in *injector) reordered(ctx context.Context, publish func(*nats.Msg) (*jetstream.PubAck, error)) error {
	id := in.w.newID("TD")
	now := time.Now().UTC()
	route := eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "TD", CrisisID: id}
	source := "/demarche/chaos-reordered"
	if evs, err := readStream(ctx, in.p, eventbus.StreamName, eventbus.AllEvents()); err == nil && len(evs) > 0 {
		source = evs[0].msg.Header.Get(eventbus.HeaderSource) // the workflow's own source
	}
	evs := []eventbus.Event{
		{Data: &demarchev1.CrisisOpened{Crisis: &demarchev1.Crisis{Id: id, Title: "Synthetic, reordered", CountryCode: "TD",
			Region: demarchev1.Region_REGION_AFRICA, CrisisType: demarchev1.CrisisType_CRISIS_TYPE_GENERAL, Severity: 2,
			Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedAt: timestamppb.New(now), Drill: true, OpenedBy: "chaos"}}},
		{Data: &demarchev1.StageEntered{CrisisId: id, Stage: demarchev1.Stage_STAGE_WARNING, EnteredAt: timestamppb.New(now)}},
		{Data: &demarchev1.StageCompleted{CrisisId: id, Stage: demarchev1.Stage_STAGE_WARNING, CompletedAt: timestamppb.New(now.Add(time.Second)), Duration: durationpb.New(time.Second)}},
		{Data: &demarchev1.StageEntered{CrisisId: id, Stage: demarchev1.Stage_STAGE_GOOD_OFFICES, EnteredAt: timestamppb.New(now.Add(time.Second))}},
		{Data: &demarchev1.StageCompleted{CrisisId: id, Stage: demarchev1.Stage_STAGE_GOOD_OFFICES, CompletedAt: timestamppb.New(now.Add(2 * time.Second)), Duration: durationpb.New(time.Second)}},
		{Data: &demarchev1.CrisisClosed{CrisisId: id, ClosedAt: timestamppb.New(now.Add(3 * time.Second)), Outcome: demarchev1.Outcome_OUTCOME_AVERTED}},
	}
	order := in.rng.Perm(len(evs))
	if order[0] == 0 { // make sure the opening does not come first
		order[0], order[len(order)-1] = order[len(order)-1], order[0]
	}
	var ids []string
	for i, k := range order {
		ev := evs[k]
		ev.ID = fmt.Sprintf("%s-synthetic-%d", id, k)
		ev.Source, ev.Subject, ev.Time = source, id, now.Add(time.Duration(i)*time.Millisecond)
		et, err := eventbus.TypeOf(ev.Data)
		if err != nil {
			return err
		}
		m, err := eventbus.Encode(route.Subject(et.Token), ev)
		if err != nil {
			return fmt.Errorf("synthetic event: %w", err)
		}
		if _, err := publish(m); err != nil {
			return err
		}
		ids = append(ids, ev.ID)
	}
	in.mu.Lock()
	in.synthetic[id] = ids
	in.mu.Unlock()
	in.note(faultReordered, "synthetic crisis %s: %d events in order %v", id, len(evs), order)
	return nil
}
