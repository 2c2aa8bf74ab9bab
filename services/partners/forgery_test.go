package partners_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/origin"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/partners"
)

// TestForgedEventsDecideNoRecipients: whoever may publish crisis events
// (the worker's credential) cannot declassify a crisis through the partners
// service. A CrisisOpened or SharingChanged without the crisis workflow's
// origin, from a stage's child, or a second opening that differs from the
// first, is dead-lettered with its reason and forwarded to no one; the
// genuine events after them flow on.
func TestForgedEventsDecideNoRecipients(t *testing.T) {
	b := startNATS(t)
	reg := registry(t, `{"partners": [{"name": "AU", "title": "African Union"}, {"name": "ECOWAS", "title": "ECOWAS"}, {"name": "EU", "title": "European Union"}]}`, nil)
	startService(t, fastConfig(b.url, reg), nil)
	dead := make(chan *nats.Msg, 16)
	sub, err := b.nc.ChanSubscribe(eventbus.DeadLetterSubject("partners"), dead)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	c := newCrisis("GN-20261127-SECRT", "GN", coup, confidential, "AU")
	c.Title = "confidential rationale"
	publishCrisis(t, b, c)
	eventually(t, "AU receives the confidential crisis", hasSubject(t, b, "AU", c, "crisis_opened"))

	ctx := context.Background()
	route := eventbus.RouteOf(c)
	declassified := proto.Clone(c).(*demarchev1.Crisis)
	declassified.Confidentiality, declassified.SharedWith = public, nil
	genuine := eventbus.Origin{WorkflowID: origin.WorkflowIDPrefix + c.GetId(), RunID: "run-1", HistoryEventID: 5}
	forgeries := []struct {
		name, reason string
		ev           eventbus.Event
	}{
		{"opening without origin", "does not say which workflow run",
			eventbus.Event{ID: "forged-1", Source: origin.WorkflowSource, Origin: eventbus.Origin{}, Data: &demarchev1.CrisisOpened{Crisis: declassified}}},
		{"opening as early warning", "early warning publishes WarningRaised only",
			eventbus.Event{ID: "forged-2", Source: origin.EarlyWarningSource, Data: &demarchev1.CrisisOpened{Crisis: declassified}}},
		{"opening with the genuine origin copied", "opens once",
			eventbus.Event{ID: "forged-3", Origin: genuine, Data: &demarchev1.CrisisOpened{Crisis: declassified}}},
		{"sharing from a stage's child", "crisis's own workflow",
			eventbus.Event{ID: "forged-4", Origin: eventbus.Origin{WorkflowID: genuine.WorkflowID + "-envoy-1", RunID: "r", HistoryEventID: 7},
				Data: &demarchev1.SharingChanged{CrisisId: c.GetId(), SharedWith: []string{"AU", "ECOWAS", "EU"}, Added: []string{"ECOWAS", "EU"}}}},
		{"sharing from another crisis's workflow", "not from crisis",
			eventbus.Event{ID: "forged-5", Origin: eventbus.Origin{WorkflowID: origin.WorkflowIDPrefix + "GN-20261127-OTHER", RunID: "r", HistoryEventID: 7},
				Data: &demarchev1.SharingChanged{CrisisId: c.GetId(), SharedWith: []string{"AU", "ECOWAS", "EU"}, Added: []string{"ECOWAS", "EU"}}}},
	}
	for _, f := range forgeries {
		f.ev.Time = time.Now()
		if f.ev.Source == "" {
			f.ev.Source = origin.WorkflowSource
		}
		if f.ev.Source == origin.WorkflowSource && f.ev.Origin == (eventbus.Origin{}) {
			// Publish through the bare publisher: the test's own would add an origin.
			if _, err := b.pub.Publisher.Publish(ctx, route, f.ev); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := b.pub.Publish(ctx, route, f.ev); err != nil {
			t.Fatal(err)
		}
	}
	for range forgeries {
		select {
		case m := <-dead:
			id, reason := m.Header.Get(eventbus.HeaderID), m.Header.Get(eventbus.HeaderDeadLetterReason)
			found := false
			for _, f := range forgeries {
				if f.ev.ID == id {
					found = true
					if !strings.Contains(reason, origin.ErrForged.Error()) || !strings.Contains(reason, f.reason) {
						t.Errorf("%s dead-lettered with %q, want the rule %q", f.name, reason, f.reason)
					}
				}
			}
			if !found {
				t.Errorf("dead letter of %q (%s), not a forgery", id, reason)
			}
		case <-time.After(waitTimeout):
			t.Fatal("a forgery was not dead-lettered")
		}
	}
	// A genuine event after the forgeries (each crisis's events in order):
	// once AU has it, the forgeries were handled, and no one else got anything.
	if _, err := b.pub.Publish(ctx, route, eventbus.Event{ID: "sentinel", Time: time.Now(),
		Data: &demarchev1.StageEntered{CrisisId: c.GetId(), Stage: demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT, EnteredAt: timestamppb.Now()}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "AU receives the genuine event after the forgeries", func() bool {
		return partnerSubjects(t, b, "AU")[partners.PartnerSubject("AU", route, "stage_entered")] >= 2
	})
	for _, p := range []string{"ECOWAS", "EU"} {
		if got := partnerSubjects(t, b, p); len(got) != 0 {
			t.Errorf("%s received %s of a crisis shared with AU only", p, fmtSubjects(got))
		}
	}
	if n := partnerSubjects(t, b, "AU")[partners.PartnerSubject("AU", route, "crisis_opened")]; n != 1 {
		t.Errorf("AU holds %d openings, want the genuine one alone", n)
	}
}
