package earlywarning_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// TestSignalSourceIsTheSender: a stream signal's source is the subject's
// (the only one its credential may publish on). One published on
// demarche.signals.acled claiming ucdp is dead-lettered naming the rule,
// counts nowhere, and the genuine ucdp signal with the same id, sent after
// it (with the same event id, as a forger would copy it), counts. By
// request, a live signal that is not a person's is rejected with the rule.
func TestSignalSourceIsTheSender(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	svc := startService(t, srv.URL(), earlywarning.Config{}, newFakeOpener())
	nc, js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	dlq, err := nc.SubscribeSync(eventbus.DeadLetterSubject(earlywarning.SignalsDurable))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	forged := signal("ucdp", "U-1", "GN", coup, 100, t0)
	msg, err := eventbus.Encode(earlywarning.SignalSubject("acled"), eventbus.Event{ID: "ucdp.id.U-1", Source: "/acled", Subject: "GN", Time: time.Now(), Data: forged})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil { // Nats-Msg-Id ucdp.id.U-1, as a forger would set it
		t.Fatal(err)
	}
	dl, err := dlq.NextMsg(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := dl.Header.Get(eventbus.HeaderDeadLetterReason); !strings.Contains(r, `claims source "ucdp"`) || !strings.Contains(r, "never its body") {
		t.Errorf("dead-letter reason %q", r)
	}
	if _, err := svc.Score(ctx, "GN", coup); err == nil {
		t.Fatal("the forged signal was scored")
	}
	genuine := signal("", "U-1", "GN", coup, 2, t0) // a source may leave its name out: the subject says it
	genuine.Source = "ucdp"
	if err := earlywarning.PublishSignal(ctx, js, "/ucdp", genuine); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the genuine ucdp signal scored", func() bool {
		sc, err := svc.Score(ctx, "GN", coup)
		return err == nil && len(sc.GetContributions()) == 1 && sc.GetContributions()[0].GetSource() == "ucdp" && sc.GetContributions()[0].GetWeight() == 2
	})

	// By request (the gateway's path): a person's signal counts, a source's is refused.
	var resp demarchev1.IngestResponse
	req := &demarchev1.IngestRequest{Signals: []*demarchev1.Signal{
		signal("ucdp", "U-2", "GN", coup, 100, t0), signal(demarchev1.PersonSource("analyst"), "A-1", "GN", coup, 1, t0)}}
	if err := natsrpc.Call(ctx, nc, natsrpc.EarlyWarningIngest, req, &resp); err != nil {
		t.Fatal(err)
	}
	r := resp.GetResults()
	if resp.GetAccepted() != 1 || resp.GetRejected() != 1 || r[0].GetStatus() != demarchev1.IngestStatus_INGEST_STATUS_REJECTED ||
		!strings.Contains(r[0].GetReason(), "a person's") || r[1].GetStatus() != demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED || r[1].GetIndex() != 1 {
		t.Fatalf("request with a source's signal: %v", r)
	}
}

func TestPersonSources(t *testing.T) {
	for subject, want := range map[string]string{
		"analyst": "person_analyst", "Analyst": "person_h_", "auth0|1234": "person_h_", strings.Repeat("a", 30): "person_h_",
	} {
		got := demarchev1.PersonSource(subject)
		if !strings.HasPrefix(got, want) || !demarchev1.IsPersonSource(got) || demarchev1.IsStreamSource(got) ||
			signal(got, "x", "GN", coup, 1, t0).Validate() != nil {
			t.Errorf("PersonSource(%q) = %q", subject, got)
		}
	}
	if demarchev1.PersonSource("Analyst") == demarchev1.PersonSource("analyst") {
		t.Error("subjects differing in case share a source")
	}
	for _, s := range []string{"acled", "ucdp", "un-human-rights", "operator"} {
		if !demarchev1.IsStreamSource(s) || demarchev1.IsPersonSource(s) {
			t.Errorf("%q", s)
		}
	}
}
