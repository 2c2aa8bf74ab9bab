package earlywarning

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// One warning per crossing and a summary per import. A crossing raises its
// own warning at once (WarningRaised and the crisis's opening or signal).
// The live signals an import sends while their situation stays above its
// threshold are not told to the crisis one warning per request (a
// 50,000-row import attached 96 warnings to one crisis): the situation
// counts them (SituationState.pending_import: how many, their deaths, their
// span, the heaviest), and the import's last request (finish_situations)
// attaches one summary warning per crisis it fed. The closure of a crisis is
// still learnt at each request (IsOpen), so a closed crisis takes none of
// them and the next episode opens as it would. An import that stops before
// its end leaves its count pending: the next import that feeds the crisis
// tells it first. Signals from the stream and single reports keep one
// warning per request.
//
// The import's id travels with the context (WithImport), so IngestFunc keeps
// its signature: an IngestFunc builds its request with ImportRequest.

type importKey struct{}

type importValue struct {
	id     string
	finish []string
}

// WithImport marks ctx as carrying the requests of import id (ImportWith does).
func WithImport(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, importKey{}, importValue{id: id})
}

// withFinish marks ctx as carrying an import's last request: the situations
// it sent signals to.
func withFinish(ctx context.Context, id string, situations []string) context.Context {
	return context.WithValue(ctx, importKey{}, importValue{id: id, finish: situations})
}

// ImportID is the import ctx carries the requests of ("" when none).
func ImportID(ctx context.Context) string {
	v, _ := ctx.Value(importKey{}).(importValue)
	return v.id
}

func importFinish(ctx context.Context) []string {
	v, _ := ctx.Value(importKey{}).(importValue)
	return v.finish
}

// ImportRequest is the ingest request an IngestFunc sends for signals: with
// the import id and, for the import's last request (no signals), the
// situations to finish, when ctx carries them.
func ImportRequest(ctx context.Context, signals []*demarchev1.Signal) *demarchev1.IngestRequest {
	v, _ := ctx.Value(importKey{}).(importValue)
	return &demarchev1.IngestRequest{Signals: signals, ImportId: v.id, FinishSituations: v.finish}
}

// deferToImport counts an import's signals accepted above the threshold in
// the situation's pending summary, after making sure the crisis is open (a
// closed one is refused as an attachment is: errAttachClosed). A summary
// pending from another import (or for an earlier crisis) is told first.
func (s *Service) deferToImport(ctx context.Context, situation string, p *plan, ex *demarchev1.Exercise) (*demarchev1.CrisisTouch, error) {
	st := p.state
	id := st.GetCrisisId()
	if len(p.crossings) == 0 { // a crossing of this batch just reached it
		open, err := s.opener.IsOpen(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("%w: is crisis %s open: %v", ErrUnavailable, id, err)
		}
		if !open {
			return nil, errAttachClosed{crisisID: id}
		}
	}
	importID := p.deferred[0].it.importID
	pi := st.GetPendingImport()
	if pi.GetSignals() > 0 && (pi.GetImportId() != importID || pi.GetCrisisId() != id) {
		if err := s.tellImport(ctx, st, pi, ex); err != nil {
			return nil, err
		}
		pi = nil
	}
	next := &demarchev1.PendingImport{ImportId: importID, CrisisId: id}
	if pi != nil && pi.GetImportId() == importID && pi.GetCrisisId() == id {
		next = proto.Clone(pi).(*demarchev1.PendingImport)
	}
	for _, a := range p.deferred {
		sig := a.it.sig
		next.Signals++
		next.Fatalities += sig.GetFatalities()
		at := sig.GetObservedAt()
		if next.FirstObservedAt == nil || at.AsTime().Before(next.FirstObservedAt.AsTime()) {
			next.FirstObservedAt = at
		}
		if next.LastObservedAt == nil || at.AsTime().After(next.LastObservedAt.AsTime()) {
			next.LastObservedAt = at
		}
		if next.GetSourceId() == "" || sig.GetWeight() > next.GetWeight() {
			next.Source, next.SourceId, next.Weight, next.ObservedAt = sig.GetSource(), sig.GetSourceId(), sig.GetWeight(), at
			next.Summary, next.Severity = truncate(sig.GetSummary(), 300), severityOf(sig)
		}
		a.it.result.CrisisId = id
		a.point.CrisisId = id
	}
	st.PendingImport = next
	return &demarchev1.CrisisTouch{CrisisId: id, Situation: situation}, nil
}

// tellImport attaches an import's summary warning to its crisis; a crisis
// closed since takes none (the summary is dropped with it).
func (s *Service) tellImport(ctx context.Context, st *demarchev1.SituationState, pi *demarchev1.PendingImport, ex *demarchev1.Exercise) error {
	score := s.score(st)
	threshold := s.config().Threshold(st.GetCountryCode())
	summary := fmt.Sprintf("Import %s: %d more signal(s) (%d deaths) from %s to %s while above the threshold; score %.1f, %.0f%% of the threshold %.1f. Heaviest: %s",
		pi.GetImportId(), pi.GetSignals(), pi.GetFatalities(), pi.GetFirstObservedAt().AsTime().UTC().Format("2006-01-02"),
		pi.GetLastObservedAt().AsTime().UTC().Format("2006-01-02"), score, 100*score/threshold, threshold, pi.GetSummary())
	w := &demarchev1.Warning{Source: pi.GetSource(), SourceId: pi.GetSourceId(), Severity: max(pi.GetSeverity(), 1),
		ObservedAt: pi.GetLastObservedAt(), Summary: truncate(summary, 4000), RulesVersion: st.GetRulesVersion(),
		ScoreSeverity: crisisSeverity(score, threshold)}
	in := s.crisisInput(pi.GetCrisisId(), st, w.GetScoreSeverity(), earliest(st.GetContributions()), s.config().Now(), ex)
	switch err := s.opener.OpenOrSignal(ctx, in, w); {
	case isClosed(err):
		return nil // a closed crisis takes no signal, not even a summary
	case err != nil:
		return fmt.Errorf("%w: attach import %s's summary to crisis %s: %v", ErrUnavailable, pi.GetImportId(), pi.GetCrisisId(), err)
	}
	return nil
}

// FinishImport attaches the summary warning of import id to the crisis of
// each situation it fed (situations: the keys it sent signals to; one it did
// not feed is left alone) and clears the count.
func (s *Service) FinishImport(ctx context.Context, id string, situations []string) (*demarchev1.IngestResponse, error) {
	if err := (&demarchev1.IngestRequest{ImportId: id, FinishSituations: situations}).Validate(); err != nil {
		return nil, err
	}
	keys := append([]string(nil), situations...)
	sort.Strings(keys)
	resp := &demarchev1.IngestResponse{}
	for i, key := range keys {
		if i > 0 && keys[i-1] == key {
			continue
		}
		told, err := s.finishSituation(ctx, key, id)
		if err != nil {
			return nil, err
		}
		if told != "" {
			resp.Crises = append(resp.Crises, &demarchev1.CrisisTouch{CrisisId: told, Situation: key})
		}
	}
	return resp, nil
}

func (s *Service) finishSituation(ctx context.Context, situation, id string) (string, error) {
	defer s.lock(situation)()
	for attempt := 1; ; attempt++ {
		st, rev, err := s.cachedSituation(ctx, situation, attempt > 1)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		pi := st.GetPendingImport()
		if st == nil || pi.GetImportId() != id || pi.GetSignals() == 0 {
			return "", nil
		}
		next := copyState(st)
		next.PendingImport = nil
		told := ""
		if pi.GetCrisisId() == st.GetCrisisId() && !st.GetCrisisClosed() {
			if err := s.tellImport(ctx, next, pi, nil); err != nil {
				return "", err
			}
			told = pi.GetCrisisId()
		}
		data, err := proto.Marshal(next)
		if err != nil {
			return "", fmt.Errorf("encode situation %s: %w", situation, err)
		}
		s.awaitStored(ctx, situation) // the signal store first (writebehind.go)
		written, err := s.situations.Update(ctx, situation, data, rev)
		s.cache.put(situation, next, written, err)
		if err == nil {
			return told, nil
		}
		if attempt >= maxCASAttempts || !(errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)) {
			return "", fmt.Errorf("%w: write situation %s: %v", ErrUnavailable, situation, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("write situation %s: %w", situation, ctx.Err())
		case <-time.After(time.Duration(attempt) * casBackoff):
		}
	}
}
