package eventbus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// CloudEvents attribute headers (NATS protocol binding, binary content mode).
const (
	HeaderSpecVersion = "ce-specversion"
	HeaderID          = "ce-id"
	HeaderSource      = "ce-source"
	HeaderType        = "ce-type"
	HeaderTime        = "ce-time"
	HeaderSubject     = "ce-subject"
	HeaderDataSchema  = "ce-dataschema"
	HeaderContentType = "content-type"
	// CloudEvents extension attributes saying where in Temporal an event
	// comes from (set by the worker's publishing activities; the audit
	// trail records them, and `audit reconcile` matches them with histories).
	HeaderWorkflowID   = "ce-workflowid"
	HeaderWorkflowRun  = "ce-workflowrun"
	HeaderHistoryEvent = "ce-historyevent"

	SpecVersion     = "1.0"
	ContentTypeData = "application/protobuf"
	// DataSchemaPrefix turns a message's full name into its ce-dataschema URI,
	// the same form as a google.protobuf.Any type URL.
	DataSchemaPrefix = "type.googleapis.com/"
	typePrefix       = "org.demarche.crisis."
)

// Sentinel errors returned (wrapped) by Decode; a consumer dead-letters them all.
var (
	ErrMissingAttribute = errors.New("missing CloudEvents attribute")
	ErrUnsupported      = errors.New("unsupported CloudEvent")
	ErrUnknownType      = errors.New("unknown event type")
	ErrBadData          = errors.New("undecodable event data")
	ErrInvalidData      = errors.New("event data failed validation")
)

// Event is one CloudEvent with protobuf data.
type Event struct {
	ID      string
	Source  string
	Type    string // ce-type; derived from Data when empty
	Subject string // the crisis id
	Time    time.Time
	Data    proto.Message
	// Origin is where in Temporal the event comes from (zero when not
	// published by a workflow's activity).
	Origin Origin
}

// Origin is the workflow run and history event (the ActivityTaskScheduled
// event of the publishing activity) an event comes from.
type Origin struct {
	WorkflowID     string
	RunID          string
	HistoryEventID int64
}

// EventType describes one registered event message.
type EventType struct {
	CEType     string                // e.g. org.demarche.crisis.stage_entered.v1
	Token      string                // subject token, e.g. stage_entered
	DataSchema string                // e.g. type.googleapis.com/demarche.v1.StageEntered
	Message    protoreflect.FullName // e.g. demarche.v1.StageEntered
	new        func() proto.Message
}

var (
	registryMu sync.RWMutex
	byCEType   = map[string]EventType{}
	byMessage  = map[protoreflect.FullName]EventType{}
	registered []string // ce-types in registration order (see Types)
)

// Register makes a message type publishable and consumable as an event. Its
// ce-type and subject token derive from its name: demarche.v1.StageEntered
// becomes org.demarche.crisis.stage_entered.v1 on subject token stage_entered.
func Register(m proto.Message) EventType {
	d := m.ProtoReflect().Descriptor()
	token := snake(string(d.Name()))
	version := d.ParentFile().Package().Name() // e.g. v1
	et := EventType{
		CEType:     typePrefix + token + "." + string(version),
		Token:      token,
		DataSchema: DataSchemaPrefix + string(d.FullName()),
		Message:    d.FullName(),
		new:        func() proto.Message { return m.ProtoReflect().New().Interface() },
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, ok := byCEType[et.CEType]; !ok {
		registered = append(registered, et.CEType)
	}
	byCEType[et.CEType] = et
	byMessage[et.Message] = et
	return et
}

func init() {
	Register(&demarchev1.CrisisOpened{})
	Register(&demarchev1.StageEntered{})
	Register(&demarchev1.StageCompleted{})
	Register(&demarchev1.CrisisClosed{})
	Register(&demarchev1.DecisionRecorded{})
	Register(&demarchev1.DeadlineAtRisk{})
	Register(&demarchev1.DeadlineBreached{})
	Register(&demarchev1.PartnerRoleAcknowledged{})
	Register(&demarchev1.SeverityChanged{})
	Register(&demarchev1.WarningAttached{})
	Register(&demarchev1.StageSkipped{})
	Register(&demarchev1.StageReopened{})
	Register(&demarchev1.FollowUpCheckInDue{})
	Register(&demarchev1.FollowUpCheckInRecorded{})
	Register(&demarchev1.CrisisRelapsed{})
	Register(&demarchev1.FundsDisbursed{})
	Register(&demarchev1.WarningRaised{})
	Register(&demarchev1.SharingChanged{})
	Register(&demarchev1.CrisisAlteredOutside{})
	Register(&demarchev1.CommentAdded{})
}

// TypeOf returns the registration of a message, or ErrUnknownType.
func TypeOf(m proto.Message) (EventType, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	et, ok := byMessage[m.ProtoReflect().Descriptor().FullName()]
	if !ok {
		return EventType{}, fmt.Errorf("%w: message %s is not registered", ErrUnknownType, m.ProtoReflect().Descriptor().FullName())
	}
	return et, nil
}

// LookupType returns the registration of a ce-type.
func LookupType(ceType string) (EventType, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	et, ok := byCEType[ceType]
	return et, ok
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// validate runs the message's input rules, when it has any.
func validate(m proto.Message) error {
	if v, ok := m.(demarchev1.Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidData, err)
		}
	}
	return nil
}

// Encode builds the NATS message of an event: CloudEvents attributes as ce-
// headers, protobuf data as the body, Nats-Msg-Id set to the event id. It refuses
// an event whose attributes are missing or whose data breaks its rules.
func Encode(natsSubject string, ev Event) (*nats.Msg, error) {
	if ev.Data == nil {
		return nil, fmt.Errorf("encode event %q: %w: data", ev.ID, ErrMissingAttribute)
	}
	et, err := TypeOf(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("encode event %q: %w", ev.ID, err)
	}
	if ev.Type == "" {
		ev.Type = et.CEType
	}
	if ev.Type != et.CEType {
		return nil, fmt.Errorf("encode event %q: %w: ce-type %q does not match data %s (want %q)", ev.ID, ErrUnsupported, ev.Type, et.Message, et.CEType)
	}
	for name, v := range map[string]string{HeaderID: ev.ID, HeaderSource: ev.Source, HeaderSubject: ev.Subject} {
		if v == "" {
			return nil, fmt.Errorf("encode event %q: %w: %s", ev.ID, ErrMissingAttribute, name)
		}
	}
	if ev.Time.IsZero() {
		return nil, fmt.Errorf("encode event %q: %w: %s", ev.ID, ErrMissingAttribute, HeaderTime)
	}
	if err := checkTimeRange(ev.Time); err != nil {
		return nil, fmt.Errorf("encode event %q: %w", ev.ID, err)
	}
	if err := validate(ev.Data); err != nil {
		return nil, fmt.Errorf("encode event %q: %w", ev.ID, err)
	}
	data, err := proto.Marshal(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("encode event %q: marshal %s: %w", ev.ID, et.Message, err)
	}
	msg := nats.NewMsg(natsSubject)
	msg.Data = data
	msg.Header.Set(HeaderSpecVersion, SpecVersion)
	msg.Header.Set(HeaderID, ev.ID)
	msg.Header.Set(HeaderSource, ev.Source)
	msg.Header.Set(HeaderType, ev.Type)
	msg.Header.Set(HeaderTime, ev.Time.UTC().Format(time.RFC3339Nano))
	msg.Header.Set(HeaderSubject, ev.Subject)
	msg.Header.Set(HeaderDataSchema, et.DataSchema)
	msg.Header.Set(HeaderContentType, ContentTypeData)
	msg.Header.Set(nats.MsgIdHdr, ev.ID)
	if o := ev.Origin; o.WorkflowID != "" {
		msg.Header.Set(HeaderWorkflowID, o.WorkflowID)
		msg.Header.Set(HeaderWorkflowRun, o.RunID)
		msg.Header.Set(HeaderHistoryEvent, strconv.FormatInt(o.HistoryEventID, 10))
	}
	return msg, nil
}

// Decode reads an event from a NATS message's headers and body. Every failure
// wraps one of the sentinel errors above and names the attribute or field.
func Decode(h nats.Header, data []byte) (Event, error) {
	for _, name := range []string{HeaderSpecVersion, HeaderID, HeaderSource, HeaderType, HeaderTime, HeaderSubject} {
		if h.Get(name) == "" {
			return Event{}, fmt.Errorf("%w: %s", ErrMissingAttribute, name)
		}
	}
	if v := h.Get(HeaderSpecVersion); v != SpecVersion {
		return Event{}, fmt.Errorf("%w: %s %q (want %s)", ErrUnsupported, HeaderSpecVersion, v, SpecVersion)
	}
	if ct := h.Get(HeaderContentType); ct != "" && ct != ContentTypeData {
		return Event{}, fmt.Errorf("%w: %s %q (want %s)", ErrUnsupported, HeaderContentType, ct, ContentTypeData)
	}
	ceType := h.Get(HeaderType)
	et, ok := LookupType(ceType)
	if !ok {
		return Event{}, fmt.Errorf("%w: %s %q", ErrUnknownType, HeaderType, ceType)
	}
	if ds := h.Get(HeaderDataSchema); ds != "" && ds != et.DataSchema {
		return Event{}, fmt.Errorf("%w: %s %q does not match %s %q (want %q)", ErrUnsupported, HeaderDataSchema, ds, HeaderType, ceType, et.DataSchema)
	}
	t, err := time.Parse(time.RFC3339Nano, h.Get(HeaderTime))
	if err != nil {
		return Event{}, fmt.Errorf("%w: %s %q is not an RFC 3339 time", ErrUnsupported, HeaderTime, h.Get(HeaderTime))
	}
	if err := checkTimeRange(t); err != nil {
		return Event{}, err
	}
	var origin Origin
	if wf := h.Get(HeaderWorkflowID); wf != "" {
		n, err := strconv.ParseInt(h.Get(HeaderHistoryEvent), 10, 64)
		if err != nil || n < 0 {
			return Event{}, fmt.Errorf("%w: %s %q is not a history event id", ErrUnsupported, HeaderHistoryEvent, h.Get(HeaderHistoryEvent))
		}
		origin = Origin{WorkflowID: wf, RunID: h.Get(HeaderWorkflowRun), HistoryEventID: n}
	}
	m := et.new()
	if err := proto.Unmarshal(data, m); err != nil {
		return Event{}, fmt.Errorf("%w: %s: %w", ErrBadData, et.Message, err)
	}
	if err := validate(m); err != nil {
		return Event{}, err
	}
	return Event{
		ID:      h.Get(HeaderID),
		Source:  h.Get(HeaderSource),
		Type:    ceType,
		Subject: h.Get(HeaderSubject),
		Time:    t,
		Data:    m,
		Origin:  origin,
	}, nil
}

// checkTimeRange refuses a time whose UTC form falls outside RFC 3339's years
// (0000 to 9999): "0000-01-01T00:00:00+01:00" parses, but is year -1 in UTC,
// which no one could decode once the event is encoded again (FuzzDecode's round trip fails on it).
func checkTimeRange(t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%w: %s %s is year %d in UTC, outside RFC 3339 (years 0000 to 9999)", ErrUnsupported, HeaderTime, t.Format(time.RFC3339Nano), y)
	}
	return nil
}
