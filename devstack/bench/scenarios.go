package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/trail"
)

// How long one operation may take before the bench calls it lost.
const opTimeout = 3 * time.Minute

// countries are every country code Démarche knows, in a fixed order.
var countries = func() []string {
	var out []string
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			if _, ok := demarchev1.RegionOf(string([]rune{a, b})); ok {
				out = append(out, string([]rune{a, b}))
			}
		}
	}
	return out
}()

var crisisTypes = []demarchev1.CrisisType{
	demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE, demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE,
	demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE, demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE,
	demarchev1.CrisisType_CRISIS_TYPE_CONSTITUTIONAL_CRISIS,
}

// operatorSituations is how many situations (country + crisis type) the
// crises the bench opens itself go to. Early warning sends a crossing to an
// open real crisis of its situation rather than opening a new one, so these
// situations are kept out of warning-to-action (see nextSituations): its
// crossings must each open a crisis of their own. Few, so that the full run's
// rates still find fresh situations; spread over the country list, so over
// every region.
const operatorSituations = 20

// operatorSituation is the situation of the bench's i-th own crisis.
func operatorSituation(i int) (string, demarchev1.CrisisType) {
	j := i % operatorSituations
	return countries[j*len(countries)/operatorSituations], crisisTypes[j%len(crisisTypes)]
}

// openCrisis opens a real crisis (operator-opened, public) and returns its id.
func (r *runner) openCrisis(ctx context.Context, i int, drill *demarchev1.DrillPolicy) (string, error) {
	country, typ := operatorSituation(i)
	cr := crisis.NewCrisis(crisis.NewCrisisParams{
		Title: fmt.Sprintf("Bench crisis %d", i), CountryCode: country,
		CrisisType: typ, Severity: 3, OpenedBy: "bench", Drill: drill != nil,
		Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC,
	}, time.Now())
	if _, err := crisis.Open(ctx, r.gw, &demarchev1.CrisisWorkflowInput{Crisis: cr, DrillPolicy: drill}); err != nil {
		return "", err
	}
	return cr.GetId(), nil
}

// openMany opens n crises, conc at a time, and waits until each has entered
// its warning stage (on NATS).
func (r *runner) openMany(ctx context.Context, n, conc int) ([]string, error) {
	ids := make([]string, n)
	_, errs, _, first := parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		id, err := r.openCrisis(ctx, i, nil)
		if err != nil {
			return err
		}
		ids[i] = id
		_, err = r.ev.wait(ctx, id, "stage_entered", opTimeout)
		return err
	})
	if errs > 0 {
		return nil, fmt.Errorf("open %d crises: %d failed, first: %w", n, errs, first)
	}
	return ids, nil
}

// decide: the duty officer's triage of a warning (an update that records the
// decision, publishes it and completes the stage), against a trivial update
// of a workflow that only counts.
func (r *runner) decide(ctx context.Context) error {
	for _, conc := range r.cfg.Sizes.Concurrency {
		n := r.cfg.Sizes.Decisions
		r.progress("  decide, %d at a time: opening %d crises and as many baseline workflows", conc, n)
		ids, err := r.openMany(ctx, n, min(20, n))
		if err != nil {
			return err
		}
		baseIDs := make([]string, n)
		run := randomHex(4)
		if _, errs, _, first := parallel(ctx, n, min(20, n), func(ctx context.Context, i int) error {
			baseIDs[i] = fmt.Sprintf("bench-update-%s-%d", run, i)
			if _, err := r.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: baseIDs[i], TaskQueue: baselineQueue}, baselineUpdateWF); err != nil {
				return err
			}
			_, err := r.tc.QueryWorkflow(ctx, baseIDs[i], "", baselineReady) // its first task has run
			return err
		}); errs > 0 {
			return fmt.Errorf("start baseline workflows: %w", first)
		}
		r.progress("  decide, %d at a time: timing", conc)
		cpu := r.cpu.start()
		lat, errs, el, first := parallel(ctx, n, conc, func(ctx context.Context, i int) error {
			_, err := crisis.Decide(ctx, r.gw, ids[i], "bench-"+ids[i], &demarchev1.DecisionRequest{
				Principal: "bench-duty", Rationale: "bench", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER},
				Decision: &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "bench: confirmed"}},
			})
			return err
		})
		res := Result{Scenario: "decide", Variant: fmt.Sprintf("concurrency %d", conc),
			Demarche: measure("crisis.decide update (triage): recorded, published, stage completed", len(lat), errs, el, lat)}
		res.Demarche.CPU = cpu(len(lat))
		if first != nil {
			res.Notes = append(res.Notes, "first error: "+first.Error())
		}
		bcpu := r.cpu.start()
		blat, berrs, bel, bfirst := parallel(ctx, n, conc, func(ctx context.Context, i int) error {
			h, err := r.tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: baseIDs[i], UpdateName: baselineUpdate,
				Args: []any{1}, WaitForStage: client.WorkflowUpdateStageCompleted})
			if err != nil {
				return err
			}
			var out int
			return h.Get(ctx, &out)
		})
		b := measure("trivial update of a workflow that counts", len(blat), berrs, bel, blat)
		b.CPU = bcpu(len(blat))
		res.Baseline = &b
		if bfirst != nil {
			res.Notes = append(res.Notes, "baseline first error: "+bfirst.Error())
		}
		if conc == 1 {
			res.ratioP50()
			res.judge("p50 ≤ 3× the trivial update", res.Ratio > 0 && res.Ratio <= 3)
		} else {
			res.ratioThroughput()
			res.judge("throughput ≥ 0.5× the trivial update", res.Ratio >= 0.5)
		}
		r.add(res)
	}
	return nil
}

// open: opening a crisis until its CrisisOpened is on NATS, against starting
// a one-activity workflow until it completes.
func (r *runner) open(ctx context.Context) error {
	n, conc := r.cfg.Sizes.Opens, r.cfg.Sizes.OpenConcurrency
	cpu := r.cpu.start()
	lat, errs, el, first := parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		id, err := r.openCrisis(ctx, i, nil)
		if err != nil {
			return err
		}
		_, err = r.ev.wait(ctx, id, "crisis_opened", opTimeout)
		return err
	})
	res := Result{Scenario: "open", Variant: fmt.Sprintf("%d crises, %d at a time", n, conc),
		Demarche: measure("crisis.Open until CrisisOpened is on NATS", len(lat), errs, el, lat)}
	res.Demarche.CPU = cpu(len(lat))
	if first != nil {
		res.Notes = append(res.Notes, "first error: "+first.Error())
	}
	run := randomHex(4)
	bcpu := r.cpu.start()
	blat, berrs, bel, bfirst := parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		wr, err := r.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench-one-%s-%d", run, i), TaskQueue: baselineQueue}, baselineActivityWF, "x")
		if err != nil {
			return err
		}
		var out string
		return wr.Get(ctx, &out)
	})
	b := measure("start a one-activity workflow until it completes", len(blat), berrs, bel, blat)
	b.CPU = bcpu(len(blat))
	if bfirst != nil {
		res.Notes = append(res.Notes, "baseline first error: "+bfirst.Error())
	}
	res.Baseline = &b
	res.ratioThroughput()
	res.judge("throughput ≥ 0.9× the one-activity workflow", res.Ratio >= 0.9)
	r.add(res)
	return nil
}

// signal is a bench signal; weight decides whether it crosses.
func benchSignal(i int, country string, t demarchev1.CrisisType, weight float64) *demarchev1.Signal {
	// The bench publishes as the operator, which speaks for itself alone
	// (demarche.signals.operator: pkg/natsauth).
	return &demarchev1.Signal{Source: demarchev1.OperatorSource, SourceId: fmt.Sprintf("%s-%d", randomHex(6), i), CountryCode: country, CrisisType: t,
		Weight: weight, ObservedAt: timestamppb.Now(), Summary: "bench signal", Location: "bench"}
}

// publishSignalAsync publishes a signal as PublishSignal does, without waiting
// for the acknowledgement.
func (r *runner) publishSignalAsync(sig *demarchev1.Signal) (jetstream.PubAckFuture, error) {
	msg, err := eventbus.Encode(earlywarning.SignalSubject(sig.GetSource()), eventbus.Event{
		ID: "bench-" + sig.GetSourceId(), Source: "/bench", Subject: demarchev1.SituationKey(sig.GetCountryCode(), sig.GetCrisisType()),
		Time: time.Now(), Data: sig,
	})
	if err != nil {
		return nil, err
	}
	return r.opJS.PublishMsgAsync(msg, jetstream.WithMsgID("bench-"+sig.GetSourceId()))
}

// ingest: signals below the threshold, published as partners do, until early
// warning has handled them all, against publishing as many bare messages of
// the same size and consuming them with a durable consumer; twice: spread
// over every situation there is (each batch touches ~1 situation per
// signal), and a flare (the same number on flareSituations situations, as a
// regional flare brings: each batch touches a few).
func (r *runner) ingest(ctx context.Context) error {
	n := r.cfg.Sizes.Ingest
	// Spread over every situation there is, each staying well below the threshold.
	situations := len(countries) * len(crisisTypes)
	weight := min(1.0, 10/float64((n+situations-1)/situations))
	spread := make([]*demarchev1.Signal, n)
	for i := range spread {
		spread[i] = benchSignal(i, countries[i%len(countries)], crisisTypes[(i/len(countries))%len(crisisTypes)], weight)
	}
	// The flare: every signal on a few situations, which stay below the
	// threshold too (the spread left at most 10 on each).
	fweight := min(1.0, 8/float64((n+flareSituations-1)/flareSituations))
	flare := make([]*demarchev1.Signal, n)
	for i := range flare {
		flare[i] = benchSignal(n+i, countries[i%flareSituations], crisisTypes[0], fweight)
	}
	size := 0
	if b, err := proto.Marshal(spread[0]); err == nil {
		size = len(b)
	}
	// The bare baseline once, beside both (the same number of messages of the same size).
	base, err := r.bareIngest(ctx, n, size)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		variant string
		sigs    []*demarchev1.Signal
	}{
		{fmt.Sprintf("%d signals below threshold", n), spread},
		{fmt.Sprintf("flare: %d signals on %d situations", n, flareSituations), flare},
	} {
		m, err := r.publishIngest(ctx, c.sigs)
		if err != nil {
			return fmt.Errorf("%s: %w", c.variant, err)
		}
		res := Result{Scenario: "ingest", Variant: c.variant, Demarche: m}
		b := base
		res.Baseline = &b
		res.ratioThroughput()
		res.judge("≥ 0.5× bare JetStream and ≥ 10,000 signals/s", res.Ratio >= 0.5 && res.Demarche.PerSecond >= 10000)
		r.add(res)
	}
	return nil
}

// flareSituations is how many situations the ingest scenario's flare hits.
const flareSituations = 8

// publishIngest publishes signals as partners do and times them until early
// warning has acknowledged every one (its situations written: write-behind).
func (r *runner) publishIngest(ctx context.Context, sigs []*demarchev1.Signal) (Measure, error) {
	// The bench's own user reads early warning's consumer: a service's
	// consumers are its own (natsauth), the operator sees only its ordered ones.
	cons, err := r.bjs.Consumer(ctx, earlywarning.SignalsStream, earlywarning.SignalsDurable)
	if err != nil {
		return Measure{}, fmt.Errorf("early warning's consumer: %w", err)
	}
	heap0 := 0.0
	if r.st != nil { // the servers in this process: their heap is ours
		heap0 = heapMB()
	}
	start := time.Now()
	var last uint64
	for i, sig := range sigs {
		if i%1000 == 999 { // keep the publisher's window bounded
			<-r.opJS.PublishAsyncComplete()
		}
		f, err := r.publishSignalAsync(sig)
		if err != nil {
			return Measure{}, err
		}
		if i == len(sigs)-1 {
			select {
			case ack := <-f.Ok():
				last = ack.Sequence
			case err := <-f.Err():
				return Measure{}, err
			}
		}
	}
	if err := waitConsumed(ctx, cons, last, opTimeout); err != nil {
		return Measure{}, fmt.Errorf("early warning: %w", err)
	}
	el := time.Since(start)
	m := measure("signals published on demarche.signals.operator until early warning acknowledged all", len(sigs), 0, el, nil)
	if r.st != nil {
		m.Extra = map[string]float64{"heap_growth_mb": heapMB() - heap0}
	}
	return m, nil
}

// bareIngest publishes n bare messages of size bytes and consumes them with
// a durable explicit-ack consumer: the ingest scenario's baseline.
func (r *runner) bareIngest(ctx context.Context, n, size int) (Measure, error) {
	subject := "bench.ingest." + randomHex(4)
	bname := "ingest-" + randomHex(4)
	bcons, err := r.bjs.CreateOrUpdateConsumer(ctx, bareStream, jetstream.ConsumerConfig{Durable: bname,
		FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return Measure{}, err
	}
	var got atomic.Int64
	done := make(chan struct{})
	payload := make([]byte, size)
	var cc jetstream.ConsumeContext
	// Pulling before the clock starts, as early warning's long-running consumer is.
	if err := startPulling(ctx, r.bjs, bareStream, []string{bname}, func(int) error {
		var err error
		cc, err = bcons.Consume(func(m jetstream.Msg) {
			_ = m.Ack() // a failed Ack only brings a redelivery; the count is taken at delivery
			if got.Add(1) == int64(n) {
				close(done)
			}
		})
		return err
	}, func(int) { cc.Stop() }); err != nil {
		return Measure{}, err
	}
	bstart := time.Now()
	for i := range n {
		if i%1000 == 999 { // the same window as Démarche's side
			<-r.bjs.PublishAsyncComplete()
		}
		if _, err := r.bjs.PublishAsync(subject, payload); err != nil {
			cc.Stop()
			return Measure{}, err
		}
	}
	select {
	case <-done:
	case <-time.After(opTimeout):
	}
	bel := time.Since(bstart)
	cc.Stop()
	return measure("bare JetStream publish (async) → durable consumer, explicit ack", int(got.Load()), n-int(got.Load()), bel, nil), nil
}

// waitPulling waits until each consumer has a pull request waiting at its
// leader (NumWaiting) and returns those that have none after a bound: on a
// cluster, a consumer just made (three replicas) may lose the first pull of
// a client that starts at once ("no responders"), which the client repeats
// only when its heartbeat times out (30 s), and the scenario would time the
// lost pull instead of the delivery.
func waitPulling(ctx context.Context, js jetstream.JetStream, stream string, names ...string) []string {
	deadline := time.Now().Add(5 * time.Second)
	var idle []string
	for _, name := range names {
		for {
			c, err := js.Consumer(ctx, stream, name)
			if err == nil {
				if info, err := c.Info(ctx); err == nil && info.NumWaiting > 0 {
					break
				}
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				idle = append(idle, name)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return idle
}

// startPulling starts each consumer (start(i) for names[i]) and makes sure
// it pulls before a scenario is timed, on both its sides: one whose first
// pull was lost is stopped and started again, once (its leader listens by
// then); what still does not pull is timed as it is.
func startPulling(ctx context.Context, js jetstream.JetStream, stream string, names []string, start func(i int) error, stop func(i int)) error {
	for i := range names {
		if err := start(i); err != nil {
			return err
		}
	}
	for _, name := range waitPulling(ctx, js, stream, names...) {
		i := slices.Index(names, name)
		stop(i)
		if err := start(i); err != nil {
			return err
		}
	}
	waitPulling(ctx, js, stream, names...)
	return nil
}

// waitConsumed waits until a consumer has acknowledged everything up to seq.
func waitConsumed(ctx context.Context, c jetstream.Consumer, seq uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		info, err := c.Info(ctx)
		if err == nil && info.AckFloor.Stream >= seq && info.NumAckPending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				return fmt.Errorf("%w: consumer %s acknowledged up to %d of %d after %s", errTimeout, info.Name, info.AckFloor.Stream, seq, timeout)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// nextSituations returns n situations no scenario has used, none the bench
// opens its own crises in, and, on a deployment, none with a crisis open
// (a crossing there would go to that crisis, not open one).
func (r *runner) nextSituations(ctx context.Context, n int) ([][2]any, error) {
	open := map[string]bool{} // country + " " + crisis type slug
	if r.st == nil {
		list, err := crisis.List(ctx, r.tc, crisis.Filter{OpenOnly: true}, 0)
		if err != nil {
			return nil, fmt.Errorf("the deployment's open crises: %w", err)
		}
		for _, c := range list {
			open[c.Country+" "+c.CrisisType] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range operatorSituations {
		r.used[demarchev1.SituationKey(operatorSituation(i))] = true
	}
	var out [][2]any
	for _, t := range crisisTypes {
		for _, c := range countries {
			key := demarchev1.SituationKey(c, t)
			if r.used[key] || open[c+" "+t.Slug()] {
				continue
			}
			r.used[key] = true
			out = append(out, [2]any{c, t})
			if len(out) == n {
				return out, nil
			}
		}
	}
	return out, fmt.Errorf("only %d fresh situations left, %d wanted: lower the rate or the duration", len(out), n)
}

// freshSituations counts the situations no scenario has used yet (on a
// deployment, some may still have a crisis open: nextSituations says).
func (r *runner) freshSituations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	left := 0
	for _, t := range crisisTypes {
		for _, c := range countries {
			if !r.used[demarchev1.SituationKey(c, t)] {
				left++
			}
		}
	}
	return left
}

// crisisOpenedFor returns when the crisis early warning opened for a fresh
// situation published its CrisisOpened: the crisis is the one the
// situation's WarningRaised names (an episode id, not derived from the
// situation).
func (r *runner) crisisOpenedFor(ctx context.Context, situation string, deadline time.Time) (time.Time, error) {
	id, err := r.ev.crisisOf(ctx, situation, time.Until(deadline))
	if err != nil {
		return time.Time{}, err
	}
	return r.ev.wait(ctx, id, "crisis_opened", time.Until(deadline))
}

// warningToAction: at a steady rate, one signal heavy enough to cross the
// threshold, each for a situation of its own; timed from publishing the
// signal until the workflow of the crisis it opened (named by the situation's
// WarningRaised) has published CrisisOpened. At each of --rates the baseline
// is bare publish→consume at the same rate. Then the keep-up variant: first
// the rate a bare one-activity workflow sustains at a steady offered rate (up
// to KeepUpRate), then crossings at that rate, judged on keeping up, with the
// bare one-activity workflow at that rate as its baseline. Every crossing of
// a run takes a fresh situation and there are about 1,300: the keep-up
// variant takes its own first, and a listed rate that would take more than
// are left runs for fewer seconds (said in its variant and notes).
func (r *runner) warningToAction(ctx context.Context) error {
	keep, bare, tried, err := r.bareSustained(ctx, r.cfg.Sizes.KeepUpRate)
	if err != nil {
		return err
	}
	settled := r.settle(ctx)
	res, err := r.crossingsAt(ctx, keep, max(1, int(float64(keep)*r.cfg.Sizes.RateSeconds)), "the rate the bare one-activity workflow sustains")
	if err != nil {
		return err
	}
	if settled != "" {
		res.Notes = append(res.Notes, settled)
	}
	res.Baseline = &bare
	res.ratioThroughput()
	res.Notes = append(res.Notes, "bare one-activity workflow, offered steadily: "+strings.Join(tried, "; "))
	if !keepsUp(bare, keep) {
		res.Notes = append(res.Notes, fmt.Sprintf("the bare one-activity workflow kept up at none of the rates tried: judged at the last, %d/s", keep))
	}
	res.judge(fmt.Sprintf("keeps up at min(%d/s, the bare one-activity workflow's sustained rate) = %d/s: completes ≥ 0.9× the offered rate, drained ≤ 2 s after the last signal",
		r.cfg.Sizes.KeepUpRate, keep), keepsUp(res.Demarche, keep))
	r.add(res)

	for _, rate := range r.cfg.Sizes.Rates {
		n := max(1, int(float64(rate)*r.cfg.Sizes.RateSeconds))
		left := r.freshSituations()
		short := ""
		if left < n {
			if left == 0 {
				return fmt.Errorf("no fresh situation left for %d crossings/s: lower --rates, --keep-up-rate or --rate-seconds", rate)
			}
			n, short = left, fmt.Sprintf("shortened to %d crossings: no more fresh situations", left)
		}
		res, err := r.crossingsAt(ctx, rate, n, "")
		if err != nil {
			return err
		}
		if short != "" {
			res.Notes = append(res.Notes, short)
		}
		b, err := r.bareLatency(ctx, rate, n)
		if err != nil {
			return err
		}
		res.Baseline = &b
		res.ratioP50()
		if rate <= 20 {
			res.judge("p99 ≤ 1 s", res.Demarche.Errors == 0 && res.Demarche.Latency != nil && res.Demarche.Latency.P99 <= 1000)
		}
		r.add(res)
	}
	return nil
}

// keepsUp says whether a steady run at rate per second kept up: nothing
// lost, ≥ 0.9× the rate completed, drained ≤ 2 s after the last offer.
func keepsUp(m Measure, rate int) bool {
	drain, ok := m.Extra["drain_after_last_publish_s"]
	return ok && m.Errors == 0 && m.Count > 0 && m.PerSecond >= 0.9*float64(rate) && drain <= 2
}

// steady fills a steady run's figures: the rate completed is count over the
// time from the first offer to the last completion, the drain is from the
// last offer to the last completion.
func steady(m *Measure, n int, start, offerEnd, lastAt time.Time, lat []time.Duration) {
	if !lastAt.IsZero() {
		m.Seconds = lastAt.Sub(start).Seconds()
		if m.Seconds > 0 {
			m.PerSecond = float64(m.Count) / m.Seconds
		}
	}
	m.Extra = map[string]float64{"offered_per_s": float64(n) / offerEnd.Sub(start).Seconds(), "drain_after_last_publish_s": lastAt.Sub(offerEnd).Seconds()}
	if lastAt.IsZero() {
		m.Extra["drain_after_last_publish_s"] = opTimeout.Seconds()
	}
	if q := len(lat) / 4; q > 0 {
		m.Extra["first_quarter_p50_ms"] = distOf(lat[:q]).P50
		m.Extra["last_quarter_p50_ms"] = distOf(lat[len(lat)-q:]).P50
	}
}

// crossingsAt publishes n crossings at rate per second, each for a fresh
// situation, and times each until its crisis's CrisisOpened.
func (r *runner) crossingsAt(ctx context.Context, rate, n int, why string) (Result, error) {
	sits, err := r.nextSituations(ctx, n)
	if err != nil {
		return Result{}, err
	}
	r.progress("  warning-to-action at %d crossings/s: %d crossings", rate, n)
	interval := time.Second / time.Duration(rate)
	published := make([]time.Time, n)
	cpu := r.cpu.start()
	start := time.Now()
	for i, s := range sits {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		published[i] = time.Now()
		if _, err := r.publishSignalAsync(benchSignal(i, s[0].(string), s[1].(demarchev1.CrisisType), 100)); err != nil {
			return Result{}, err
		}
	}
	pubEnd := time.Now()
	lat := make([]time.Duration, 0, n)
	var lastAt time.Time
	errs := 0
	var first error
	// One deadline for the whole batch: a lost crossing costs opTimeout
	// once, not once per situation after it.
	deadline := pubEnd.Add(opTimeout)
	for i, s := range sits {
		at, err := r.crisisOpenedFor(ctx, demarchev1.SituationKey(s[0].(string), s[1].(demarchev1.CrisisType)), deadline)
		if err == nil && at.Before(published[i]) {
			err = fmt.Errorf("the crossing of %s went to a crisis opened before its signal: not a fresh situation",
				demarchev1.SituationKey(s[0].(string), s[1].(demarchev1.CrisisType)))
		}
		if err != nil {
			errs++
			if first == nil {
				first = err
			}
			continue
		}
		lat = append(lat, at.Sub(published[i]))
		if at.After(lastAt) {
			lastAt = at
		}
	}
	variant := fmt.Sprintf("%d crossings/s for %gs", rate, float64(n)/float64(rate))
	if why != "" {
		variant += ", " + why
	}
	res := Result{Scenario: "warning-to-action", Variant: variant,
		Demarche: measure("signal published → crisis workflow running and CrisisOpened on NATS", len(lat), errs, lastAt.Sub(start), lat)}
	steady(&res.Demarche, n, start, pubEnd, lastAt, lat)
	res.Demarche.CPU = cpu(len(lat))
	if first != nil {
		res.Notes = append(res.Notes, "first error: "+first.Error())
	}
	return res, nil
}

// bareSustained finds the highest rate up to want per second that a bare
// one-activity workflow keeps up with when offered steadily: it tries want,
// then, while it does not keep up, the rate it completed (at most 0.9× the
// rate tried), four tries at most. An overloaded engine completes less than
// it sustains (the backlog costs it too), so once a rate kept up below one
// that did not, one more try a quarter higher (below the one that did not)
// keeps the higher if it keeps up too. It returns that rate, the run at it,
// and each try in words.
func (r *runner) bareSustained(ctx context.Context, want int) (int, Measure, []string, error) {
	var tried []string
	try := func(rate int) (Measure, bool, error) {
		if len(tried) > 0 {
			r.settle(ctx)
		}
		r.progress("  warning-to-action: bare one-activity workflow offered at %d/s", rate)
		m, err := r.bareOneActivityAt(ctx, rate, max(1, int(float64(rate)*r.cfg.Sizes.RateSeconds)))
		if err != nil {
			return Measure{}, false, err
		}
		ok := keepsUp(m, rate)
		tried = append(tried, fmt.Sprintf("%d/s: %.1f/s done, drained %.1f s after the last start, kept up %v", rate, m.PerSecond, m.Extra["drain_after_last_publish_s"], ok))
		return m, ok, nil
	}
	rate, failed := max(1, want), 0
	for n := 0; ; n++ {
		m, ok, err := try(rate)
		if err != nil {
			return 0, Measure{}, nil, err
		}
		next := min(int(m.PerSecond), int(0.9*float64(rate)))
		if !ok && n < 3 && next >= 1 {
			failed, rate = rate, next
			continue
		}
		if ok && failed > 0 {
			if up := min(failed-1, rate*5/4); up > rate {
				um, uok, err := try(up)
				if err != nil {
					return 0, Measure{}, nil, err
				}
				if uok {
					return up, um, tried, nil
				}
			}
		}
		return rate, m, tried, nil
	}
}

// settleLimit bounds the wait for the engine to settle between two steady runs.
const settleLimit = 30 * time.Second

// settle waits, between two steady runs, until visibility lists no bare
// one-activity workflow as running: an engine that fell behind in the run
// before (the probe a quarter above the sustained rate) is still closing its
// workflows (visibility and transfer tasks), and the next run, of either
// side, would pay for that backlog rather than for its own work. It says
// how long that took ("" when at once or when visibility cannot count).
func (r *runner) settle(ctx context.Context) string {
	start := time.Now()
	query := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", baselineActivityWF)
	for {
		resp, err := r.tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err != nil {
			return ""
		}
		if resp.GetCount() == 0 {
			break
		}
		if time.Since(start) > settleLimit {
			return fmt.Sprintf("the engine had not settled %s after the run before (%d bare workflows still running): measured anyway", settleLimit, resp.GetCount())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if el := time.Since(start); el >= time.Second {
		return fmt.Sprintf("waited %.1f s for the run before to settle (its workflows closed in visibility)", el.Seconds())
	}
	return ""
}

// bareOneActivityAt starts n one-activity workflows at rate per second
// (each start on its own goroutine at its time, so a slow start does not
// slow the offer) and times each from its offer until it completed.
func (r *runner) bareOneActivityAt(ctx context.Context, rate, n int) (Measure, error) {
	run := randomHex(4)
	interval := time.Second / time.Duration(rate)
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		byOffer = make([]time.Duration, n) // 0: failed
		lastAt  time.Time
		errs    int
		first   error
	)
	cpu := r.cpu.start()
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		offered := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			octx, cancel := context.WithTimeout(ctx, opTimeout)
			defer cancel()
			wr, err := r.tc.ExecuteWorkflow(octx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench-steady-%s-%d", run, i), TaskQueue: baselineQueue}, baselineActivityWF, "x")
			var out string
			if err == nil {
				err = wr.Get(octx, &out)
			}
			at := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				if first == nil {
					first = err
				}
				return
			}
			byOffer[i] = max(1, at.Sub(offered))
			if at.After(lastAt) {
				lastAt = at
			}
		}()
	}
	offerEnd := time.Now()
	wg.Wait()
	if first != nil && errs == n {
		return Measure{}, fmt.Errorf("bare one-activity workflow at %d/s: every start failed, first: %w", rate, first)
	}
	// In the order offered, for the quarters' medians.
	lat := make([]time.Duration, 0, n)
	for _, d := range byOffer {
		if d > 0 {
			lat = append(lat, d)
		}
	}
	m := measure(fmt.Sprintf("start a one-activity workflow until it completes, offered at %d/s", rate), len(lat), errs, lastAt.Sub(start), lat)
	steady(&m, n, start, offerEnd, lastAt, lat)
	m.CPU = cpu(len(lat))
	return m, nil
}

// bareLatency publishes n bare messages at rate per second and times each
// from publish to a durable consumer's delivery.
func (r *runner) bareLatency(ctx context.Context, rate, n int) (Measure, error) {
	subject := "bench.latency." + randomHex(4)
	name := "latency-" + randomHex(4)
	cons, err := r.bjs.CreateOrUpdateConsumer(ctx, bareStream, jetstream.ConsumerConfig{Durable: name,
		FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return Measure{}, err
	}
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	var cc jetstream.ConsumeContext
	handle := func(m jetstream.Msg) {
		at := time.Now()
		_ = m.Ack() // a failed Ack only brings a redelivery; the time is taken at delivery
		sent := int64(binary.BigEndian.Uint64(m.Data()))
		mu.Lock()
		defer mu.Unlock()
		lat = append(lat, at.Sub(time.Unix(0, sent)))
		if len(lat) == n {
			close(done)
		}
	}
	// Pulling before the clock starts, as early warning's long-running consumer is.
	if err := startPulling(ctx, r.bjs, bareStream, []string{name}, func(int) error {
		var err error
		cc, err = cons.Consume(handle)
		return err
	}, func(int) { cc.Stop() }); err != nil {
		return Measure{}, err
	}
	defer func() { cc.Stop() }()
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		b := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
		if _, err := r.bjs.PublishAsync(subject, b); err != nil {
			return Measure{}, err
		}
	}
	select {
	case <-done:
	case <-time.After(opTimeout):
	}
	mu.Lock()
	defer mu.Unlock()
	return measure(fmt.Sprintf("bare JetStream publish → durable consumer at %d/s", rate), len(lat), n-len(lat), time.Since(start), slices.Clone(lat)), nil
}

// fanout: K durable subscribers of a crisis's events (eventbus.Consume, as
// every service consumes), against K bare durable consumers.
func (r *runner) fanout(ctx context.Context) error {
	k, n := r.cfg.Sizes.FanoutSubscribers, r.cfg.Sizes.FanoutEvents
	id := crisis.NewCrisisID("NO", time.Now())
	route := eventbus.Route{Region: demarchev1.Region_REGION_EUROPE, Country: "NO", CrisisID: id}
	sent := make([]time.Time, n)
	var mu sync.Mutex
	var lat []time.Duration
	all := make(chan struct{})
	total := 0
	var consumers []*eventbus.Consumer
	var names []string
	defer func() {
		for _, c := range consumers {
			if c != nil {
				c.Stop()
			}
		}
		// Removed after: on a deployment they would stay on the crisis stream.
		for _, name := range names {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := r.bjs.DeleteConsumer(dctx, eventbus.StreamName, name); err != nil {
				r.progress("  could not remove the fan-out consumer %s: %v", name, err)
			}
			cancel()
		}
	}()
	run := randomHex(3)
	handle := func(_ context.Context, ev eventbus.Event) error {
		at := time.Now()
		var i int
		if _, err := fmt.Sscanf(strings.TrimPrefix(ev.ID, id), "-bench-%d", &i); err != nil || i < 0 || i >= n {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		lat = append(lat, at.Sub(sent[i]))
		total++
		if total == n*k {
			close(all)
		}
		return nil
	}
	for j := range k {
		// The bench's own identity makes the fan-out's durables, under names
		// of its own (natsauth.OwnDurables): no Démarche identity may make
		// durables it does not own (natsauth.Durables).
		names = append(names, fmt.Sprintf("bench-fanout-%s-%d", run, j))
	}
	consumers = make([]*eventbus.Consumer, k)
	if err := startPulling(ctx, r.bjs, eventbus.StreamName, names, func(j int) error {
		c, err := eventbus.Consume(ctx, r.bjs, eventbus.ConsumerConfig{Durable: names[j], FilterSubjects: []string{eventbus.CrisisEvents(id)}}, handle, r.log)
		if err != nil {
			return err
		}
		consumers[j] = c
		return nil
	}, func(j int) { consumers[j].Stop() }); err != nil {
		return err
	}
	pub := eventbus.NewPublisher(r.wk, crisis.EventSource)
	start := time.Now()
	for i := range n {
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if _, err := pub.Publish(ctx, route, eventbus.Event{ID: fmt.Sprintf("%s-bench-%d", id, i), Time: time.Now(), Data: &demarchev1.StageEntered{
			CrisisId: id, Stage: demarchev1.Stage_STAGE_WARNING, EnteredAt: timestamppb.Now()}}); err != nil {
			return err
		}
	}
	select {
	case <-all:
	case <-time.After(opTimeout):
	}
	el := time.Since(start)
	mu.Lock()
	res := Result{Scenario: "fanout", Variant: fmt.Sprintf("%d subscribers × %d events", k, n),
		Demarche: measure("crisis events published (as the worker does) → each of K durable eventbus consumers handled them", total, n*k-total, el, slices.Clone(lat))}
	mu.Unlock()

	// Baseline: the same, bare.
	subject := "bench.fanout." + randomHex(4)
	bsent := make([]time.Time, n)
	var blat []time.Duration
	btotal := 0
	ball := make(chan struct{})
	ccs := make([]jetstream.ConsumeContext, k)
	defer func() {
		for _, cc := range ccs {
			if cc != nil {
				cc.Stop()
			}
		}
	}()
	bhandle := func(m jetstream.Msg) {
		at := time.Now()
		_ = m.Ack() // a failed Ack only brings a redelivery; the time is taken at delivery
		i := int(binary.BigEndian.Uint64(m.Data()))
		mu.Lock()
		defer mu.Unlock()
		blat = append(blat, at.Sub(bsent[i]))
		btotal++
		if btotal == n*k {
			close(ball)
		}
	}
	bnames := make([]string, k)
	bcons := make([]jetstream.Consumer, k)
	for j := range k {
		bnames[j] = fmt.Sprintf("fanout-%s-%d", randomHex(3), j)
		c, err := r.bjs.CreateOrUpdateConsumer(ctx, bareStream, jetstream.ConsumerConfig{Durable: bnames[j],
			FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			return err
		}
		bcons[j] = c
	}
	if err := startPulling(ctx, r.bjs, bareStream, bnames, func(j int) error {
		var err error
		ccs[j], err = bcons[j].Consume(bhandle)
		return err
	}, func(j int) { ccs[j].Stop() }); err != nil {
		return err
	}
	bstart := time.Now()
	for i := range n {
		mu.Lock()
		bsent[i] = time.Now()
		mu.Unlock()
		if _, err := r.bjs.Publish(ctx, subject, binary.BigEndian.AppendUint64(nil, uint64(i)), jetstream.WithMsgID(fmt.Sprintf("%s-%d", subject, i))); err != nil {
			return err
		}
	}
	select {
	case <-ball:
	case <-time.After(opTimeout):
	}
	bel := time.Since(bstart)
	mu.Lock()
	b := measure("bare JetStream publish → K durable consumers, explicit ack", btotal, n*k-btotal, bel, slices.Clone(blat))
	mu.Unlock()
	res.Baseline = &b
	res.ratioThroughput()
	r.add(res)
	return nil
}

// drills: one drill alone (what the drill delays allow), then Drills at once.
func (r *runner) drills(ctx context.Context) error {
	policy := &demarchev1.DrillPolicy{StageDuration: durationpb.New(time.Duration(r.cfg.Sizes.DrillDelaySeconds * float64(time.Second))), TimeScale: 0.000001}
	runDrills := func(n int, offset int) ([]time.Duration, int, time.Duration, error) {
		lat, errs, el, first := parallel(ctx, n, n, func(ctx context.Context, i int) error {
			id, err := r.openCrisis(ctx, offset+i, policy)
			if err != nil {
				return err
			}
			r.mu.Lock()
			r.drillID = append(r.drillID, id)
			r.mu.Unlock()
			wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			defer cancel()
			var st demarchev1.CrisisState
			return r.tc.GetWorkflow(wctx, crisis.WorkflowID(id), "").Get(wctx, &st)
		})
		return lat, errs, el, first
	}
	r.progress("  drills: one alone")
	blat, berrs, bel, bfirst := runDrills(1, 0)
	if berrs > 0 {
		return fmt.Errorf("the lone drill: %w", bfirst)
	}
	m := r.cfg.Sizes.Drills
	r.progress("  drills: %d at once", m)
	lat, errs, el, first := runDrills(m, 1)
	res := Result{Scenario: "drills", Variant: fmt.Sprintf("%d at once, %gs per drill decision", m, r.cfg.Sizes.DrillDelaySeconds),
		Demarche: measure("drills opened together, each run to closure by its drill policy", len(lat), errs, el, lat)}
	b := measure("one drill alone: the rate its delays allow, per drill", len(blat), berrs, bel, blat)
	res.Baseline = &b
	if first != nil {
		res.Notes = append(res.Notes, "first error: "+first.Error())
	}
	// Ideal: m drills in the time of one. Ratio = actual rate / ideal rate.
	if bel > 0 && el > 0 {
		res.Ratio, res.RatioOf = bel.Seconds()/el.Seconds(), "rate vs ideal"
		res.Demarche.Extra = map[string]float64{"drills_per_min": float64(len(lat)) / el.Minutes(), "ideal_per_min": float64(m) / bel.Minutes()}
	}
	res.judge("≥ 0.5× the rate the drill delays allow", errs == 0 && res.Ratio >= 0.5)
	r.add(res)
	return nil
}

// replay: every history of the drills run (crisis and stage workflows)
// replayed against today's code, against reading them (proto decode).
func (r *runner) replay(ctx context.Context) error {
	r.mu.Lock()
	ids := slices.Clone(r.drillID)
	r.mu.Unlock()
	if len(ids) == 0 {
		id, err := r.openCrisis(ctx, 0, &demarchev1.DrillPolicy{StageDuration: durationpb.New(time.Second), TimeScale: 0.000001})
		if err != nil {
			return err
		}
		var st demarchev1.CrisisState
		if err := r.tc.GetWorkflow(ctx, crisis.WorkflowID(id), "").Get(ctx, &st); err != nil {
			return err
		}
		ids = []string{id}
	}
	var raw [][]byte
	for _, id := range ids {
		hs, err := trail.FetchHistories(ctx, r.tc, id)
		if err != nil {
			return err
		}
		for _, h := range hs {
			b, err := proto.Marshal(h.History)
			if err != nil {
				return err
			}
			raw = append(raw, b)
		}
	}
	rounds := max(1, r.cfg.Sizes.ReplayRounds)
	var hs []*historyT
	bstart := time.Now()
	var blat []time.Duration
	for range rounds {
		hs = hs[:0]
		for _, b := range raw {
			t0 := time.Now()
			h := new(historyT)
			if err := proto.Unmarshal(b, h); err != nil {
				return err
			}
			hs = append(hs, h)
			blat = append(blat, time.Since(t0))
		}
	}
	bel := time.Since(bstart)
	var lat []time.Duration
	errs := 0
	var first error
	start := time.Now()
	for range rounds {
		for _, h := range hs {
			t0 := time.Now()
			if err := trail.Replay(h); err != nil {
				errs++
				if first == nil {
					first = err
				}
				continue
			}
			lat = append(lat, time.Since(t0))
		}
	}
	el := time.Since(start)
	res := Result{Scenario: "replay", Variant: fmt.Sprintf("%d histories × %d", len(hs), rounds),
		Demarche: measure("replay a recorded history against today's workflow code", len(lat), errs, el, lat)}
	b := measure("decode the same histories (protobuf)", len(blat), 0, bel, blat)
	res.Baseline = &b
	if first != nil {
		res.Notes = append(res.Notes, "first error: "+first.Error())
	}
	res.ratioThroughput()
	res.judge("≥ 100 histories/s", errs == 0 && res.Demarche.PerSecond >= 100)
	r.add(res)
	return nil
}

// capacity: crises waiting in their warning stage, opened up to each size;
// memory and disk per crisis, and the time `crisis list` takes for all.
func (r *runner) capacity(ctx context.Context) error {
	// Memory and disk are the servers': measured when they run in this
	// process (the embedded stack), not on a deployment.
	local := r.st != nil
	var heap0, rss0, disk0 float64
	if local {
		heap0, rss0, disk0 = heapMB(), rssMB(), diskMB(r.st.DataDir())
	}
	opened := 0
	for _, size := range r.cfg.Sizes.Capacity {
		if size <= opened {
			continue
		}
		r.progress("  capacity: opening crises up to %d", size)
		more := size - opened
		var done atomic.Int64
		stopTick := make(chan struct{})
		go func() {
			t := time.NewTicker(10 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					r.progress("  capacity: %d of %d opened", opened+int(done.Load()), size)
				case <-stopTick:
					return
				}
			}
		}()
		lat, errs, el, first := parallel(ctx, more, 20, func(ctx context.Context, i int) error {
			id, err := r.openCrisis(ctx, opened+i, nil)
			if err != nil {
				return err
			}
			_, err = r.ev.wait(ctx, id, "stage_entered", opTimeout)
			done.Add(1)
			return err
		})
		close(stopTick)
		if errs > 0 {
			return fmt.Errorf("open crises for capacity: %d failed, first: %w", errs, first)
		}
		opened = size
		var heap, rss, disk float64
		if local {
			// Measured once the crises wait: what opening them left in passing
			// (JetStream's block caches, gRPC buffers, garbage) is released
			// within seconds and is not what a waiting crisis holds.
			settle := time.Duration(r.cfg.Sizes.SettleSeconds * float64(time.Second))
			r.progress("  capacity: %d opened; letting them settle for %s", size, settle)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(settle):
			}
			debug.FreeOSMemory()
			heap, rss, disk = heapMB(), rssMB(), diskMB(r.st.DataDir())
		}
		// crisis list, as the CLI and the API do it: every crisis, all pages.
		var listLat []time.Duration
		rows := 0
		for range 3 {
			t0 := time.Now()
			list, err := crisis.List(ctx, r.tc, crisis.Filter{}, 0)
			if err != nil {
				return err
			}
			listLat = append(listLat, time.Since(t0))
			rows = len(list)
		}
		what := "crisis list of every crisis (Temporal visibility, all pages); memory and disk per crisis opened here"
		if !local {
			what = "crisis list of every crisis on the deployment (Temporal visibility, all pages); the servers' memory and disk are not the bench's to read"
		}
		res := Result{Scenario: "capacity", Variant: fmt.Sprintf("%d waiting crises", size),
			Demarche: measure(what, 3, 0, sumDur(listLat), listLat)}
		res.Demarche.PerSecond = 0
		res.Demarche.Extra = map[string]float64{"listed_rows": float64(rows), "open_per_s": float64(len(lat)) / el.Seconds()}
		if local {
			// And as people list them: GET /v1/crises through the gateway
			// (authentication, the clearance filter, JSON), every crisis up
			// to the route's limit, its first page, and a filtered page.
			country, _ := operatorSituation(0)
			for _, q := range []struct{ name, query string }{
				{"api_all", "limit=5000"}, {"api_first_page", ""}, {"api_filtered", "status=open&country=" + country},
			} {
				var apiLat []time.Duration
				for range 3 {
					t0 := time.Now()
					n, err := r.apiList(ctx, q.query)
					if err != nil {
						return err
					}
					apiLat = append(apiLat, time.Since(t0))
					res.Demarche.Extra[q.name+"_rows"] = float64(n)
				}
				res.Demarche.Extra[q.name+"_p50_ms"] = distOf(apiLat).P50
			}
			res.Demarche.Extra["heap_kb_per_crisis"] = (heap - heap0) * 1024 / float64(opened)
			res.Demarche.Extra["rss_kb_per_crisis"] = (rss - rss0) * 1024 / float64(opened)
			res.Demarche.Extra["disk_kb_per_crisis"] = (disk - disk0) * 1024 / float64(opened)
		}
		switch {
		case size >= 5000 && local:
			res.judge("list of 5,000 crises ≤ 1 s; memory ≤ 100 KB per waiting crisis", distOf(listLat).P50 <= 1000 && (rss-rss0)*1024/float64(opened) <= 100)
		case size >= 5000:
			res.judge("list of 5,000 crises ≤ 1 s", distOf(listLat).P50 <= 1000)
		}
		r.add(res)
	}
	return nil
}

// apiList lists crises through the gateway's GET /v1/crises as the duty
// officer (cleared for every level) and returns how many rows came.
func (r *runner) apiList(ctx context.Context, query string) (int, error) {
	tok, err := os.ReadFile(r.st.TokenFile("duty"))
	if err != nil {
		return 0, fmt.Errorf("list crises through the gateway: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.st.APIURL()+"/v1/crises?"+query, nil)
	if err != nil {
		return 0, fmt.Errorf("list crises through the gateway: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("list crises through the gateway: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("list crises through the gateway: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("list crises through the gateway: GET /v1/crises?%s: %s %s", query, resp.Status, body)
	}
	var out demarchev1.ListCrisesResponse
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &out); err != nil {
		return 0, fmt.Errorf("list crises through the gateway: %w", err)
	}
	return len(out.GetCrises()), nil
}

func sumDur(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// historyT is a workflow history.
type historyT = historypb.History
