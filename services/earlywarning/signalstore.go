package earlywarning

// # The signal store
//
// Every signal early warning accepts, live or historical (not an exercise's),
// is kept in the key-value bucket EARLYWARNING_SIGNAL_STORE, one key per
// signal:
//
//	<country>.<crisis type>.<YYYYMM of its event time>.<source>.id.<source id>
//
// (source.h.<hash> for an id that is not key-safe, as in the signals bucket),
// its value a StoredSignal (the signal, its revision, a hash of its content,
// when it was accepted). The key's history keeps its earlier revisions
// (StoreHistory). Country, type and month in the key let a query, and the
// scoring of an old signal in its own window, read only the months they need
// (the keys' subjects filter on the server), so no value ever holds more than
// one signal and the situation's own record stays bounded by its window.
//
// # Revisions
//
// A source that sends a signal again under the same id with changed content
// (ACLED revises its fatalities) revises it: the signals bucket's mark of an
// applied signal carries its revision, the hash of its content, its deaths
// and its store key ("applied <rev> <hash> <deaths> <key>"), so a request
// (an import) that brings the same id with another hash is a revision, not a
// duplicate; on the stream, a redelivery of a signal still in the window
// whose content differs from its contribution is one too. The revision
// replaces the signal's contribution (the situation is re-scored; a crossing
// it causes raises as any does), its line in every explanation says
// "rev 2: 162→260 deaths", and the store keeps it as the key's next value. A
// revision that would move a signal to another situation (another country or
// crisis type) is refused: report it under a new id.
//
// # Old signals in their own window
//
// A signal older than its situation's window (the window ends at the
// situation's newest signal: a 2009 file imported after a 2026 one) does not
// change today's score, but it is scored in its own window: the store's
// signals of the situation in the window ending at its event time, with the
// batch's, give its score then, recorded as a point of the situation's score
// history at that time (ownWindows).

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// StoreBucket is the signal store: every accepted signal, by situation,
// month and source + id, with its revisions.
const StoreBucket = "EARLYWARNING_SIGNAL_STORE"

// StoreHistory is how many revisions of a signal the store keeps (the
// newest; JetStream's key-value history is at most 64).
const StoreHistory = 16

// Bounds of a SignalsQuery (demarchev1.MaxSignalsQueryLimit at most).
const (
	defaultSignalsLimit = 1000
	// maxQueryMonths: a query spanning more months than this reads the
	// country's (or every) key instead of one filter per month.
	maxQueryMonths = 48
)

// storeResource is the store's bucket (Resources).
func storeResource(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket: StoreBucket, Description: "Démarche early warning: every accepted signal (live or historical), key <country>.<type>.<YYYYMM>.<source>.id.<id>, its revisions in the key's history",
		History: StoreHistory, Storage: jetstream.FileStorage, Replicas: replicas, MaxValueSize: 64 << 10,
	}
}

// storeKey is where the store keeps a signal.
func storeKey(sig *demarchev1.Signal) string {
	return storePrefix(sig.GetCountryCode(), sig.GetCrisisType()) + sig.GetObservedAt().AsTime().UTC().Format("200601") + "." +
		signalKey(sig.GetSource(), sig.GetSourceId())
}

// storePrefix is a situation's keys' prefix in the store.
func storePrefix(country string, t demarchev1.CrisisType) string {
	return country + "." + t.Slug() + "."
}

// contentHash is a short hash of what a revision of a signal may change.
// The bytes hashed are those of
//
//	fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00%g\x00%d\x00%s\x00%s\x00%s", country, type,
//		observed (Unix ns), fatalities, weight, severity, rule, location, summary)
//
// appended without fmt (it runs for every signal stored: fmt was a third of
// storing); TestContentHashFormat holds the two equal.
func contentHash(sig *demarchev1.Signal) string {
	b := make([]byte, 0, 64+len(sig.GetCountryCode())+len(sig.GetRule())+len(sig.GetLocation())+len(sig.GetSummary()))
	b = append(append(b, sig.GetCountryCode()...), 0)
	b = append(strconv.AppendInt(b, int64(sig.GetCrisisType()), 10), 0)
	b = append(strconv.AppendInt(b, sig.GetObservedAt().AsTime().UnixNano(), 10), 0)
	b = append(strconv.AppendInt(b, int64(sig.GetFatalities()), 10), 0)
	if w := sig.GetWeight(); math.IsInf(w, 0) || math.IsNaN(w) {
		b = fmt.Appendf(b, "%g", w) // fmt's spelling of the non-finite ones
	} else {
		b = strconv.AppendFloat(b, w, 'g', -1, 64) // what %g prints for a finite float64
	}
	b = append(strconv.AppendInt(append(b, 0), int64(sig.GetSeverity()), 10), 0)
	b = append(append(b, sig.GetRule()...), 0)
	b = append(append(b, sig.GetLocation()...), 0)
	b = append(b, sig.GetSummary()...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// priorRevision is what the signals bucket says of a signal applied before.
type priorRevision struct {
	rev        int32
	hash       string
	fatalities int32
	key        string // its store key
}

// appliedMark is the signals bucket's value for an applied signal.
func appliedMark(it *item) []byte {
	return fmt.Appendf(nil, "%s %d %s %d %s", markApplied, max(it.revision, 1), contentHash(it.sig), it.sig.GetFatalities(), storeKey(it.sig))
}

// parseApplied reads a signals bucket value: applied or not (pending), and
// what it says of the applied revision (nil for a mark written before
// revisions were recorded: its content is unknown, so it stays a duplicate).
func parseApplied(v []byte) (bool, *priorRevision) {
	f := strings.Fields(string(v))
	if len(f) == 0 || f[0] != string(markApplied) {
		return false, nil
	}
	if len(f) != 5 {
		return true, nil
	}
	rev, err1 := strconv.ParseInt(f[1], 10, 32)
	deaths, err2 := strconv.ParseInt(f[3], 10, 32)
	if err1 != nil || err2 != nil {
		return true, nil
	}
	return true, &priorRevision{rev: int32(rev), hash: f[2], fatalities: int32(deaths), key: f[4]}
}

// checkSeen settles a signal whose de-duplication key existed (this ingest
// did not create it): a duplicate (true), a revision of another situation
// (refused: true), or to be applied (false: pending, or a revision, it.prior).
func checkSeen(it *item, value []byte) bool {
	applied, prior := parseApplied(value)
	switch {
	case !applied:
		return false
	case prior == nil || prior.hash == contentHash(it.sig):
		it.result.Status = demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE
		return true
	case !strings.HasPrefix(prior.key, storePrefix(it.sig.GetCountryCode(), it.sig.GetCrisisType())):
		was, _, _ := strings.Cut(prior.key, ".")
		rest := strings.TrimPrefix(prior.key, was+".")
		typ, _, _ := strings.Cut(rest, ".")
		reject(it.result, fmt.Sprintf("source_id: a revision cannot move a signal to another situation (it was %s %s, now %s %s): report it under a new id",
			was, typ, it.sig.GetCountryCode(), it.sig.GetCrisisType().Slug()), false)
		return true
	}
	it.prior = prior
	return false
}

// contributionOf finds a signal's contribution in the window.
func contributionOf(cs []*demarchev1.SignalContribution, key string) int {
	return slices.IndexFunc(cs, func(c *demarchev1.SignalContribution) bool {
		return signalKey(c.GetSource(), c.GetSourceId()) == key
	})
}

// changedFrom says whether a signal differs from its contribution in what a
// contribution records.
func changedFrom(c *demarchev1.SignalContribution, sig *demarchev1.Signal) bool {
	return c.GetWeight() != sig.GetWeight() || c.GetFatalities() != sig.GetFatalities() || c.GetRule() != sig.GetRule() ||
		!c.GetObservedAt().AsTime().Equal(sig.GetObservedAt().AsTime()) || c.GetSummary() != truncate(sig.GetSummary(), 300)
}

// revise prepares the acceptance of a revision (plan): the old contribution
// (at i in the window, -1 when outside it) is taken out, and the item gets its
// revision number and what changed.
func revise(st *demarchev1.SituationState, i int, it *item) {
	prevRev, prevDeaths, prevWeight := int32(1), int32(0), math.NaN()
	if it.prior != nil {
		prevRev, prevDeaths = it.prior.rev, it.prior.fatalities
	}
	if i >= 0 {
		c := st.Contributions[i]
		prevRev, prevDeaths, prevWeight = max(prevRev, c.GetRevision(), 1), c.GetFatalities(), c.GetWeight()
		st.Contributions = slices.Delete(slices.Clone(st.Contributions), i, i+1)
	}
	it.revision = prevRev + 1
	sig := it.sig
	switch {
	case prevDeaths != sig.GetFatalities():
		it.revised = fmt.Sprintf("rev %d: %d→%d deaths", it.revision, prevDeaths, sig.GetFatalities())
	case !math.IsNaN(prevWeight) && prevWeight != sig.GetWeight():
		it.revised = fmt.Sprintf("rev %d: weight %.2f→%.2f", it.revision, prevWeight, sig.GetWeight())
	default:
		it.revised = fmt.Sprintf("rev %d: content changed", it.revision)
	}
	it.result.Revision = it.revision
}

// storeSignals keeps the accepted signals of a batch in the store (not an
// exercise's), all published at once and then waited for; a revision that
// moved the signal to another month removes it from its old key. A write
// that fails is logged: the signal is scored and marked applied, so only the
// store misses it (the next revision, or an import of it again, puts it back).
func (s *Service) storeSignals(ctx context.Context, items []*item, ex *demarchev1.Exercise) {
	s.waitStored(ctx, s.publishStore(items, ex))
}

// publishStore publishes the store's writes of the accepted items (storeSignals
// without waiting): their futures, for waitStored.
func (s *Service) publishStore(items []*item, ex *demarchev1.Exercise) []jetstream.PubAckFuture {
	if ex != nil || s.store == nil {
		return nil
	}
	now := timestamppb.New(s.config().Now())
	var futures []jetstream.PubAckFuture
	publish := func(subject string, data []byte, del bool) {
		var err error
		var f jetstream.PubAckFuture
		if del {
			m := nats.NewMsg(subject)
			m.Header.Set("KV-Operation", "DEL") // what the bucket's Delete sends: the history stays
			f, err = s.js.PublishMsgAsync(m)
		} else {
			f, err = s.js.PublishAsync(subject, data)
		}
		if err != nil {
			s.log.Warn("store signal", zap.String("subject", subject), zap.Error(err))
			return
		}
		futures = append(futures, f)
	}
	for _, it := range items {
		if it.result.GetStatus() != demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED {
			continue
		}
		key := storeKey(it.sig)
		if it.prior != nil && it.prior.key != key {
			publish(kvSubject(StoreBucket, it.prior.key), nil, true)
		}
		data, err := proto.Marshal(&demarchev1.StoredSignal{Signal: it.sig, Revision: max(it.revision, 1), Revised: it.revised,
			AcceptedAt: now, Historical: it.historical, ContentHash: contentHash(it.sig)})
		if err != nil {
			s.log.Warn("store signal", zap.String("key", key), zap.Error(err))
			continue
		}
		publish(kvSubject(StoreBucket, key), data, false)
	}
	return futures
}

// waitStored waits for the store's writes: a write that fails is only logged.
func (s *Service) waitStored(ctx context.Context, futures []jetstream.PubAckFuture) {
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			s.log.Warn("store signal", zap.String("subject", f.Msg().Subject), zap.Error(err))
		case <-ctx.Done():
			return
		}
	}
}

// readStore reads the latest revision of every stored signal whose key
// matches one of the filters, calling fn with each (in no useful order).
func (s *Service) readStore(ctx context.Context, filters []string, fn func(*demarchev1.StoredSignal)) error {
	w, err := s.store.WatchFiltered(ctx, filters, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("read signal store: %w", err)
	}
	defer func() { _ = w.Stop() }() // a watcher that fails to stop has nothing left to deliver
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("read signal store: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("read signal store: the watch stopped")
			}
			if e == nil {
				return nil // every current value delivered
			}
			var ss demarchev1.StoredSignal
			if err := proto.Unmarshal(e.Value(), &ss); err != nil {
				return fmt.Errorf("read signal store: decode %s: %w", e.Key(), err)
			}
			fn(&ss)
		}
	}
}

// storeFilters are the key filters of a country (or "*"), a crisis type (or
// "*") and event times in [since, until): one per month when the range is
// bounded and short, else all the situation's keys.
func storeFilters(country, typ string, since, until time.Time) []string {
	if country == "" {
		country = "*"
	}
	if typ == "" {
		typ = "*"
	}
	prefix := country + "." + typ + "."
	if since.IsZero() || until.IsZero() || !since.Before(until) {
		return []string{prefix + ">"}
	}
	first := time.Date(since.Year(), since.Month(), 1, 0, 0, 0, 0, time.UTC)
	var out []string
	for m := first; m.Before(until); m = m.AddDate(0, 1, 0) {
		if len(out) == maxQueryMonths {
			return []string{prefix + ">"}
		}
		out = append(out, prefix+m.Format("200601")+".>")
	}
	return out
}

// Signals answers a query of the signal store: the latest revision of each
// accepted signal matching it, oldest event first (then by source and id),
// a page at a time.
func (s *Service) Signals(ctx context.Context, q *demarchev1.SignalsQuery) (*demarchev1.SignalsPage, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	limit := int(q.GetLimit())
	if limit == 0 {
		limit = defaultSignalsLimit
	}
	var since, until time.Time
	if q.GetSince() != nil {
		since = q.GetSince().AsTime().UTC()
	}
	if q.GetUntil() != nil {
		until = q.GetUntil().AsTime().UTC()
	}
	typ := ""
	if q.GetCrisisType() != demarchev1.CrisisType_CRISIS_TYPE_UNSPECIFIED {
		typ = q.GetCrisisType().Slug()
	}
	afterAt, afterKey, err := parseCursor(q.GetAfter())
	if err != nil {
		return nil, err
	}
	var all []*demarchev1.StoredSignal
	err = s.readStore(ctx, storeFilters(q.GetCountryCode(), typ, since, until), func(ss *demarchev1.StoredSignal) {
		at := ss.GetSignal().GetObservedAt().AsTime()
		if (!since.IsZero() && at.Before(since)) || (!until.IsZero() && !at.Before(until)) {
			return
		}
		all = append(all, ss)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	slices.SortFunc(all, compareStored)
	page := &demarchev1.SignalsPage{Total: int32(len(all))}
	from := 0
	if q.GetAfter() != "" {
		// The position after the cursor, found or not (found says only whether that signal is still there).
		from, _ = slices.BinarySearchFunc(all, struct {
			at  int64
			key string
		}{afterAt, afterKey}, func(ss *demarchev1.StoredSignal, c struct {
			at  int64
			key string
		}) int {
			return cmp.Or(cmp.Compare(ss.GetSignal().GetObservedAt().AsTime().UnixNano(), c.at),
				cmp.Compare(sortKey(ss), c.key+"\x00"))
		})
	}
	to := min(len(all), from+limit)
	page.Signals = all[from:to]
	if to < len(all) && to > from {
		last := all[to-1]
		page.Next = strconv.FormatInt(last.GetSignal().GetObservedAt().AsTime().UnixNano(), 10) + "/" + sortKey(last)
	}
	return page, nil
}

func sortKey(ss *demarchev1.StoredSignal) string {
	return signalKey(ss.GetSignal().GetSource(), ss.GetSignal().GetSourceId())
}

func compareStored(a, b *demarchev1.StoredSignal) int {
	return cmp.Or(a.GetSignal().GetObservedAt().AsTime().Compare(b.GetSignal().GetObservedAt().AsTime()), cmp.Compare(sortKey(a), sortKey(b)))
}

// parseCursor reads a SignalsPage's next: <unix nanoseconds>/<signal key>.
func parseCursor(c string) (int64, string, error) {
	if c == "" {
		return 0, "", nil
	}
	at, key, ok := strings.Cut(c, "/")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || key == "" {
		return 0, "", &demarchev1.ValidationError{Message: "signals query", Fields: []*demarchev1.FieldError{{Field: "after",
			Reason: fmt.Sprintf("%q is not a cursor: pass a page's next as it came", truncate(c, 40))}}}
	}
	return n, key, nil
}

func (s *Service) serveSignals(ctx context.Context, q *demarchev1.SignalsQuery) (*demarchev1.SignalsPage, error) {
	return s.Signals(ctx, q)
}

// ownWindow is an old signal's score in its own window.
type ownWindow struct {
	score float64
	end   time.Time
}

// ownWindows scores the items older than the situation's window (its newest
// signal minus the window) in their own windows: the store's signals of the
// situation (with the batch's own, which the store may not have yet) in the
// window ending at each one's event time. Nothing is read when no item is
// that old (every batch of a file imported in order).
func (s *Service) ownWindows(ctx context.Context, st *demarchev1.SituationState, items []*item, ex *demarchev1.Exercise) (map[*item]ownWindow, error) {
	if ex != nil || s.store == nil || st == nil || st.GetNewestObservedAt() == nil {
		return nil, nil
	}
	cfg := s.config()
	start := st.GetNewestObservedAt().AsTime().Add(-cfg.Window)
	var old []*item
	for _, it := range items {
		if !it.sig.GetObservedAt().AsTime().After(start) {
			old = append(old, it)
		}
	}
	if len(old) == 0 {
		return nil, nil
	}
	from := old[0].sig.GetObservedAt().AsTime().Add(-cfg.Window)
	to := old[len(old)-1].sig.GetObservedAt().AsTime().Add(time.Nanosecond)
	type point struct {
		at     time.Time
		weight float64
	}
	batch := map[string]bool{}
	var pts []point
	for _, it := range items {
		batch[signalKey(it.sig.GetSource(), it.sig.GetSourceId())] = true
		if at := it.sig.GetObservedAt().AsTime(); at.After(from) && at.Before(to) {
			pts = append(pts, point{at, it.sig.GetWeight()})
		}
	}
	err := s.readStore(ctx, storeFilters(st.GetCountryCode(), st.GetCrisisType().Slug(), from, to), func(ss *demarchev1.StoredSignal) {
		sig := ss.GetSignal()
		at := sig.GetObservedAt().AsTime()
		if batch[signalKey(sig.GetSource(), sig.GetSourceId())] || !at.After(from) || !at.Before(to) {
			return
		}
		pts = append(pts, point{at, sig.GetWeight()})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(pts, func(a, b point) int { return a.at.Compare(b.at) })
	out := make(map[*item]ownWindow, len(old))
	for _, it := range old {
		end := it.sig.GetObservedAt().AsTime()
		// The first point inside the window, whether one falls exactly on its start or not.
		lo, _ := slices.BinarySearchFunc(pts, end.Add(-cfg.Window), func(p point, t time.Time) int {
			if p.at.After(t) {
				return 1
			}
			return -1
		})
		var score float64
		for _, p := range pts[lo:] {
			if p.at.After(end) {
				break
			}
			score += cfg.Rules.Decayed(p.weight, end.Sub(p.at))
		}
		out[it] = ownWindow{score: score, end: end}
	}
	return out, nil
}

// insertPoint puts an old signal's point into the history in event-time
// order (the history keeps the newest MaxHistory: an old point in a full
// history is the first to go).
func insertPoint(h []*demarchev1.ScorePoint, p *demarchev1.ScorePoint) []*demarchev1.ScorePoint {
	// Where p goes in time order; an existing point at the same time is kept before it.
	i, _ := slices.BinarySearchFunc(h, p.GetAt().AsTime(), func(x *demarchev1.ScorePoint, t time.Time) int {
		if x.GetAt().AsTime().After(t) {
			return 1
		}
		return -1
	})
	return slices.Insert(h, i, p)
}

// Rows yields signals one at a time with their line, io.EOF at the end (a
// *RowError for a row that cannot be read): a file's Reader, or StoredRows.
type Rows interface {
	Next() (*demarchev1.Signal, int, error)
}

// StoredRows yields signals read from the signal store (GET /v1/signals) as
// a backtest or an evaluation reads a file's rows; a signal's line is its
// place in the list (from 1).
func StoredRows(sigs []*demarchev1.Signal) Rows { return &storedRows{sigs: sigs} }

type storedRows struct {
	sigs []*demarchev1.Signal
	i    int
}

func (r *storedRows) Next() (*demarchev1.Signal, int, error) {
	if r.i == len(r.sigs) {
		return nil, 0, io.EOF
	}
	r.i++
	return r.sigs[r.i-1], r.i, nil
}
