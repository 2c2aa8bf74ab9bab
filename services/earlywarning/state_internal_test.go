package earlywarning

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestCopyStateCopiesEveryField: copyState lists SituationState's fields by
// hand; a field added to the schema and forgotten there would be lost on the
// next write.
func TestCopyStateCopiesEveryField(t *testing.T) {
	st := &demarchev1.SituationState{
		CountryCode: "GN", CrisisType: demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE,
		Contributions:    []*demarchev1.SignalContribution{{Source: "acled", SourceId: "1", Weight: 2}},
		NewestObservedAt: timestamppb.Now(), AboveThreshold: true, Crossings: 2, CrisisId: "GN-20261129-AAAAA",
		PreviousCrisisId: "GN-20261101-BBBBB", Episodes: 2, RulesVersion: "v1",
		History:      []*demarchev1.ScorePoint{{Score: 3, Threshold: 10}},
		CrisisClosed: true, EpisodeBase: 27,
		PendingImport: &demarchev1.PendingImport{ImportId: "i", CrisisId: "GN-20261129-AAAAA", Signals: 3},
	}
	fields := st.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if !st.ProtoReflect().Has(fields.Get(i)) {
			t.Fatalf("the test state leaves %s unset: set it here and copy it in copyState", fields.Get(i).Name())
		}
	}
	c := copyState(st)
	if !proto.Equal(c, st) {
		t.Fatalf("copy %v differs from %v", c, st)
	}
	c.Contributions = prune(c.Contributions, timestamppb.Now().AsTime(), map[string]bool{})
	c.History = append(c.History[:0], &demarchev1.ScorePoint{Score: 9})
	if len(st.GetContributions()) != 1 || st.GetHistory()[0].GetScore() != 3 {
		t.Fatal("changing the copy's lists changed the original")
	}
}
