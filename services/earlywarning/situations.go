package earlywarning

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// DefaultSituations is how many situations Situations lists when the
// request gives no limit.
const DefaultSituations = 50

// Situations lists the live situations with signals in their window, at a
// glance and naming no crisis, the most pressing first: above the threshold,
// then by the newest signal. The console's inbox shows them to every reader
// of scores, each with the crises the reader is cleared for (an analyst
// cleared public sees the scores, not the restricted crises they opened).
// It reads every situation of the bucket (one key per country and crisis
// type, a few thousand at most; exercises' and episode reservations are
// skipped).
func (s *Service) Situations(ctx context.Context, limit int32) (*demarchev1.SituationsResponse, error) {
	if err := (&demarchev1.SituationsRequest{Limit: limit}).Validate(); err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = DefaultSituations
	}
	lister, err := s.situations.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return &demarchev1.SituationsResponse{}, nil
		}
		return nil, fmt.Errorf("%w: list situations: %v", ErrUnavailable, err)
	}
	defer func() { _ = lister.Stop() }() // a key lister: stopping it loses nothing
	var out []*demarchev1.SituationSummary
	for key := range lister.Keys() {
		if strings.HasPrefix(key, "x-") || strings.Contains(key, ".") { // an exercise's, or an episode reservation
			continue
		}
		st, err := s.readSituation(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if st == nil || len(st.GetContributions()) == 0 {
			continue
		}
		out = append(out, &demarchev1.SituationSummary{
			CountryCode: st.GetCountryCode(), CrisisType: st.GetCrisisType(), Score: s.score(st),
			Threshold: s.config().Threshold(st.GetCountryCode()), AboveThreshold: st.GetAboveThreshold(),
			WindowEnd: st.GetNewestObservedAt(), Signals: int32(len(st.GetContributions())),
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.GetAboveThreshold() != b.GetAboveThreshold() {
			return a.GetAboveThreshold()
		}
		if !a.GetWindowEnd().AsTime().Equal(b.GetWindowEnd().AsTime()) {
			return a.GetWindowEnd().AsTime().After(b.GetWindowEnd().AsTime())
		}
		return demarchev1.SituationKey(a.GetCountryCode(), a.GetCrisisType()) < demarchev1.SituationKey(b.GetCountryCode(), b.GetCrisisType())
	})
	resp := &demarchev1.SituationsResponse{Total: int32(len(out))}
	resp.Situations = out[:min(len(out), int(limit))]
	return resp, nil
}

func (s *Service) serveSituations(ctx context.Context, req *demarchev1.SituationsRequest) (*demarchev1.SituationsResponse, error) {
	return s.Situations(ctx, req.GetLimit())
}
