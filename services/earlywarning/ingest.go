package earlywarning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/ids"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// Values of a key in the signals bucket.
var (
	markPending = []byte("pending") // seen, not yet applied to its situation
	markApplied = []byte("applied")
)

// maxCASAttempts bounds the compare-and-set retries of one situation write
// (several service instances writing one situation at once).
const maxCASAttempts = 5

var plainID = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,150}$`)

// signalKey is the de-duplication key of a signal: source.id.<source id> when
// the id is key-safe, else source.h.<sha256 of the id>.
func signalKey(source, sourceID string) string {
	if plainID.MatchString(sourceID) {
		return source + ".id." + sourceID
	}
	sum := sha256.Sum256([]byte(sourceID))
	return source + ".h." + hex.EncodeToString(sum[:20])
}

// NewSourceID is the id given to a signal whose source has none: a
// time-ordered UUID (v7). Such a signal is never a duplicate of another.
func NewSourceID() string { return ids.New() }

// item is one signal of a batch on its way through ingest.
type item struct {
	index   int
	sig     *demarchev1.Signal
	key     string
	created bool // this ingest created the de-duplication key
	result  *demarchev1.IngestResult
}

// Ingest records a batch of signals: each is accepted, a duplicate, or
// rejected with its reason. The error is for failures of the whole batch only.
func (s *Service) Ingest(ctx context.Context, signals []*demarchev1.Signal) (*demarchev1.IngestResponse, error) {
	if err := (&demarchev1.IngestRequest{Signals: signals}).Validate(); err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	resp := &demarchev1.IngestResponse{Results: make([]*demarchev1.IngestResult, len(signals))}
	bySituation := map[string][]*item{}
	var order []string
	for i, sig := range signals {
		if sig.GetSourceId() == "" {
			sig.SourceId = NewSourceID()
		}
		res := &demarchev1.IngestResult{Index: int32(i), Source: sig.GetSource(), SourceId: sig.GetSourceId()}
		resp.Results[i] = res
		if err := sig.Validate(); err != nil {
			reject(res, err.Error(), false)
			continue
		}
		if t := sig.GetObservedAt().AsTime(); t.After(now.Add(s.cfg.MaxFuture)) {
			reject(res, fmt.Sprintf("observed_at: %s is in the future", t.Format(time.RFC3339)), false)
			continue
		}
		it := &item{index: i, sig: sig, key: signalKey(sig.GetSource(), sig.GetSourceId()), result: res}
		switch _, err := s.seen.Create(ctx, it.key, markPending); {
		case err == nil:
			it.created = true
		case errors.Is(err, jetstream.ErrKeyExists):
			// Seen before: a duplicate unless an earlier ingest stopped half-way
			// (still pending); that is settled under the situation's lock.
		default:
			reject(res, fmt.Sprintf("record signal: %v", err), true)
			continue
		}
		sk := demarchev1.SituationKey(sig.GetCountryCode(), sig.GetCrisisType())
		if _, ok := bySituation[sk]; !ok {
			order = append(order, sk)
		}
		bySituation[sk] = append(bySituation[sk], it)
	}
	for _, sk := range order {
		if err := s.applySituation(ctx, sk, bySituation[sk]); err != nil {
			s.log.Warn("situation update failed; its signals can be resent", zap.String("situation", sk), zap.Error(err))
			for _, it := range bySituation[sk] {
				// Duplicates stay duplicates; nothing else of this situation was recorded.
				if it.result.Status != demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE {
					it.result.CrisisId = ""
					reject(it.result, err.Error(), true)
				}
			}
		}
	}
	for _, r := range resp.Results {
		switch r.Status {
		case demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED:
			resp.Accepted++
		case demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE:
			resp.Duplicates++
		default:
			resp.Rejected++
		}
	}
	return resp, nil
}

func reject(r *demarchev1.IngestResult, reason string, retryable bool) {
	r.Status = demarchev1.IngestStatus_INGEST_STATUS_REJECTED
	r.Reason = reason
	r.Retryable = retryable
}

// lock serialises the work on one situation inside this process; across
// processes the situation's compare-and-set write does.
func (s *Service) lock(situation string) func() {
	s.mu.Lock()
	m, ok := s.locks[situation]
	if !ok {
		m = &sync.Mutex{}
		s.locks[situation] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// crossing is a threshold crossing found while applying a batch.
type crossing struct {
	sig   *demarchev1.Signal
	event *demarchev1.WarningRaised
}

// plan is what applying a batch to a situation does.
type plan struct {
	state     *demarchev1.SituationState
	crossings []crossing
	attached  []*demarchev1.Signal // accepted while above the threshold
}

func (s *Service) applySituation(ctx context.Context, situation string, items []*item) error {
	defer s.lock(situation)()
	// A key this ingest did not create was seen before: a duplicate, unless the
	// ingest that created it stopped before applying it.
	var todo []*item
	for _, it := range items {
		if !it.created {
			e, err := s.seen.Get(ctx, it.key)
			if err != nil {
				return fmt.Errorf("read signal %s: %w", it.key, err)
			}
			if string(e.Value()) == string(markApplied) {
				it.result.Status = demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE
				continue
			}
		}
		todo = append(todo, it)
	}
	if len(todo) == 0 {
		return nil
	}
	for attempt := 1; ; attempt++ {
		st, rev, err := s.loadSituation(ctx, situation)
		if err != nil {
			return err
		}
		if st == nil {
			st = &demarchev1.SituationState{CountryCode: todo[0].sig.GetCountryCode(), CrisisType: todo[0].sig.GetCrisisType()}
		}
		p := s.plan(st, todo)
		if err := s.act(ctx, situation, p); err != nil {
			return err
		}
		data, err := proto.Marshal(p.state)
		if err != nil {
			return fmt.Errorf("encode situation %s: %w", situation, err)
		}
		if rev == 0 {
			_, err = s.situations.Create(ctx, situation, data)
		} else {
			_, err = s.situations.Update(ctx, situation, data, rev)
		}
		if err != nil {
			if attempt < maxCASAttempts && (errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)) {
				continue // another instance wrote it: plan again on its state
			}
			return fmt.Errorf("write situation %s: %w", situation, err)
		}
		break
	}
	for _, it := range todo {
		if _, err := s.seen.Put(ctx, it.key, markApplied); err != nil {
			// The situation holds the signal, so a retry will find it there.
			s.log.Warn("mark signal applied", zap.String("key", it.key), zap.Error(err))
		}
	}
	return nil
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

func (s *Service) loadSituation(ctx context.Context, situation string) (*demarchev1.SituationState, uint64, error) {
	e, err := s.situations.Get(ctx, situation)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read situation %s: %w", situation, err)
	}
	var st demarchev1.SituationState
	if err := proto.Unmarshal(e.Value(), &st); err != nil {
		return nil, 0, fmt.Errorf("decode situation %s: %w", situation, err)
	}
	return &st, e.Revision(), nil
}

// plan applies the items to a copy of the state, in order, and records the
// crossings and the signals accepted above the threshold. It sets each item's
// result; it does no I/O.
func (s *Service) plan(prev *demarchev1.SituationState, items []*item) *plan {
	st := proto.Clone(prev).(*demarchev1.SituationState)
	p := &plan{state: st}
	threshold := s.cfg.Threshold(st.GetCountryCode())
	crisisID := demarchev1.SituationKey(st.GetCountryCode(), st.GetCrisisType())
	inWindow := map[string]bool{}
	for _, c := range st.GetContributions() {
		inWindow[signalKey(c.GetSource(), c.GetSourceId())] = true
	}
	batch := map[string]bool{}
	for _, it := range items {
		res, sig := it.result, it.sig
		res.Status, res.Reason, res.CrisisId = 0, "", ""
		if inWindow[it.key] || batch[it.key] {
			res.Status = demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE
			continue
		}
		batch[it.key] = true
		res.Status = demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED
		observed := sig.GetObservedAt().AsTime()
		if st.NewestObservedAt == nil || observed.After(st.NewestObservedAt.AsTime()) {
			st.NewestObservedAt = sig.GetObservedAt()
		}
		start := st.NewestObservedAt.AsTime().Add(-s.cfg.Window)
		if !observed.After(start) {
			res.Reason = "older than the window: recorded, does not count"
			continue
		}
		inWindow[it.key] = true
		st.Contributions = append(st.Contributions, &demarchev1.SignalContribution{
			Source: sig.GetSource(), SourceId: sig.GetSourceId(), Weight: sig.GetWeight(),
			ObservedAt: sig.GetObservedAt(), Summary: truncate(sig.GetSummary(), 300),
		})
		st.Contributions = prune(st.Contributions, start, inWindow)
		score := sum(st.Contributions)
		switch {
		case !st.AboveThreshold && score >= threshold:
			st.AboveThreshold = true
			st.Crossings++
			res.CrisisId = crisisID
			p.crossings = append(p.crossings, crossing{sig: sig, event: &demarchev1.WarningRaised{
				CrisisId: crisisID, CountryCode: st.GetCountryCode(), CrisisType: st.GetCrisisType(),
				Score: score, Threshold: threshold, FirstSignalAt: earliest(st.Contributions),
				Contributions: sortedContributions(st.Contributions),
			}})
		case st.AboveThreshold && score >= threshold:
			res.CrisisId = crisisID
			p.attached = append(p.attached, sig)
		case st.AboveThreshold:
			st.AboveThreshold = false // the window moved on: the next crossing raises again
		}
	}
	return p
}

// prune drops the contributions observed at or before start.
func prune(cs []*demarchev1.SignalContribution, start time.Time, inWindow map[string]bool) []*demarchev1.SignalContribution {
	out := cs[:0]
	for _, c := range cs {
		if c.GetObservedAt().AsTime().After(start) {
			out = append(out, c)
		} else {
			delete(inWindow, signalKey(c.GetSource(), c.GetSourceId()))
		}
	}
	return out
}

func sum(cs []*demarchev1.SignalContribution) float64 {
	var t float64
	for _, c := range cs {
		t += c.GetWeight()
	}
	return t
}

func earliest(cs []*demarchev1.SignalContribution) *timestamppb.Timestamp {
	var first *timestamppb.Timestamp
	for _, c := range cs {
		if first == nil || c.GetObservedAt().AsTime().Before(first.AsTime()) {
			first = c.GetObservedAt()
		}
	}
	return first
}

// sortedContributions copies the contributions, heaviest first, then oldest first.
func sortedContributions(cs []*demarchev1.SignalContribution) []*demarchev1.SignalContribution {
	out := make([]*demarchev1.SignalContribution, len(cs))
	for i, c := range cs {
		out[i] = proto.Clone(c).(*demarchev1.SignalContribution)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].GetWeight() != out[j].GetWeight() {
			return out[i].GetWeight() > out[j].GetWeight()
		}
		return out[i].GetObservedAt().AsTime().Before(out[j].GetObservedAt().AsTime())
	})
	return out
}

// act performs a plan's side effects: for each crossing, WarningRaised and the
// opening (or signalling) of the crisis; then one warning for the signals
// accepted above the threshold. Both are idempotent per crisis id and crossing.
func (s *Service) act(ctx context.Context, situation string, p *plan) error {
	st := p.state
	region, _ := demarchev1.RegionOf(st.GetCountryCode())
	route := eventbus.Route{Region: region, Country: st.GetCountryCode(), CrisisID: situation}
	now := s.cfg.Now()
	crossings := st.GetCrossings() - int32(len(p.crossings))
	for _, c := range p.crossings {
		crossings++
		ev := c.event
		if _, err := s.pub.Publish(ctx, route, eventbus.Event{
			ID: fmt.Sprintf("%s-warning-raised-%d", situation, crossings), Time: now, Data: ev,
		}); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		severity := crisisSeverity(ev.GetScore(), ev.GetThreshold())
		in := s.crisisInput(situation, st, severity, ev.GetFirstSignalAt(), now)
		w := &demarchev1.Warning{
			Source: c.sig.GetSource(), SourceId: c.sig.GetSourceId(), Severity: severity, ObservedAt: c.sig.GetObservedAt(),
			Summary: truncate(fmt.Sprintf("Threshold crossed: score %.1f ≥ %.1f over %s from %d signals. Latest: %s",
				ev.GetScore(), ev.GetThreshold(), s.cfg.Window, len(ev.GetContributions()), c.sig.GetSummary()), 4000),
		}
		if err := s.opener.OpenOrSignal(ctx, in, w); err != nil {
			return fmt.Errorf("%w: open or signal crisis %s: %v", ErrUnavailable, situation, err)
		}
		s.log.Info("threshold crossed", zap.String("crisis", situation), zap.Float64("score", ev.GetScore()),
			zap.Float64("threshold", ev.GetThreshold()), zap.Int("signals", len(ev.GetContributions())), zap.Time("first_signal_at", in.GetCrisis().GetFirstSignalAt().AsTime()))
	}
	if len(p.attached) == 0 {
		return nil
	}
	heaviest := p.attached[0]
	for _, sig := range p.attached[1:] {
		if sig.GetWeight() > heaviest.GetWeight() {
			heaviest = sig
		}
	}
	summary := heaviest.GetSummary()
	if n := len(p.attached) - 1; n > 0 {
		summary = fmt.Sprintf("%s (and %d more signal(s) in this batch; score %.1f)", summary, n, sum(st.GetContributions()))
	}
	w := &demarchev1.Warning{Source: heaviest.GetSource(), SourceId: heaviest.GetSourceId(), Severity: severityOf(heaviest),
		ObservedAt: heaviest.GetObservedAt(), Summary: truncate(summary, 4000)}
	in := s.crisisInput(situation, st, crisisSeverity(sum(st.GetContributions()), s.cfg.Threshold(st.GetCountryCode())),
		earliest(st.GetContributions()), now)
	if err := s.opener.OpenOrSignal(ctx, in, w); err != nil {
		return fmt.Errorf("%w: attach warning to crisis %s: %v", ErrUnavailable, situation, err)
	}
	return nil
}

// crisisInput is the situation's crisis (crisis.NewCrisis: the id is the
// situation's, the first signal the given one, clamped to now).
func (s *Service) crisisInput(situation string, st *demarchev1.SituationState, severity int32, first *timestamppb.Timestamp, now time.Time) *demarchev1.CrisisWorkflowInput {
	p := crisis.NewCrisisParams{
		ID:          situation,
		Title:       fmt.Sprintf("Early warning: %s in %s", st.GetCrisisType().Slug(), st.GetCountryCode()),
		CountryCode: st.GetCountryCode(), CrisisType: st.GetCrisisType(), Severity: severity,
		Confidentiality: s.cfg.Confidentiality, OpenedBy: ServiceName,
	}
	if first != nil {
		p.FirstSignalAt = first.AsTime()
	}
	return &demarchev1.CrisisWorkflowInput{Crisis: crisis.NewCrisis(p, now)}
}

// Score explains a situation's score: the signals in its window, heaviest first.
func (s *Service) Score(ctx context.Context, country string, t demarchev1.CrisisType) (*demarchev1.ScoreResponse, error) {
	if err := (&demarchev1.ScoreRequest{CountryCode: country, CrisisType: t}).Validate(); err != nil {
		return nil, err
	}
	situation := demarchev1.SituationKey(country, t)
	st, _, err := s.loadSituation(ctx, situation)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if st == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSituation, situation)
	}
	region, _ := demarchev1.RegionOf(country)
	score := sum(st.GetContributions())
	return &demarchev1.ScoreResponse{
		CountryCode: country, CrisisType: t, Region: region,
		Score: score, Threshold: s.cfg.Threshold(country), Window: durationpb.New(s.cfg.Window),
		WindowEnd: st.GetNewestObservedAt(), AboveThreshold: st.GetAboveThreshold(), CrisisId: situation,
		Crossings: st.GetCrossings(), FirstSignalAt: earliest(st.GetContributions()),
		Contributions: sortedContributions(st.GetContributions()),
	}, nil
}
