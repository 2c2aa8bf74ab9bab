package earlywarning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/ids"
	"github.com/demarche/demarche/pkg/tracing"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// Values of a key in the signals bucket.
var (
	markPending = []byte("pending") // seen, not yet applied to its situation
	markApplied = []byte("applied")
)

// maxCASAttempts bounds the compare-and-set retries of one situation write
// (several service instances writing one situation at once). Inside one
// process the situation's lock serialises writers, so only other instances
// compete; a loser waits a short random while (casBackoff) before planning
// again, so two busy instances do not keep colliding in step.
const maxCASAttempts = 10

// casBackoff is the longest wait before the n-th retry (n × casBackoff).
const casBackoff = 5 * time.Millisecond

// plainID says whether a source id is key-safe as it is: 1 to 150 of
// A-Z a-z 0-9 _ = - (a loop, not a regular expression: it runs for every
// contribution of a situation on every write).
func plainID(id string) bool {
	if id == "" || len(id) > 150 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '=', c == '-':
		default:
			return false
		}
	}
	return true
}

// signalKey is the de-duplication key of a signal: source.id.<source id> when
// the id is key-safe, else source.h.<sha256 of the id>.
func signalKey(source, sourceID string) string {
	if plainID(sourceID) {
		return source + ".id." + sourceID
	}
	sum := sha256.Sum256([]byte(sourceID))
	return source + ".h." + hex.EncodeToString(sum[:20])
}

// NewSourceID is the id given to a signal whose source has none: a
// time-ordered UUID (v7). Such a signal is never a duplicate of another.
func NewSourceID() string { return ids.New() }

// MaxHistory bounds the score points kept per situation (the newest stay).
const MaxHistory = 1000

// item is one signal of a batch on its way through ingest.
type item struct {
	ctx        context.Context // the trace a stream signal came with (nil: the batch's)
	index      int
	sig        *demarchev1.Signal
	observed   time.Time // sig's observed_at, decoded once
	key        string
	created    bool // this ingest created the de-duplication key
	historical bool // older than the live horizon
	result     *demarchev1.IngestResult
	// importID names the import that sent it (an IngestRequest's import_id):
	// accepted above the threshold, it is told to the crisis in the import's
	// summary warning, not in a warning of its own request.
	importID string
	// Revisions (signalstore.go): what the signals bucket said of the
	// signal's applied revision when its content changed since (nil: new);
	// the revision this ingest accepts or found, and what it changed.
	prior    *priorRevision
	revision int32
	revised  string
}

// Ingest records a batch of live or historical signals: each is accepted, a
// duplicate, or rejected with its reason. The error is for failures of the
// whole batch only. It is an IngestFunc: when ctx carries an import
// (WithImport), the signals are the import's, and its last request (no
// signals) finishes it (FinishImport).
func (s *Service) Ingest(ctx context.Context, signals []*demarchev1.Signal) (*demarchev1.IngestResponse, error) {
	if fin := importFinish(ctx); len(fin) > 0 && len(signals) == 0 {
		return s.FinishImport(ctx, ImportID(ctx), fin)
	}
	return s.IngestExercise(ctx, signals, nil)
}

// exerciseScope is where an exercise's signals and situations live: apart
// from the live ones and from other exercises ("" for live signals).
func exerciseScope(ex *demarchev1.Exercise) string {
	if ex == nil {
		return ""
	}
	return "x-" + ex.GetId() + "."
}

// IngestExercise is Ingest for the signals of an exercise (ex non-nil): they
// are de-duplicated and scored in the exercise's own situations, never count
// as historical (the exercise replays event time), and raise drill crises.
func (s *Service) IngestExercise(ctx context.Context, signals []*demarchev1.Signal, ex *demarchev1.Exercise) (*demarchev1.IngestResponse, error) {
	if err := (&demarchev1.IngestRequest{Signals: signals, Exercise: ex}).Validate(); err != nil {
		return nil, err
	}
	return s.ingest(ctx, signals, nil, ex), nil
}

// ingestStream records signals taken from the signals stream, each with the
// context (trace) its message carried. The stream already stored each signal
// id once; what a redelivery or a republication after the stream's
// de-duplication window brings again, the situation recognises (a signal in
// its window is among its contributions; one older than the window never
// counts), so no signal is claimed in the signals bucket first: that is one
// round trip per signal less; nor is it marked there once applied: a
// request never carries a stream source (a person's has "_", a stream's
// none), so no import could meet the mark. Its situation is written behind
// (writebehind.go): the message is acknowledged once it is.
func (s *Service) ingestStream(ctx context.Context, signals []*demarchev1.Signal, ctxs []context.Context) *demarchev1.IngestResponse {
	return s.ingest(ctx, signals, ctxs, nil)
}

// situationConcurrency bounds the situations of one batch written at once.
// Each write is a round trip to JetStream that mostly waits: with signals
// spread over every situation (the ingest bench: a batch of ~950 signals held
// ~950 situations), 32 at once gave 7,700 signals/s, 256 gave 10,600/s and
// 1,024 (a whole batch) 11,500–12,700/s.
const situationConcurrency = 1024

// ingest records a batch: ctxs (optional, per signal) are the contexts of
// stream signals, nil for a request's, which are claimed in the signals
// bucket first.
func (s *Service) ingest(ctx context.Context, signals []*demarchev1.Signal, ctxs []context.Context, ex *demarchev1.Exercise) *demarchev1.IngestResponse {
	fromStream := ctxs != nil
	scope := exerciseScope(ex)
	var importID string
	if !fromStream && ex == nil {
		importID = ImportID(ctx)
	}
	now := s.config().Now()
	resp := &demarchev1.IngestResponse{Results: make([]*demarchev1.IngestResult, len(signals))}
	bySituation := map[string][]*item{}
	inBatch := map[string]bool{}
	var order []string
	for i, sig := range signals {
		if sig.GetSourceId() == "" {
			sig.SourceId = NewSourceID()
		}
		res := &demarchev1.IngestResult{Index: int32(i), Source: sig.GetSource(), SourceId: sig.GetSourceId()}
		resp.Results[i] = res
		// A signal of a category beyond fatalities (hate speech, a human-rights
		// violation, an atrocity risk factor) is weighed by the rules in force,
		// whatever weight it came with (indicators.go).
		if err := s.config().Rules.WeighIndicator(sig); err != nil {
			reject(res, "signal: "+err.Error(), false)
			continue
		}
		if err := sig.Validate(); err != nil {
			reject(res, err.Error(), false)
			continue
		}
		observed := sig.GetObservedAt().AsTime()
		if observed.After(now.Add(s.config().MaxFuture)) {
			reject(res, fmt.Sprintf("observed_at: %s is in the future", observed.Format(time.RFC3339)), false)
			continue
		}
		it := &item{index: i, sig: sig, observed: observed, key: scope + signalKey(sig.GetSource(), sig.GetSourceId()), result: res,
			historical: ex == nil && observed.Before(now.Add(-s.config().Horizon)), importID: importID}
		if inBatch[it.key] {
			// The batch's own repeat, even of another situation: the first stands.
			res.Status = demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE
			continue
		}
		inBatch[it.key] = true
		if fromStream {
			it.ctx, it.created = ctxs[i], true
		} else {
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
		}
		sk := scope + demarchev1.SituationKey(sig.GetCountryCode(), sig.GetCrisisType())
		if _, ok := bySituation[sk]; !ok {
			order = append(order, sk)
		}
		bySituation[sk] = append(bySituation[sk], it)
	}
	// Situations are independent: write them side by side, each under its lock.
	touched := make([][]*demarchev1.CrisisTouch, len(order))
	failed := make([]error, len(order))
	sem := make(chan struct{}, situationConcurrency)
	var wg sync.WaitGroup
	for i, sk := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			touched[i], failed[i] = s.applySituation(ctx, sk, bySituation[sk], ex, fromStream)
		}()
	}
	wg.Wait()
	for i, sk := range order {
		if err := failed[i]; err != nil {
			s.log.Warn("situation update failed; its signals can be resent", zap.String("situation", sk), zap.Error(err))
			for _, it := range bySituation[sk] {
				// Duplicates stay duplicates; nothing else of this situation was recorded.
				if it.result.Status != demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE {
					it.result.CrisisId, it.result.CrisisOpened, it.result.Historical = "", false, false
					reject(it.result, err.Error(), true)
				}
			}
			continue
		}
		resp.Crises = append(resp.Crises, touched[i]...)
	}
	for _, r := range resp.Results {
		switch r.Status {
		case demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED:
			resp.Accepted++
			if r.Revision > 1 {
				resp.Revised++
			}
			if r.Historical {
				resp.Historical++
			} else {
				resp.Live++
			}
		case demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE:
			resp.Duplicates++
		default:
			resp.Rejected++
		}
	}
	return resp
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

// crossing is a live threshold crossing found while applying a batch.
type crossing struct {
	it    *item
	event *demarchev1.WarningRaised
	point *demarchev1.ScorePoint
}

// plan is what applying a batch to a situation does.
type plan struct {
	state     *demarchev1.SituationState
	crossings []crossing
	attached  []attachment // live, accepted while above the threshold with its crisis open
	deferred  []attachment // the same, sent by an import: told in its summary warning
}

// attachment is a live signal accepted above the threshold, attached to the
// situation's open crisis, and its score point (which names the crisis once
// the warning reached it).
type attachment struct {
	it    *item
	point *demarchev1.ScorePoint
}

// errAttachClosed is act's answer when the crisis the batch's signals were to
// be attached to is closed: the batch is planned again knowing it.
type errAttachClosed struct{ crisisID string }

func (e errAttachClosed) Error() string { return fmt.Sprintf("crisis %s is closed", e.crisisID) }

// applySituation plans a batch's signals of one situation on its state, acts
// (crossings, attachments) and writes it; behind (stream signals) holds the
// state unwritten instead when the batch raised and attached nothing, for
// the next flush (writebehind.go): the caller holds the messages' settlement
// until then (holdSettle).
func (s *Service) applySituation(ctx context.Context, situation string, items []*item, ex *demarchev1.Exercise, behind bool) ([]*demarchev1.CrisisTouch, error) {
	defer s.lock(situation)()
	// A key this ingest did not create was seen before: a duplicate, unless the
	// ingest that created it stopped before applying it.
	var todo []*item
	for _, it := range items {
		if !it.created {
			e, err := s.seen.Get(ctx, it.key)
			if err != nil {
				return nil, fmt.Errorf("read signal %s: %w", it.key, err)
			}
			if checkSeen(it, e.Value()) { // a duplicate (or a revision refused), else pending or a revision
				continue
			}
		}
		todo = append(todo, it)
	}
	if len(todo) == 0 {
		return nil, nil
	}
	// In event-time order (the stream's and a request's order is the
	// senders'): the score, the crossing and the history follow the events'
	// own times. An import is sorted before it is sent (eventorder.go); a
	// signal older than what an earlier batch applied is scored against the
	// window's newest end, as it always was.
	slices.SortStableFunc(todo, func(a, b *item) int {
		return a.observed.Compare(b.observed)
	})
	var touched []*demarchev1.CrisisTouch
	for attempt := 1; ; attempt++ {
		// The first attempt plans on this process's copy of the situation; a
		// lost compare-and-set (another instance wrote it) reads it afresh.
		st, rev, err := s.cachedSituation(ctx, situation, attempt > 1)
		if err != nil {
			return nil, err
		}
		if st == nil {
			st = &demarchev1.SituationState{CountryCode: todo[0].sig.GetCountryCode(), CrisisType: todo[0].sig.GetCrisisType()}
		}
		// Signals older than the situation's window are scored in their own
		// (signalstore.go): a read of the store only when there are any.
		own, err := s.ownWindows(ctx, st, todo, ex)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		// A closed crisis takes no signal: when the attachment finds the
		// situation's crisis closed, the batch is planned again knowing it,
		// so its signals open the next episode (or wait for the margin)
		// instead of vanishing into the closed one.
		p := s.plan(st, todo, "", own)
		touched, err = s.act(ctx, situation, p, ex)
		var closed errAttachClosed
		if errors.As(err, &closed) {
			p = s.plan(st, todo, closed.crisisID, own)
			touched, err = s.act(ctx, situation, p, ex)
		}
		if errors.As(err, &closed) {
			return nil, fmt.Errorf("%w: crisis %s closed while its warning was attached: %v", ErrUnavailable, closed.crisisID, err)
		}
		if err != nil {
			return nil, err
		}
		if behind && len(p.crossings) == 0 && len(p.attached) == 0 && len(p.deferred) == 0 {
			// Nothing told to a crisis: the next flush writes it. The
			// signal store's writes are published now and waited for
			// before the situation is written (awaitStored), not here: a
			// replay after a crash finds the signal in its situation only
			// once the store holds it (a duplicate, not stored again), or
			// stores the same content under the same key.
			s.cache.stage(situation, p.state, rev, s.publishStore(todo, ex))
			return touched, nil
		}
		written, err := s.writeSituation(ctx, situation, p.state, rev)
		s.cache.put(situation, p.state, written, err)
		if err != nil {
			if attempt < maxCASAttempts && (errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)) {
				// Another instance wrote it: plan again on its state, after a
				// jittered pause so the two do not collide again in step.
				select {
				case <-ctx.Done():
					return nil, fmt.Errorf("write situation %s: %w", situation, ctx.Err())
				case <-time.After(time.Duration(rand.Int64N(int64(attempt) * int64(casBackoff)))):
				}
				continue
			}
			return nil, fmt.Errorf("write situation %s: %w", situation, err)
		}
		break
	}
	if !behind {
		// A request's signals were claimed in the signals bucket first (a
		// stream signal is recognised by its situation: ingestStream).
		s.markApplied(ctx, todo)
	}
	s.storeSignals(ctx, todo, ex)
	return touched, nil
}

// markApplied records the signals as applied in the signals bucket, all
// published at once and then waited for. A mark that fails is only logged:
// the situation holds the signal, so a retry finds it there.
func (s *Service) markApplied(ctx context.Context, items []*item) {
	futures := make([]jetstream.PubAckFuture, 0, len(items))
	for _, it := range items {
		f, err := s.js.PublishAsync(kvSubject(SignalsBucket, it.key), appliedMark(it))
		if err != nil {
			s.log.Warn("mark signal applied", zap.String("key", it.key), zap.Error(err))
			continue
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			s.log.Warn("mark signal applied", zap.String("subject", f.Msg().Subject), zap.Error(err))
		case <-ctx.Done():
			return
		}
	}
}

// kvSubject is where a key-value bucket stores a key (what its Put publishes to).
func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// cachedSituation is the situation as this process last read or wrote it,
// or as NATS has it now (fresh, or not held here).
func (s *Service) cachedSituation(ctx context.Context, situation string, fresh bool) (*demarchev1.SituationState, uint64, error) {
	// A copy not yet written (write-behind) is newer than NATS, fresh or not:
	// a write that fails forgets it, so the retry reads NATS.
	if st := s.cache.dirtyState(situation); st != nil {
		_, rev, _ := s.cache.get(situation) // only the revision the dirty copy was planned on; whether the entry is fresh does not matter here
		return st, rev, nil
	}
	if !fresh {
		if st, rev, ok := s.cache.get(situation); ok {
			return st, rev, nil
		}
	}
	st, rev, err := s.loadSituation(ctx, situation)
	if err == nil && st != nil {
		s.cache.put(situation, st, rev, nil)
	}
	return st, rev, err
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
	if st.CrisisId == "" && st.Crossings > 0 {
		// Recorded before episodes: the situation's crisis was named after it.
		st.CrisisId = demarchev1.SituationKey(st.GetCountryCode(), st.GetCrisisType())
		st.Episodes = 1
	}
	return &st, e.Revision(), nil
}

// score is a situation's score under the rules in force.
func (s *Service) score(st *demarchev1.SituationState) float64 { return s.config().score(st) }

// score is a situation's score at the end of its window (its newest signal),
// each weight decayed by its age when the rules say so.
func (c *Config) score(st *demarchev1.SituationState) float64 {
	end := st.GetNewestObservedAt().AsTime()
	var t float64
	for _, x := range st.GetContributions() {
		t += c.Rules.Decayed(x.GetWeight(), end.Sub(x.GetObservedAt().AsTime()))
	}
	return t
}

// plan applies the items to a copy of the state, in order, and records the
// live crossings and the live signals accepted above the threshold. It sets
// each item's result; it does no I/O.
//
// A historical signal (older than the live horizon) is scored like any other
// but never raises: the situation is "above" only after a live signal took it
// there, so the first live signal that finds it at or above the threshold is
// a crossing.
//
// closedID names a crisis found closed (act could not attach to it): when it
// is the situation's crisis, nothing is attached to it any more, and a live
// signal that raises the score by the rules' new-episode margin over its
// lowest since (or over what the crisis last saw) opens the next episode as a
// crossing would, even though the score never fell below the threshold.
func (s *Service) plan(prev *demarchev1.SituationState, items []*item, closedID string, own map[*item]ownWindow) *plan {
	cfg := s.config() // one version for the whole batch, whatever is applied meanwhile
	st := copyState(prev)
	st.Contributions = slices.Grow(st.Contributions, len(items)) // room for the batch, not a copy per doubling
	st.RulesVersion = cfg.Rules.Version
	p := &plan{state: st}
	threshold := cfg.Threshold(st.GetCountryCode())
	margin := cfg.Rules.NewEpisodeMargin * threshold
	if closedID != "" && closedID == st.GetCrisisId() && st.GetAboveThreshold() {
		st.CrisisClosed = true
	}
	inWindow := make(map[string]bool, len(st.GetContributions())+len(items))
	for _, c := range st.GetContributions() {
		inWindow[signalKey(c.GetSource(), c.GetSourceId())] = true
	}
	w := newWindow(cfg.Rules, st.GetContributions(), len(items))
	batch := make(map[string]bool, len(items))
	for _, it := range items {
		res, sig := it.result, it.sig
		key := signalKey(sig.GetSource(), sig.GetSourceId())
		res.Status, res.Reason, res.CrisisId, res.CrisisOpened, res.Revision = 0, "", "", false, 0
		it.revision, it.revised = 0, ""
		switch i := -1; {
		case batch[key]:
			res.Status = demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE
			continue
		case inWindow[key]:
			// A revision (same source and id, changed content) replaces its
			// contribution; anything else is a duplicate (signalstore.go).
			i = contributionOf(st.Contributions, key)
			if it.prior == nil && (i < 0 || !changedFrom(st.Contributions[i], sig)) {
				if i >= 0 {
					it.revision = max(st.Contributions[i].GetRevision(), 1)
				}
				res.Status = demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE
				continue
			}
			revise(st, i, it)
			w.reset(st.Contributions) // revise took its old contribution out
		case it.prior != nil:
			revise(st, -1, it)
		}
		batch[key] = true
		res.Status = demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED
		res.Historical = it.historical
		observed := sig.GetObservedAt().AsTime()
		if st.NewestObservedAt == nil || observed.After(st.NewestObservedAt.AsTime()) {
			st.NewestObservedAt = sig.GetObservedAt()
		}
		start := st.NewestObservedAt.AsTime().Add(-cfg.Window)
		if !observed.After(start) {
			res.Reason = "older than the window: recorded, does not count"
			if w, ok := own[it]; ok {
				// Scored in its own window, never against the newest one's end.
				res.Reason = fmt.Sprintf("older than the situation's window (ending %s): scored in its own window ending %s: %.1f (threshold %.1f); today's score unchanged",
					st.NewestObservedAt.AsTime().Format(time.DateOnly), w.end.Format(time.DateOnly), w.score, threshold)
				st.History = insertPoint(st.History, &demarchev1.ScorePoint{At: sig.GetObservedAt(), Score: w.score, Threshold: threshold, RulesVersion: cfg.Rules.Version})
				if n := len(st.History); n > MaxHistory {
					st.History = st.History[n-MaxHistory:]
				}
			}
			continue
		}
		// The window moved to this signal: when what is left of it is below the
		// threshold, the situation fell below in between, and this signal may
		// cross again.
		st.Contributions = w.prune(st.Contributions, start, inWindow)
		before := w.score(st.Contributions, st.NewestObservedAt.AsTime())
		if before < threshold {
			st.AboveThreshold = false
			st.CrisisClosed = false // below: the next crossing opens the next episode anyway
		}
		if st.CrisisClosed {
			st.EpisodeBase = min(st.EpisodeBase, before)
		}
		inWindow[key] = true
		st.Contributions = append(st.Contributions, &demarchev1.SignalContribution{
			Source: sig.GetSource(), SourceId: sig.GetSourceId(), Weight: sig.GetWeight(),
			ObservedAt: sig.GetObservedAt(), Summary: truncate(sig.GetSummary(), 300),
			Rule: sig.GetRule(), RulesVersion: sig.GetRulesVersion(), Fatalities: sig.GetFatalities(),
			Revision: it.revision, Revised: it.revised,
		})
		// The new contribution is inside the window (observed after start) and
		// the rest was pruned above: nothing more to prune. The score is the
		// one before plus its weight, summed as cfg.score sums (in order).
		score := w.add(observed, sig.GetWeight())
		point := &demarchev1.ScorePoint{At: st.NewestObservedAt, Score: score, Threshold: threshold, RulesVersion: cfg.Rules.Version}
		rearmed := st.CrisisClosed && score >= st.GetEpisodeBase()+margin
		switch {
		case score < threshold:
			st.AboveThreshold = false // the window moved on: the next crossing raises again
			st.CrisisClosed = false
		case it.historical:
			res.Reason = "historical (older than the live horizon): scored, opens and signals no crisis"
		case !st.AboveThreshold || rearmed:
			if st.CrisisClosed {
				// The closed crisis is the previous episode; resolve (act) finds
				// or opens the next one.
				st.PreviousCrisisId, st.CrisisId, st.CrisisClosed = st.GetCrisisId(), "", false
			}
			st.AboveThreshold = true
			st.Crossings++
			st.EpisodeBase = score
			point.Crossing = true
			p.crossings = append(p.crossings, crossing{it: it, point: point, event: &demarchev1.WarningRaised{
				CountryCode: st.GetCountryCode(), CrisisType: st.GetCrisisType(),
				Score: score, Threshold: threshold, FirstSignalAt: earliest(st.Contributions),
				Contributions: sortedContributions(st.Contributions), RulesVersion: st.RulesVersion,
			}})
		case st.CrisisClosed:
			res.Reason = fmt.Sprintf("above the threshold, but crisis %s is closed: the next episode opens when live signals take the score to %.1f",
				st.GetCrisisId(), st.GetEpisodeBase()+margin)
		case it.importID != "":
			// An import's: counted in the import's summary warning (act).
			p.deferred = append(p.deferred, attachment{it: it, point: point})
			st.EpisodeBase = score
		default:
			// The point names the crisis once the warning reached it (act).
			p.attached = append(p.attached, attachment{it: it, point: point})
			st.EpisodeBase = score
		}
		st.History = append(st.History, point)
		if n := len(st.History); n > MaxHistory {
			st.History = st.History[n-MaxHistory:]
		}
	}
	return p
}

// copyState is a copy of a situation that plan may change without touching
// prev (held in the situation cache): its own lists, sharing the
// contributions, points and timestamps, which nothing modifies. A deep
// proto.Clone of every contribution and of up to MaxHistory points, per
// write, was a tenth of ingest's time.
func copyState(prev *demarchev1.SituationState) *demarchev1.SituationState {
	return &demarchev1.SituationState{
		CountryCode: prev.GetCountryCode(), CrisisType: prev.GetCrisisType(),
		Contributions:    slices.Clone(prev.GetContributions()),
		NewestObservedAt: prev.GetNewestObservedAt(), AboveThreshold: prev.GetAboveThreshold(),
		Crossings: prev.GetCrossings(), CrisisId: prev.GetCrisisId(), PreviousCrisisId: prev.GetPreviousCrisisId(),
		Episodes: prev.GetEpisodes(), RulesVersion: prev.GetRulesVersion(),
		History:      slices.Clone(prev.GetHistory()),
		CrisisClosed: prev.GetCrisisClosed(), EpisodeBase: prev.GetEpisodeBase(),
		PendingImport: prev.GetPendingImport(), // replaced, never modified (act)
	}
}

// window is plan's view of a situation's contributions while it applies a
// batch: their event times decoded once, the oldest of them, and the score
// as last summed. Pruning, then scoring, the whole window for every signal,
// each contribution's timestamp decoded each time, was O(n²) per situation
// (a flare of thousands of signals on a few situations): now a signal that
// prunes nothing and leaves the window's end (or, without decay, whatever
// the end) where it was costs O(1). Scores are bit for bit cfg.score's: the
// same terms summed in the same order.
type window struct {
	rules  *Rules
	at     []time.Time // at[i]: when the i-th contribution was observed
	oldest time.Time   // at or before every at[i] (exact after reset or a prune)
	sum    float64     // the score at end, when summed
	end    time.Time
	summed bool
}

// newWindow is the window of cs, with room for more contributions.
func newWindow(rules *Rules, cs []*demarchev1.SignalContribution, more int) *window {
	w := &window{rules: rules, at: make([]time.Time, 0, len(cs)+more)}
	w.reset(cs)
	return w
}

// reset reads the contributions afresh (after a change window did not make).
func (w *window) reset(cs []*demarchev1.SignalContribution) {
	w.at = w.at[:0]
	for _, c := range cs {
		w.at = append(w.at, c.GetObservedAt().AsTime())
	}
	w.setOldest()
	w.summed = false
}

func (w *window) setOldest() {
	w.oldest = time.Time{}
	for i, t := range w.at {
		if i == 0 || t.Before(w.oldest) {
			w.oldest = t
		}
	}
}

// prune is prune on the contributions window holds: nothing to do while the
// oldest is after start.
func (w *window) prune(cs []*demarchev1.SignalContribution, start time.Time, inWindow map[string]bool) []*demarchev1.SignalContribution {
	if len(cs) == 0 || w.oldest.After(start) {
		return cs
	}
	out, at := cs[:0], w.at[:0]
	for i, c := range cs {
		if w.at[i].After(start) {
			out, at = append(out, c), append(at, w.at[i])
		} else {
			delete(inWindow, signalKey(c.GetSource(), c.GetSourceId()))
		}
	}
	w.at = at
	w.setOldest()
	if len(out) != len(cs) {
		w.summed = false
	}
	return out
}

// score is cfg.score of the contributions with the window ending at end.
func (w *window) score(cs []*demarchev1.SignalContribution, end time.Time) float64 {
	if w.summed && (w.rules.HalfLife <= 0 || w.end.Equal(end)) {
		return w.sum // without decay the end changes no weight
	}
	var t float64
	for i, x := range cs {
		t += w.rules.Decayed(x.GetWeight(), end.Sub(w.at[i]))
	}
	w.sum, w.end, w.summed = t, end, true
	return t
}

// add records a contribution appended to the window (observed at, of the
// given weight) and answers the score with it: score was called just before,
// at the same end.
func (w *window) add(at time.Time, weight float64) float64 {
	w.at = append(w.at, at)
	if len(w.at) == 1 || at.Before(w.oldest) {
		w.oldest = at
	}
	w.sum += w.rules.Decayed(weight, w.end.Sub(at))
	return w.sum
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

// episode is the crisis a live crossing goes to.
type episode struct {
	id     string
	opened bool // a new episode: opened by this crossing
}

// resolve finds the crisis of a crossing (situations as episodes): the
// situation's current episode while it is open; else an open real crisis of
// the same country and type however it was opened (a manual one); else a new
// episode, whose id is reserved once per situation and episode number in the
// situations bucket (Create: the first writer wins, every other instance and
// every retry reads the same id), so signal-with-start is keyed by it and
// concurrent crossings open one crisis.
func (s *Service) resolve(ctx context.Context, situation string, st *demarchev1.SituationState, exercise bool) (episode, error) {
	if id := st.GetCrisisId(); id != "" && !st.GetCrisisClosed() {
		open, err := s.opener.IsOpen(ctx, id)
		if err != nil {
			return episode{}, err
		}
		if open {
			return episode{id: id}, nil
		}
		st.PreviousCrisisId, st.CrisisId = id, ""
	} else if id != "" {
		st.PreviousCrisisId, st.CrisisId = id, ""
	}
	st.CrisisClosed = false
	if !exercise {
		id, err := s.findOpen(ctx, st.GetCountryCode(), st.GetCrisisType())
		if err != nil {
			return episode{}, err
		}
		// The previous episode is closed even while visibility still lists
		// it as open (it lags the closure a little).
		if id != "" && id != st.GetPreviousCrisisId() {
			st.CrisisId = id
			return episode{id: id}, nil
		}
	}
	n := st.GetEpisodes() + 1
	key := fmt.Sprintf("%s.episode.%d", situation, n)
	id := crisis.NewCrisisID(st.GetCountryCode(), s.config().Now())
	if _, err := s.situations.Create(ctx, key, []byte(id)); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return episode{}, fmt.Errorf("reserve episode %s: %w", key, err)
		}
		e, err := s.situations.Get(ctx, key)
		if err != nil {
			return episode{}, fmt.Errorf("read episode %s: %w", key, err)
		}
		id = string(e.Value())
	}
	st.Episodes, st.CrisisId = n, id
	return episode{id: id, opened: true}, nil
}

// act performs a plan's side effects: for each crossing, the crisis it goes
// to (resolve), WarningRaised and the opening (or signalling) of the crisis;
// then one warning for the live signals accepted above the threshold. Both
// are idempotent per crisis id and crossing.
func (s *Service) act(ctx context.Context, situation string, p *plan, ex *demarchev1.Exercise) ([]*demarchev1.CrisisTouch, error) {
	st := p.state
	now := s.config().Now()
	var touched []*demarchev1.CrisisTouch
	crossings := st.GetCrossings() - int32(len(p.crossings))
	for _, c := range p.crossings {
		crossings++
		ctx := ctx
		if c.it.ctx != nil {
			ctx = c.it.ctx // the crossing's work joins the trace of the signal that crossed
		}
		t, err := s.cross(ctx, situation, st, c, crossings, now, ex)
		if err != nil {
			return nil, err
		}
		touched = append(touched, t)
	}
	if len(p.deferred) > 0 && st.GetCrisisId() != "" {
		t, err := s.deferToImport(ctx, situation, p, ex)
		if err != nil {
			return nil, err
		}
		touched = append(touched, t)
	}
	if len(p.attached) == 0 || st.GetCrisisId() == "" {
		return touched, nil
	}
	heaviest := p.attached[0].it.sig
	for _, a := range p.attached[1:] {
		if a.it.sig.GetWeight() > heaviest.GetWeight() {
			heaviest = a.it.sig
		}
	}
	score := s.score(st)
	summary := heaviest.GetSummary()
	if n := len(p.attached) - 1; n > 0 {
		summary = fmt.Sprintf("%s (and %d more signal(s) in this batch; score %.1f)", summary, n, score)
	}
	scoreSeverity := crisisSeverity(score, s.config().Threshold(st.GetCountryCode()))
	w := &demarchev1.Warning{Source: heaviest.GetSource(), SourceId: heaviest.GetSourceId(), Severity: severityOf(heaviest),
		ObservedAt: heaviest.GetObservedAt(), Summary: truncate(summary, 4000), RulesVersion: st.GetRulesVersion(), ScoreSeverity: scoreSeverity}
	id := st.GetCrisisId()
	in := s.crisisInput(id, st, scoreSeverity, earliest(st.GetContributions()), now, ex)
	switch err := s.opener.OpenOrSignal(ctx, in, w); {
	case isClosed(err):
		// Closed while the situation stayed above its threshold: a closed
		// crisis takes no signal (applySituation plans the batch again).
		s.openIdx.Load().forget(id)
		return nil, errAttachClosed{crisisID: id}
	case err != nil:
		return nil, fmt.Errorf("%w: attach warning to crisis %s: %v", ErrUnavailable, id, err)
	}
	for _, a := range p.attached {
		a.it.result.CrisisId = id
		a.point.CrisisId = id
	}
	touched = append(touched, &demarchev1.CrisisTouch{CrisisId: id, Situation: situation})
	return touched, nil
}

// cross is the work of one threshold crossing (WarningRaised, the crisis
// opened or signalled), in a span of the signal's trace.
func (s *Service) cross(ctx context.Context, situation string, st *demarchev1.SituationState, c crossing, crossings int32, now time.Time, ex *demarchev1.Exercise) (*demarchev1.CrisisTouch, error) {
	ctx, span := tracing.Tracer(ServiceName).Start(ctx, "earlywarning threshold crossed", trace.WithAttributes(
		attribute.String("demarche.situation", situation), attribute.Float64("demarche.score", c.event.GetScore()),
		attribute.Float64("demarche.threshold", c.event.GetThreshold())))
	defer span.End()
	fail := func(err error) error {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	ep, err := s.resolve(ctx, situation, st, ex != nil)
	if err != nil {
		return nil, fail(fmt.Errorf("%w: %v", ErrUnavailable, err))
	}
	region, _ := demarchev1.RegionOf(st.GetCountryCode())
	ev := c.event
	ev.CrisisId = ep.id
	if ep.opened {
		ev.PreviousCrisisId = st.GetPreviousCrisisId()
	}
	route := eventbus.Route{Region: region, Country: st.GetCountryCode(), CrisisID: ep.id}
	if _, err := s.pub.Publish(ctx, route, eventbus.Event{
		ID: fmt.Sprintf("%s-warning-raised-%d", situation, crossings), Time: now, Data: ev,
	}); err != nil {
		return nil, fail(fmt.Errorf("%w: %v", ErrUnavailable, err))
	}
	severity := crisisSeverity(ev.GetScore(), ev.GetThreshold())
	in := s.crisisInput(ep.id, st, severity, ev.GetFirstSignalAt(), now, ex)
	sig := c.it.sig
	w := &demarchev1.Warning{
		Source: sig.GetSource(), SourceId: sig.GetSourceId(), Severity: severity, ObservedAt: sig.GetObservedAt(),
		Summary: truncate(fmt.Sprintf("Threshold crossed: score %.1f ≥ %.1f over %s from %d signals. Latest: %s",
			ev.GetScore(), ev.GetThreshold(), s.config().Window, len(ev.GetContributions()), sig.GetSummary()), 4000),
		RulesVersion: st.GetRulesVersion(), ScoreSeverity: severity,
	}
	if err := s.opener.OpenOrSignal(ctx, in, w); err != nil {
		// Closed since resolve looked: the retry opens the next episode.
		if isClosed(err) {
			s.openIdx.Load().forget(ep.id)
		}
		return nil, fail(fmt.Errorf("%w: open or signal crisis %s: %v", ErrUnavailable, ep.id, err))
	}
	c.it.result.CrisisId, c.it.result.CrisisOpened = ep.id, ep.opened
	c.point.CrisisId = ep.id
	s.log.Info("threshold crossed", zap.String("situation", situation), zap.String("crisis", ep.id), zap.Bool("new_episode", ep.opened),
		zap.Float64("score", ev.GetScore()), zap.Float64("threshold", ev.GetThreshold()), zap.Int("signals", len(ev.GetContributions())),
		zap.Time("first_signal_at", in.GetCrisis().GetFirstSignalAt().AsTime()))
	span.SetAttributes(attribute.String("demarche.crisis_id", ep.id), attribute.Bool("demarche.crisis_opened", ep.opened))
	return &demarchev1.CrisisTouch{CrisisId: ep.id, Opened: ep.opened, Situation: situation}, nil
}

// crisisInput is a crisis of the situation (crisis.NewCrisis: the first
// signal the given one, clamped to now), with the confidentiality and
// sharing the rules give its region and type; an exercise's is a drill.
func (s *Service) crisisInput(id string, st *demarchev1.SituationState, severity int32, first *timestamppb.Timestamp, now time.Time, ex *demarchev1.Exercise) *demarchev1.CrisisWorkflowInput {
	conf, shared := s.config().Rules.CrisisDefaultsFor(st.GetCountryCode(), st.GetCrisisType())
	if s.config().Confidentiality != demarchev1.Confidentiality_CONFIDENTIALITY_UNSPECIFIED {
		conf = s.config().Confidentiality
	}
	title := fmt.Sprintf("Early warning: %s in %s", st.GetCrisisType().Slug(), st.GetCountryCode())
	if ex != nil {
		title = fmt.Sprintf("Exercise %s: %s in %s", ex.GetId(), st.GetCrisisType().Slug(), st.GetCountryCode())
		shared = nil // an exercise's crises stay in the operations centre
	}
	p := crisis.NewCrisisParams{
		ID: id, Title: title, CountryCode: st.GetCountryCode(), CrisisType: st.GetCrisisType(), Severity: severity,
		Confidentiality: conf, SharedWith: shared, OpenedBy: ServiceName, Drill: ex != nil,
	}
	if first != nil {
		p.FirstSignalAt = first.AsTime()
	}
	c := crisis.NewCrisis(p, now)
	if id == st.GetCrisisId() {
		c.PreviousCrisisId = st.GetPreviousCrisisId()
	}
	in := &demarchev1.CrisisWorkflowInput{Crisis: c}
	if ex != nil {
		d := ex.GetDrill()
		in.DrillPolicy = &demarchev1.DrillPolicy{StageDuration: d.GetDecisionDelay(), TimeScale: d.GetTimeScale()}
	}
	return in
}

// Score explains a live situation's score: the signals in its window,
// heaviest first, and its score over time.
func (s *Service) Score(ctx context.Context, country string, t demarchev1.CrisisType) (*demarchev1.ScoreResponse, error) {
	if err := (&demarchev1.ScoreRequest{CountryCode: country, CrisisType: t}).Validate(); err != nil {
		return nil, err
	}
	situation := demarchev1.SituationKey(country, t)
	st, err := s.readSituation(ctx, situation)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if st == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSituation, situation)
	}
	cfg := s.config()
	region, _ := demarchev1.RegionOf(country)
	version := st.GetRulesVersion()
	if version == "" {
		version = cfg.Rules.Version
	}
	threshold := cfg.Threshold(country)
	closed := st.GetCrisisClosed()
	if !closed && st.GetAboveThreshold() && st.GetCrisisId() != "" {
		// Ingest learns of a closure when it next attaches a signal; the
		// explanation says it now. Without an answer it says nothing of it.
		open, err := s.opener.IsOpen(ctx, st.GetCrisisId())
		if err != nil {
			s.log.Debug("score: is the crisis open?", zap.String("crisis", st.GetCrisisId()), zap.Error(err))
		}
		closed = err == nil && !open
	}
	var next float64
	if closed {
		next = min(st.GetEpisodeBase(), cfg.score(st)) + cfg.Rules.NewEpisodeMargin*threshold
	}
	return &demarchev1.ScoreResponse{
		CountryCode: country, CrisisType: t, Region: region,
		Score: cfg.score(st), Threshold: threshold, Window: durationpb.New(cfg.Window),
		WindowEnd: st.GetNewestObservedAt(), AboveThreshold: st.GetAboveThreshold(), CrisisId: st.GetCrisisId(),
		Crossings: st.GetCrossings(), FirstSignalAt: earliest(st.GetContributions()),
		Contributions: sortedContributions(st.GetContributions()), RulesVersion: version,
		PreviousCrisisId: st.GetPreviousCrisisId(), Episodes: st.GetEpisodes(), History: st.GetHistory(),
		CrisisClosed: closed, NextEpisodeScore: next,
	}, nil
}
