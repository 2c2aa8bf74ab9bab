package eventbus

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// FuzzDecode: whatever arrives on a crisis subject (any headers, any body),
// Decode either returns an event or an error wrapping one of its sentinels
// (which a consumer dead-letters), and never panics. An event it accepts
// encodes again and decodes to the same event: what a consumer read, a
// republisher can write. The seed corpus is committed under
// testdata/fuzz/FuzzDecode and runs in make test; `make fuzz` explores further.
func FuzzDecode(f *testing.F) {
	at := time.Date(2026, 11, 27, 9, 30, 0, 123000000, time.UTC)
	good := []proto.Message{
		&demarchev1.StageEntered{CrisisId: "GN-20261127-AAAAA", Stage: demarchev1.Stage_STAGE_FACT_FINDING, EnteredAt: timestamppb.New(at)},
		&demarchev1.CrisisClosed{CrisisId: "GN-20261127-AAAAA"},
		&demarchev1.DecisionRecorded{CrisisId: "GN-20261127-AAAAA"},
	}
	for _, m := range good {
		msg, err := Encode("demarche.crisis.africa.GN.GN-20261127-AAAAA.x", Event{ID: "evt-1", Source: "/test", Subject: "GN-20261127-AAAAA", Time: at, Data: m})
		if err != nil {
			continue // a seed the rules refuse is still a seed below, as raw bytes
		}
		h := msg.Header
		f.Add(h.Get(HeaderSpecVersion), h.Get(HeaderID), h.Get(HeaderSource), h.Get(HeaderType), h.Get(HeaderTime), h.Get(HeaderSubject), h.Get(HeaderDataSchema), h.Get(HeaderContentType), msg.Data)
	}
	for _, seed := range []struct{ spec, typ, tm, schema, ct string }{
		{"1.0", "org.demarche.crisis.stage_entered.v1", "2026-11-27T09:30:00Z", "", ""},
		{"0.3", "org.demarche.crisis.stage_entered.v1", "2026-11-27T09:30:00Z", "", ""},
		{"1.0", "org.demarche.crisis.nope.v1", "2026-11-27T09:30:00Z", "", ""},
		{"1.0", "org.demarche.crisis.crisis_opened.v1", "yesterday", "", ""},
		{"1.0", "org.demarche.crisis.crisis_opened.v1", "0000-01-01T00:00:00+01:00", "", ""},
		{"1.0", "org.demarche.crisis.crisis_opened.v1", "2026-11-27T09:30:00Z", "type.googleapis.com/demarche.v1.StageEntered", ""},
		{"1.0", "org.demarche.crisis.crisis_opened.v1", "2026-11-27T09:30:00Z", "", "application/json"},
	} {
		f.Add(seed.spec, "evt-2", "/test", seed.typ, seed.tm, "GN-20261127-AAAAA", seed.schema, seed.ct, []byte("\x0a\x11GN-20261127-AAAAA\xff"))
	}
	sentinels := []error{ErrMissingAttribute, ErrUnsupported, ErrUnknownType, ErrBadData, ErrInvalidData}
	f.Fuzz(func(t *testing.T, spec, id, source, ceType, ceTime, subject, schema, contentType string, data []byte) {
		h := nats.Header{}
		for k, v := range map[string]string{HeaderSpecVersion: spec, HeaderID: id, HeaderSource: source, HeaderType: ceType,
			HeaderTime: ceTime, HeaderSubject: subject, HeaderDataSchema: schema, HeaderContentType: contentType} {
			if v != "" {
				h.Set(k, v)
			}
		}
		ev, err := Decode(h, data)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("Decode error wraps no sentinel, so a consumer cannot classify it: %v", err)
		}
		msg, err := Encode("demarche.crisis.x", ev)
		if err != nil {
			t.Fatalf("a decoded event does not encode again: %v", err)
		}
		again, err := Decode(msg.Header, msg.Data)
		if err != nil {
			t.Fatalf("a decoded event, encoded again, does not decode: %v (ce-time %q)", err, msg.Header.Get(HeaderTime))
		}
		if again.ID != ev.ID || again.Source != ev.Source || again.Type != ev.Type || again.Subject != ev.Subject ||
			!again.Time.Equal(ev.Time) || !proto.Equal(again.Data, ev.Data) {
			t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", again, ev)
		}
	})
}
