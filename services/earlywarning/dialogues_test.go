package earlywarning_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// fakeRegistryAndTrail answers the partner registry's list (ECOWAS and the
// AU as regional organisations, a group of friends) and the audit trail's
// warning-dialogue endpoint, counting the records it was asked for.
type fakeRegistryAndTrail struct {
	mu      sync.Mutex
	records []*demarchev1.WarningDialogue
	fail    error
}

func (f *fakeRegistryAndTrail) start(t *testing.T, url string) {
	t.Helper()
	nc, _ := natstest.Connect(t, url)
	partners, err := natsrpc.Serve(nc, natsrpc.ServiceConfig{Name: "partners", Version: "1.0.0", Group: natsrpc.PartnersGroup, Log: zap.NewNop()},
		natsrpc.Typed("list", "", func() *demarchev1.ListPartnersRequest { return &demarchev1.ListPartnersRequest{} },
			func(context.Context, *demarchev1.ListPartnersRequest) (*demarchev1.ListPartnersResponse, error) {
				return &demarchev1.ListPartnersResponse{Partners: []*demarchev1.PartnerInfo{
					{Name: "ECOWAS", Kind: demarchev1.PartnerKind_PARTNER_KIND_REGIONAL_ORGANISATION},
					{Name: "AU", Kind: demarchev1.PartnerKind_PARTNER_KIND_REGIONAL_ORGANISATION},
					{Name: "FRIENDS-GN", Kind: demarchev1.PartnerKind_PARTNER_KIND_GROUP_OF_FRIENDS},
				}}, nil
			}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(partners.Stop)
	trail, err := natsrpc.Serve(nc, natsrpc.ServiceConfig{Name: "audit", Version: "1.0.0", Group: natsrpc.AuditGroup, Log: zap.NewNop()},
		natsrpc.Typed("warning-dialogue", "", func() *demarchev1.WarningDialogue { return &demarchev1.WarningDialogue{} },
			func(_ context.Context, d *demarchev1.WarningDialogue) (*demarchev1.AuditOperationResponse, error) {
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.fail != nil {
					return nil, f.fail
				}
				f.records = append(f.records, d)
				return &demarchev1.AuditOperationResponse{Record: &demarchev1.AuditRecord{EventId: "warning-dialogue-" + d.GetId(), Principal: d.GetRecordedBy()}}, nil
			}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(trail.Stop)
}

func (f *fakeRegistryAndTrail) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.records)
}

// TestDialoguesRecordedPerSituation: early-warning dialogues with regional
// organisations (¶66 "early warning dialogues") are recorded per situation,
// any number, oldest first, each sent to the audit trail with who recorded
// it; the score lists them; the same dialogue again records nothing new but
// its audit record is sent again; bad input is refused naming the field and
// changes nothing.
func TestDialoguesRecordedPerSituation(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	fake := &fakeRegistryAndTrail{}
	fake.start(t, srv.URL())
	svc := startService(t, srv.URL(), earlywarning.Config{}, newFakeOpener())
	ctx := context.Background()
	coup := demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE
	if _, err := svc.Ingest(ctx, []*demarchev1.Signal{signal("acled", "d1", "GN", coup, 2, testNow.Add(-time.Hour))}); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC()
	dialogue := func(org string, day time.Time, summary string) *demarchev1.RecordDialogueRequest {
		return &demarchev1.RecordDialogueRequest{Dialogue: &demarchev1.WarningDialogue{CountryCode: "GN", CrisisType: coup, Organisation: org,
			Date: timestamppb.New(day), Summary: summary, Outcome: "shared assessment: risk of a coup", RecordedBy: "amina"}}
	}
	first, err := svc.RecordDialogue(ctx, dialogue("ecowas", today, "troop movements around Conakry"))
	if err != nil {
		t.Fatal(err)
	}
	if d := first.GetDialogue(); d.GetOrganisation() != "ECOWAS" || d.GetId() == "" || d.GetRecordedBy() != "amina" || first.GetReplayed() ||
		first.GetRecord().GetPrincipal() != "amina" {
		t.Fatalf("first dialogue: %v", first)
	}
	// An earlier one with the AU, recorded second, is listed first.
	if _, err := svc.RecordDialogue(ctx, dialogue("AU", today.Add(-48*time.Hour), "the AU's continental early warning system")); err != nil {
		t.Fatal(err)
	}
	again, err := svc.RecordDialogue(ctx, dialogue("ECOWAS", today, "troop movements around Conakry"))
	if err != nil || !again.GetReplayed() || again.GetDialogue().GetId() != first.GetDialogue().GetId() {
		t.Fatalf("the same dialogue again: %v %v", again, err)
	}
	if n := fake.count(); n != 3 {
		t.Fatalf("the trail was asked for %d records, want 3 (two dialogues, one sent again)", n)
	}

	for _, tc := range []struct {
		name string
		req  *demarchev1.RecordDialogueRequest
		is   error
		says string
	}{
		{"an unknown organisation", dialogue("NATO", today, "x"), earlywarning.ErrUnknownOrganisation, `"NATO" (allowed: AU, ECOWAS)`},
		{"a group of friends is no regional organisation", dialogue("FRIENDS-GN", today, "x"), earlywarning.ErrUnknownOrganisation, "dialogue.organisation"},
		{"no organisation", dialogue("", today, "x"), errs.ErrInvalid, "dialogue.organisation: is required"},
		{"no summary", dialogue("ECOWAS", today, ""), errs.ErrInvalid, "dialogue.summary: is required"},
		{"a day ahead", dialogue("ECOWAS", today.Add(72*time.Hour), "x"), errs.ErrInvalid, "dialogue.date"},
		{"a situation without signals", &demarchev1.RecordDialogueRequest{Dialogue: &demarchev1.WarningDialogue{CountryCode: "ML", CrisisType: coup,
			Organisation: "ECOWAS", Date: timestamppb.New(today), Summary: "x", Outcome: "y", RecordedBy: "amina"}}, earlywarning.ErrUnknownSituation, "ML-unconstitutional-change"},
		{"nobody recorded it", &demarchev1.RecordDialogueRequest{Dialogue: &demarchev1.WarningDialogue{CountryCode: "GN", CrisisType: coup,
			Organisation: "ECOWAS", Date: timestamppb.New(today), Summary: "x", Outcome: "y"}}, errs.ErrInvalid, "dialogue.recorded_by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.RecordDialogue(ctx, tc.req)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %v saying %q", err, tc.is, tc.says)
			}
		})
	}

	// The audit trail down: the dialogue is kept, the caller told to send it again.
	fake.mu.Lock()
	fake.fail = errors.New("trail down")
	fake.mu.Unlock()
	if _, err := svc.RecordDialogue(ctx, dialogue("ECOWAS", today, "a third meeting")); !errors.Is(err, earlywarning.ErrUnavailable) || !strings.Contains(err.Error(), "send it again") {
		t.Fatalf("with the trail down: %v", err)
	}
	fake.mu.Lock()
	fake.fail = nil
	fake.mu.Unlock()
	if r, err := svc.RecordDialogue(ctx, dialogue("ECOWAS", today, "a third meeting")); err != nil || !r.GetReplayed() {
		t.Fatalf("sent again once the trail is back: %v %v", r, err)
	}

	// The score lists the three, oldest first (through the endpoint, as the gateway asks).
	nc, _ := natstest.Connect(t, srv.URL())
	var sc demarchev1.ScoreResponse
	if err := natsrpc.Call(ctx, nc, natsrpc.EarlyWarningScore, &demarchev1.ScoreRequest{CountryCode: "GN", CrisisType: coup}, &sc); err != nil {
		t.Fatal(err)
	}
	var orgs []string
	for _, d := range sc.GetDialogues() {
		orgs = append(orgs, d.GetOrganisation())
	}
	if strings.Join(orgs, ",") != "AU,ECOWAS,ECOWAS" {
		t.Fatalf("the score's dialogues: %v, want AU then ECOWAS twice", orgs)
	}
}
