package earlywarning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Rules applied on the running platform (issue 22 item 6).
//
// `demarche warning rules apply FILE` (the head of department, through the
// gateway: POST /v1/warning/rules) asks the rules endpoint of this service
// (ApplyRules). The file is validated exactly as `warning rules validate`
// does, bounds included; a refused file changes nothing and the answer names
// each problem's line and field. An accepted file is written to the key
// RulesKey of the EARLYWARNING_RULES bucket (compare-and-set on the key's
// last revision, so two applies never lose each other's previous version;
// the bucket keeps RulesHistory versions), recorded on the audit trail's
// global chain (the audit service's rules-changed endpoint, which only this
// service's credential may ask: event type rules-changed, principal the
// person the gateway authenticated), and adopted.
//
// Adopting a version swaps the whole configuration at once (Service.conf):
// a batch of signals is planned under one version from start to end. Then
// every live situation whose state is not yet at the new version is
// re-scored under it, under its lock and with a compare-and-set write like
// any batch: the window (from its newest signal), decay and threshold of the
// new rules; a situation the new rules take across its threshold with a live
// newest signal crosses as a signal would (WarningRaised, its crisis opened
// or signalled: one warning per crossing), one they take below is below (its
// next crossing raises again). Weights stay those the signals were
// classified with on import (each contribution names its rule and rules
// version); classification changes apply to what is imported next.
// Exercises' situations are not re-scored (a drill replays what it was
// started with); their next signals are scored under the rules in force.
//
// Every instance watches the key: the one that wrote it adopts at once and
// answers with the counts; the others adopt from the watch, re-scoring only
// what is not yet at the version (so each situation is re-scored once).
// At start the last applied version is in force before anything is served,
// and the watch re-scores what a stop left behind.
//
// Precedence: applied rules replace the --rules file (serve earlywarning,
// dev --warning-rules) and the scoring flags (--window, --horizon,
// --threshold, --region-threshold), which are what runs until rules are
// applied; --confidentiality stays. To go back to a file, apply it.

// Names of the rules bucket.
const (
	// RulesKey is the key of the rules in force.
	RulesKey = "active"
	// RulesHistory is how many applied versions the bucket keeps (JetStream's most).
	RulesHistory = 64
)

// config is the configuration in force.
func (s *Service) config() *Config { return s.conf.Load() }

// configFor is the configuration under applied rules r: the service's own
// (as started) with r for the rules and the flags' scoring overrides dropped.
func (s *Service) configFor(r *Rules) (*Config, error) {
	c := s.base
	c.Rules = r
	c.Window, c.Horizon, c.DefaultThreshold, c.Thresholds = 0, 0, 0, nil
	c.defaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// RulesDigest is the SHA-256 (hex) of a rules file's bytes.
func RulesDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// decodeActive reads a value of the rules bucket.
func decodeActive(data []byte) (*demarchev1.ActiveRules, *Rules, error) {
	var a demarchev1.ActiveRules
	if err := proto.Unmarshal(data, &a); err != nil {
		return nil, nil, fmt.Errorf("decode applied rules: %w", err)
	}
	name := a.GetChange().GetName()
	if name == "" {
		name = "applied"
	}
	r, err := ParseRules(name, a.GetRules())
	if err != nil {
		return nil, nil, err
	}
	return &a, r, nil
}

// watchRules puts the last applied rules into force, then follows the key.
func (s *Service) watchRules(ctx context.Context) error {
	switch e, err := s.rules.Get(ctx, RulesKey); {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		// Nothing applied: the file's rules (and the flags) run.
	case err != nil:
		return fmt.Errorf("read applied rules: %w", err)
	default:
		if a, cfg, err := s.swapTo(e.Revision(), e.Value()); err != nil {
			// Validated before it was written: only a newer build's stricter
			// bounds get here. The file's rules run, loudly (swapTo logged it).
			s.log.Error("the file's rules run until rules are applied again", zap.Uint64("revision", e.Revision()))
		} else {
			s.log.Info("applied rules in force", zap.String("rules", cfg.Rules.Version), zap.Uint64("revision", e.Revision()),
				zap.String("applied_by", a.GetChange().GetAppliedBy()), zap.String("instead_of", s.base.Rules.Version))
		}
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w, err := s.rules.Watch(wctx, RulesKey)
	if err != nil {
		cancel()
		return fmt.Errorf("watch applied rules: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var pending jetstream.KeyValueEntry
		var catchUp <-chan time.Time
		initial, attempt := true, 0
		for {
			select {
			case <-wctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					initial = false // the end of the initial value
					continue
				}
				if e.Operation() != jetstream.KeyValuePut {
					continue // a delete: nothing to adopt
				}
				// In force at once; the situations are re-scored by the
				// instance that applied them, this one catches up on what is
				// still behind later (at start: at once).
				s.swapTo(e.Revision(), e.Value())
				pending, attempt = e, 0
				if initial {
					catchUp = time.After(0)
				} else {
					catchUp = time.After(RulesCatchUp)
				}
			case <-catchUp:
				catchUp = nil
				if _, err := s.adopt(wctx, pending.Revision(), pending.Value()); err != nil && wctx.Err() == nil {
					// Re-scoring can meet an unavailable Temporal: again, later.
					attempt++
					s.log.Warn("re-scoring under applied rules failed; will retry", zap.Uint64("revision", pending.Revision()), zap.Int("attempt", attempt), zap.Error(err))
					catchUp = time.After(time.Duration(min(attempt, 30)) * time.Second)
				}
			}
		}
	}()
	s.closers = append(s.closers, func() {
		cancel()
		<-done
		_ = w.Stop() // stopping: its subscription ends with the connection anyway
	})
	return nil
}

// RulesCatchUp is how long an instance that did not apply a version waits
// before re-scoring what is still behind it: the applying instance re-scores
// at once and answers with the counts; the others only catch up (after its
// stop, say), so that a situation is re-scored, and counted, once.
const RulesCatchUp = 30 * time.Second

// swapTo puts the rules of the bucket's revision rev into force, unless a
// newer revision already is: from now on every batch is planned under them.
func (s *Service) swapTo(rev uint64, value []byte) (*demarchev1.ActiveRules, *Config, error) {
	a, r, err := decodeActive(value)
	if err != nil {
		s.log.Error("applied rules unusable", zap.Uint64("revision", rev), zap.Error(err))
		return nil, nil, fmt.Errorf("applied rules revision %d: %w", rev, err)
	}
	cfg, err := s.configFor(r)
	if err != nil {
		s.log.Error("applied rules unusable", zap.Uint64("revision", rev), zap.Error(err))
		return nil, nil, fmt.Errorf("applied rules revision %d: %w", rev, err)
	}
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	if rev >= s.swapRev {
		s.swapRev = rev
		s.conf.Store(cfg)
	}
	return a, s.config(), nil
}

// adopt puts the rules of the bucket's revision rev into force and re-scores
// every live situation not yet under them. A revision already adopted
// answers what adopting it did.
func (s *Service) adopt(ctx context.Context, rev uint64, value []byte) (*demarchev1.RulesChanged, error) {
	s.rulesMu.Lock()
	defer s.rulesMu.Unlock()
	if c := s.lastChange; c != nil && c.GetRevision() >= rev {
		return proto.Clone(c).(*demarchev1.RulesChanged), nil
	}
	a, cfg, err := s.swapTo(rev, value)
	if err != nil {
		return nil, err
	}
	r := cfg.Rules
	ch := proto.Clone(a.GetChange()).(*demarchev1.RulesChanged)
	ch.Revision = rev
	n, crossed, fell, err := s.rescoreAll(ctx, cfg)
	ch.Situations, ch.Crossings, ch.FellBelow = int32(n), int32(crossed), int32(fell)
	if err != nil {
		return nil, fmt.Errorf("re-score under rules %s: %w", r.Version, err)
	}
	s.lastChange = ch
	s.log.Info("rules applied", zap.String("rules", r.Version), zap.String("previous", ch.GetPreviousVersion()), zap.Uint64("revision", rev),
		zap.String("applied_by", ch.GetAppliedBy()), zap.Int("situations", n), zap.Int("crossings", crossed), zap.Int("fell_below", fell))
	return proto.Clone(ch).(*demarchev1.RulesChanged), nil
}

// ApplyRules validates a rules file and puts it into force: written to the
// rules bucket, recorded on the audit trail, adopted (every situation
// re-scored). A refused file changes nothing (ErrInvalid naming each
// problem's line and field); the same version as the one in force changes
// nothing either (unchanged), but its record is sent again: the audit trail
// keeps one per revision, and a change whose record failed gets it.
func (s *Service) ApplyRules(ctx context.Context, req *demarchev1.ApplyRulesRequest) (*demarchev1.RulesChanged, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	name := req.GetName()
	if name == "" {
		name = "rules"
	}
	r, err := ParseRules(name, req.GetRules())
	if err != nil {
		return nil, &errs.Error{Sentinel: errs.ErrInvalid, Msg: err.Error()}
	}
	if _, err := s.configFor(r); err != nil {
		return nil, &errs.Error{Sentinel: errs.ErrInvalid, Msg: fmt.Sprintf("rules %s: %v", name, err)}
	}
	for attempt := 1; ; attempt++ {
		previous, last := s.base.Rules.Version, uint64(0)
		var current *demarchev1.RulesChanged
		switch e, err := s.rules.Get(ctx, RulesKey); {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, fmt.Errorf("%w: read the rules in force: %v", ErrUnavailable, err)
		default:
			var a demarchev1.ActiveRules
			if err := proto.Unmarshal(e.Value(), &a); err != nil {
				return nil, fmt.Errorf("%w: decode the rules in force: %v", ErrUnavailable, err)
			}
			previous, last, current = a.GetChange().GetVersion(), e.Revision(), a.GetChange()
		}
		if last != 0 && previous == r.Version {
			// Already in force. Its record is sent again, as it was (the
			// audit trail keeps one record per revision): an apply whose
			// record failed is completed by applying the same file again.
			current.Revision = last
			if err := s.recordRulesChange(ctx, current); err != nil {
				return nil, fmt.Errorf("%w: rules %s are in force (revision %d) but the audit trail did not record the change: %v", ErrUnavailable, r.Version, last, err)
			}
			return &demarchev1.RulesChanged{PreviousVersion: current.GetPreviousVersion(), Version: r.Version, Digest: RulesDigest(req.GetRules()),
				AppliedBy: req.GetAppliedBy(), Name: req.GetName(), Revision: last, Unchanged: true}, nil
		}
		ch := &demarchev1.RulesChanged{PreviousVersion: previous, Version: r.Version, Digest: RulesDigest(req.GetRules()),
			AppliedBy: req.GetAppliedBy(), AppliedAt: timestamppb.New(s.config().Now()), Name: req.GetName()}
		value, err := proto.Marshal(&demarchev1.ActiveRules{Rules: req.GetRules(), Change: ch})
		if err != nil {
			return nil, fmt.Errorf("encode rules: %w", err)
		}
		var rev uint64
		if last == 0 {
			rev, err = s.rules.Create(ctx, RulesKey, value)
		} else {
			rev, err = s.rules.Update(ctx, RulesKey, value, last)
		}
		if err != nil {
			if attempt < maxCASAttempts && (errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)) {
				// Another apply won: this one follows it, its previous version.
				time.Sleep(time.Duration(rand.Int64N(int64(attempt) * int64(casBackoff))))
				continue
			}
			return nil, fmt.Errorf("%w: write rules: %v", ErrUnavailable, err)
		}
		ch.Revision = rev
		// On the trail before anything is re-scored: a change in force is a
		// change recorded, however long re-scoring takes. Written, the rules
		// are in force on every instance (their watch) whether or not the
		// trail answers, so they are adopted here all the same, and the
		// caller is told to apply the same file again to record them.
		audited := s.recordRulesChange(ctx, ch)
		out, err := s.adopt(ctx, rev, value)
		switch {
		case audited != nil:
			return nil, fmt.Errorf("%w: rules %s are in force (revision %d) but the audit trail did not record the change (apply the same file again to record it): %v",
				ErrUnavailable, r.Version, rev, audited)
		case err != nil:
			return nil, fmt.Errorf("%w: rules %s are in force (revision %d), re-scoring goes on in the background: %v", ErrUnavailable, r.Version, rev, err)
		}
		return out, nil
	}
}

// recordRulesChange records the change on the audit trail's global chain.
func (s *Service) recordRulesChange(ctx context.Context, ch *demarchev1.RulesChanged) error {
	if f := s.config().RecordRulesChange; f != nil {
		return f(ctx, ch)
	}
	return natsrpc.Call(ctx, s.nc, natsrpc.AuditRulesChanged, ch, &demarchev1.AuditOperationResponse{})
}

// rescoreAll re-scores every live situation (exercises' and episode
// reservations are left) not yet at cfg's version: how many were, how many
// crossed, how many fell below.
func (s *Service) rescoreAll(ctx context.Context, cfg *Config) (n, crossed, fell int, err error) {
	lister, err := s.situations.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return 0, 0, 0, nil
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("list situations: %w", err)
	}
	var keys []string
	for key := range lister.Keys() {
		if !strings.HasPrefix(key, "x-") && !strings.Contains(key, ".") {
			keys = append(keys, key)
		}
	}
	_ = lister.Stop() // all keys read: stopping loses nothing
	for _, key := range keys {
		done, c, f, err := s.rescore(ctx, key, cfg)
		if err != nil {
			return n, crossed, fell, fmt.Errorf("situation %s: %w", key, err)
		}
		if done {
			n++
		}
		if c {
			crossed++
		}
		if f {
			fell++
		}
	}
	return n, crossed, fell, nil
}

// rescore re-scores one situation under cfg (rescorePlan) and writes it.
func (s *Service) rescore(ctx context.Context, situation string, cfg *Config) (done, crossed, fell bool, err error) {
	defer s.lock(situation)()
	for attempt := 1; ; attempt++ {
		st, rev, err := s.cachedSituation(ctx, situation, true)
		if err != nil {
			return false, false, false, err
		}
		if st == nil || st.GetRulesVersion() == cfg.Rules.Version {
			return false, false, false, nil // gone, or already under these rules
		}
		p := cfg.rescorePlan(st, cfg.Now())
		if _, err := s.act(ctx, situation, p, nil); err != nil {
			return false, false, false, err
		}
		data, err := proto.Marshal(p.state)
		if err != nil {
			return false, false, false, fmt.Errorf("encode situation %s: %w", situation, err)
		}
		s.awaitStored(ctx, situation) // the signal store first (writebehind.go)
		written, err := s.situations.Update(ctx, situation, data, rev)
		s.cache.put(situation, p.state, written, err)
		if err != nil {
			if attempt < maxCASAttempts && isWrongSequence(err) {
				continue // an ingest of another instance wrote it: again, on its state
			}
			return false, false, false, fmt.Errorf("write situation %s: %w", situation, err)
		}
		return true, len(p.crossings) > 0, st.GetAboveThreshold() && !p.state.GetAboveThreshold(), nil
	}
}

// rescorePlan is a situation's state under cfg: its window (before its
// newest signal), decay and threshold. A live situation (its newest signal
// within the horizon) the new rules take to or above its threshold crosses
// (a crossing as plan makes one, carried by its newest signal); one they
// take below is below. A point of the score's history records the version
// when the score or the threshold moved.
func (c *Config) rescorePlan(prev *demarchev1.SituationState, now time.Time) *plan {
	st := copyState(prev)
	st.RulesVersion = c.Rules.Version
	p := &plan{state: st}
	if st.GetNewestObservedAt() == nil {
		return p
	}
	end := st.GetNewestObservedAt().AsTime()
	threshold := c.Threshold(st.GetCountryCode())
	st.Contributions = prune(st.Contributions, end.Add(-c.Window), map[string]bool{})
	score := c.score(st)
	point := &demarchev1.ScorePoint{At: st.GetNewestObservedAt(), Score: score, Threshold: threshold, RulesVersion: c.Rules.Version,
		CrisisId: st.GetCrisisId()}
	live := !end.Before(now.Add(-c.Horizon))
	switch {
	case score < threshold:
		st.AboveThreshold, st.CrisisClosed = false, false
		point.CrisisId = ""
	case st.GetAboveThreshold() || !live:
		// Still above (its crisis goes on), or historical: no crossing.
		if !st.GetAboveThreshold() {
			point.CrisisId = ""
		}
	default:
		if st.CrisisClosed {
			st.PreviousCrisisId, st.CrisisId, st.CrisisClosed = st.GetCrisisId(), "", false
		}
		st.AboveThreshold = true
		st.Crossings++
		st.EpisodeBase = score
		point.Crossing = true
		newest := st.Contributions[0]
		for _, x := range st.Contributions[1:] {
			if x.GetObservedAt().AsTime().After(newest.GetObservedAt().AsTime()) {
				newest = x
			}
		}
		sig := &demarchev1.Signal{Source: newest.GetSource(), SourceId: newest.GetSourceId(), ObservedAt: newest.GetObservedAt(),
			CountryCode: st.GetCountryCode(), CrisisType: st.GetCrisisType(), Weight: newest.GetWeight(),
			Summary: fmt.Sprintf("re-scored under rules %s; latest signal: %s", c.Rules.Version, newest.GetSummary())}
		p.crossings = append(p.crossings, crossing{it: &item{sig: sig, result: &demarchev1.IngestResult{}}, point: point,
			event: &demarchev1.WarningRaised{
				CountryCode: st.GetCountryCode(), CrisisType: st.GetCrisisType(),
				Score: score, Threshold: threshold, FirstSignalAt: earliest(st.Contributions),
				Contributions: sortedContributions(st.Contributions), RulesVersion: st.RulesVersion,
			}})
	}
	if h := st.GetHistory(); len(h) == 0 || h[len(h)-1].GetScore() != score || h[len(h)-1].GetThreshold() != threshold || point.Crossing {
		st.History = append(st.History, point)
		if n := len(st.History); n > MaxHistory {
			st.History = st.History[n-MaxHistory:]
		}
	}
	return p
}

// ActiveRules answers the rules in force: the last applied version with how
// it came to be, or (none applied) the service's own file, revision 0.
func (s *Service) ActiveRules(ctx context.Context, _ *demarchev1.ActiveRulesRequest) (*demarchev1.ActiveRules, error) {
	switch e, err := s.rules.Get(ctx, RulesKey); {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		r := s.base.Rules
		return &demarchev1.ActiveRules{Rules: r.Source, Change: &demarchev1.RulesChanged{Version: r.Version, Digest: RulesDigest(r.Source), Name: r.Name}}, nil
	case err != nil:
		return nil, fmt.Errorf("%w: read the rules in force: %v", ErrUnavailable, err)
	default:
		var a demarchev1.ActiveRules
		if err := proto.Unmarshal(e.Value(), &a); err != nil {
			return nil, fmt.Errorf("%w: decode the rules in force: %v", ErrUnavailable, err)
		}
		if a.Change == nil {
			a.Change = &demarchev1.RulesChanged{}
		}
		a.Change.Revision = e.Revision()
		return &a, nil
	}
}
