package earlywarning_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// TestSituationsListsScoresAtAGlance: the situations with signals, above
// the threshold first, then the newest; no crisis named; the episode
// reservation a crossing writes is not a situation; the limit keeps the
// total; the endpoint answers over NATS and refuses a bad limit.
func TestSituationsListsScoresAtAGlance(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 10}, newFakeOpener())
	ctx := context.Background()
	sigs := []*demarchev1.Signal{
		signal("acled", "ml-1", "ML", demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE, 3, t0.Add(48*time.Hour)),
		signal("acled", "ke-1", "KE", demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE, 2, t0.Add(72*time.Hour)),
		signal("acled", "gn-1", "GN", coup, 6, t0),
		signal("acled", "gn-2", "GN", coup, 6, t0.Add(24*time.Hour)), // crosses 10: GN opens a crisis
	}
	if resp, err := svc.Ingest(ctx, sigs); err != nil || resp.GetAccepted() != 4 || len(resp.GetCrises()) != 1 {
		t.Fatalf("ingest: %v %v", resp, err)
	}
	list, err := svc.Situations(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range list.GetSituations() {
		got = append(got, fmt.Sprintf("%s %.0f/%.0f %v %d", demarchev1.SituationKey(s.GetCountryCode(), s.GetCrisisType()), s.GetScore(), s.GetThreshold(), s.GetAboveThreshold(), s.GetSignals()))
	}
	want := "[GN-unconstitutional-change 12/10 true 2 KE-election-violence 2/10 false 1 ML-intercommunal-violence 3/10 false 1]"
	if fmt.Sprint(got) != want || list.GetTotal() != 3 {
		t.Fatalf("situations %v (total %d), want %s", got, list.GetTotal(), want)
	}
	var one demarchev1.SituationsResponse
	nc, _ := natstest.Connect(t, srv.URL())
	if err := natsrpc.Call(ctx, nc, natsrpc.EarlyWarningSituations, &demarchev1.SituationsRequest{Limit: 1}, &one); err != nil {
		t.Fatal(err)
	}
	if len(one.GetSituations()) != 1 || one.GetTotal() != 3 || one.GetSituations()[0].GetCountryCode() != "GN" {
		t.Fatalf("limit 1: %v", &one)
	}
	if _, err := svc.Situations(ctx, demarchev1.MaxSituations+1); err == nil {
		t.Fatal("a limit above the maximum was accepted")
	}
}
