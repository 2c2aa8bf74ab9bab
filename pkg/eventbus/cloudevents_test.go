package eventbus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

var testRoute = Route{Region: demarchev1.Region_REGION_AFRICA, Country: "GN", CrisisID: "GN-20261127-AAAAA"}

func stageEvent(id string) Event {
	at := time.Date(2026, 11, 27, 9, 30, 0, 123000000, time.UTC)
	return Event{
		ID: id, Source: "/test", Subject: testRoute.CrisisID, Time: at,
		Data: &demarchev1.StageEntered{CrisisId: testRoute.CrisisID, Stage: demarchev1.Stage_STAGE_FACT_FINDING, EnteredAt: timestamppb.New(at)},
	}
}

func TestEncodeMapsAttributesToCEHeaders(t *testing.T) {
	ev := stageEvent("evt-1")
	msg, err := Encode(testRoute.Subject("stage_entered"), ev)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ce-specversion": "1.0",
		"ce-id":          "evt-1",
		"ce-source":      "/test",
		"ce-type":        "org.demarche.crisis.stage_entered.v1",
		"ce-time":        "2026-11-27T09:30:00.123Z",
		"ce-subject":     "GN-20261127-AAAAA",
		"ce-dataschema":  "type.googleapis.com/demarche.v1.StageEntered",
		"content-type":   "application/protobuf",
		"Nats-Msg-Id":    "evt-1",
	}
	for k, v := range want {
		if got := msg.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if msg.Subject != "demarche.crisis.africa.GN.GN-20261127-AAAAA.stage_entered" {
		t.Errorf("subject %q", msg.Subject)
	}
	var data demarchev1.StageEntered
	if err := proto.Unmarshal(msg.Data, &data); err != nil || !proto.Equal(&data, ev.Data) {
		t.Errorf("body is not the protobuf data: %v", err)
	}
}

func TestDecodeMapsCEHeadersToAttributes(t *testing.T) {
	ev := stageEvent("evt-2")
	msg, err := Encode("x", ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(msg.Header, msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ev.ID || got.Source != ev.Source || got.Subject != ev.Subject || !got.Time.Equal(ev.Time) ||
		got.Type != "org.demarche.crisis.stage_entered.v1" || !proto.Equal(got.Data, ev.Data) {
		t.Fatalf("round trip changed the event: %+v", got)
	}
}

func TestDecodeRejectsWithReason(t *testing.T) {
	good, err := Encode("x", stageEvent("evt-3"))
	if err != nil {
		t.Fatal(err)
	}
	invalid := stageEvent("evt-4")
	invalid.Data.(*demarchev1.StageEntered).Stage = demarchev1.Stage_STAGE_UNSPECIFIED
	invalidData, _ := proto.Marshal(invalid.Data)

	cases := []struct {
		name   string
		mutate func(h nats.Header) []byte
		want   error
		says   string
	}{
		{"missing ce-type", func(h nats.Header) []byte { h.Del(HeaderType); return good.Data }, ErrMissingAttribute, "ce-type"},
		{"missing ce-id", func(h nats.Header) []byte { h.Del(HeaderID); return good.Data }, ErrMissingAttribute, "ce-id"},
		{"wrong spec version", func(h nats.Header) []byte { h.Set(HeaderSpecVersion, "0.3"); return good.Data }, ErrUnsupported, "0.3"},
		{"unknown type", func(h nats.Header) []byte { h.Set(HeaderType, "com.example.other"); return good.Data }, ErrUnknownType, "com.example.other"},
		{"schema mismatch", func(h nats.Header) []byte {
			h.Set(HeaderDataSchema, DataSchemaPrefix+"demarche.v1.CrisisClosed")
			return good.Data
		}, ErrUnsupported, "does not match"},
		{"bad time", func(h nats.Header) []byte { h.Set(HeaderTime, "yesterday"); return good.Data }, ErrUnsupported, "RFC 3339"},
		{"bad proto", func(nats.Header) []byte { return []byte{0xff, 0xff, 0xff} }, ErrBadData, "StageEntered"},
		{"failed validation", func(nats.Header) []byte { return invalidData }, ErrInvalidData, "stage"},
		{"json body", func(h nats.Header) []byte { h.Set(HeaderContentType, "application/json"); return good.Data }, ErrUnsupported, "application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := nats.Header{}
			for k, v := range good.Header {
				h[k] = append([]string(nil), v...)
			}
			data := tc.mutate(h)
			_, err := Decode(h, data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("reason %q does not mention %q", err, tc.says)
			}
		})
	}
}

func TestEncodeRefusesIncompleteOrInvalidEvents(t *testing.T) {
	for name, mutate := range map[string]func(*Event){
		"no id":      func(e *Event) { e.ID = "" },
		"no source":  func(e *Event) { e.Source = "" },
		"no time":    func(e *Event) { e.Time = time.Time{} },
		"wrong type": func(e *Event) { e.Type = "org.demarche.crisis.crisis_closed.v1" },
		"invalid":    func(e *Event) { e.Data.(*demarchev1.StageEntered).EnteredAt = nil },
		"unregistered": func(e *Event) {
			e.Data = &demarchev1.Crisis{}
		},
	} {
		t.Run(name, func(t *testing.T) {
			ev := stageEvent("evt-5")
			mutate(&ev)
			if _, err := Encode("x", ev); err == nil {
				t.Fatal("encoded an event that breaks the rules")
			}
		})
	}
}

func TestRegisteredNames(t *testing.T) {
	et, err := TypeOf(&demarchev1.CrisisClosed{})
	if err != nil {
		t.Fatal(err)
	}
	if et.Token != "crisis_closed" || et.CEType != "org.demarche.crisis.crisis_closed.v1" {
		t.Fatalf("derived names: %+v", et)
	}
	if got := CrisisEvents("ML-1"); got != "demarche.crisis.*.*.ML-1.>" {
		t.Fatalf("crisis filter %q", got)
	}
	if got := RegionEvents(demarchev1.Region_REGION_MIDDLE_EAST); got != "demarche.crisis.middle-east.>" {
		t.Fatalf("region filter %q", got)
	}
}

// A ce-time inside RFC 3339 as written but outside it in UTC is refused on
// both sides: an event decoded from it could never be decoded again.
func TestTimeOutsideRFC3339InUTCIsRefused(t *testing.T) {
	msg, err := Encode("x", stageEvent("evt-y"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range []string{"0000-01-01T00:00:00+01:00", "9999-12-31T23:00:00-02:00"} {
		msg.Header.Set(HeaderTime, tm)
		if _, err := Decode(msg.Header, msg.Data); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "outside RFC 3339") {
			t.Errorf("Decode with ce-time %s: %v", tm, err)
		}
	}
	ev := stageEvent("evt-z")
	ev.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := Encode("x", ev); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Encode of year 10000: %v", err)
	}
}

// TestOriginExtensions: where in Temporal an event comes from travels as the
// ce-workflowid, ce-workflowrun and ce-historyevent extensions; an event
// without them decodes with no origin, one with a bad history event is refused.
func TestOriginExtensions(t *testing.T) {
	ev := stageEvent("evt-origin")
	ev.Origin = Origin{WorkflowID: "crisis-" + testRoute.CrisisID, RunID: "run-1", HistoryEventID: 57}
	msg, err := Encode(testRoute.Subject("stage_entered"), ev)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(HeaderHistoryEvent) != "57" || msg.Header.Get(HeaderWorkflowRun) != "run-1" {
		t.Fatalf("headers %v", msg.Header)
	}
	got, err := Decode(msg.Header, msg.Data)
	if err != nil || got.Origin != ev.Origin {
		t.Fatalf("decoded origin %+v, %v", got.Origin, err)
	}
	plain, _ := Encode(testRoute.Subject("stage_entered"), stageEvent("evt-plain"))
	if got, err := Decode(plain.Header, plain.Data); err != nil || got.Origin != (Origin{}) || plain.Header.Get(HeaderWorkflowID) != "" {
		t.Fatalf("event without origin: %+v %v", got.Origin, err)
	}
	msg.Header.Set(HeaderHistoryEvent, "fifty-seven")
	if _, err := Decode(msg.Header, msg.Data); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), HeaderHistoryEvent) {
		t.Fatalf("bad history event: %v", err)
	}
}
