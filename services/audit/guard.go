package audit

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// What is chained is what the workflow did. NATS permissions (pkg/natsauth)
// let only the worker publish crisis events (and early warning its
// WarningRaised alone); the audit service checks each event again before
// chaining it, and refuses (alarm, dead letter, never chained as genuine) one
// that does not hold together:
//
//   - its ce-subject is the crisis its data names (crisis_id, or the
//     CrisisOpened's crisis.id);
//   - its ce-source is the crisis workflow's (crisis.EventSource), or early
//     warning's for a WarningRaised;
//   - an event of the workflow says where in Temporal it comes from
//     (ce-workflowid, ce-workflowrun, ce-historyevent), and that workflow is
//     the crisis's own or one of its stages' children.

// EarlyWarningSource is the ce-source of early warning's WarningRaised events
// (services/earlywarning.EventSource; a test keeps them equal).
const EarlyWarningSource = "/demarche/services/earlywarning"

// ErrForged is matched by the refusal of an event that is not the workflow's.
var ErrForged = errors.New("event refused: not what the crisis workflow published")

var warningRaisedType = ceTypeOf(&demarchev1.WarningRaised{})

// alteredOutsideType is the one event the worker's outside watch publishes
// (a terminate, cancel or reset seen in Temporal, crisis.OutsideWatchSource).
var alteredOutsideType = ceTypeOf(&demarchev1.CrisisAlteredOutside{})

func ceTypeOf(m proto.Message) string {
	et, err := eventbus.TypeOf(m)
	if err != nil {
		panic(err)
	}
	return et.CEType
}

// CrisisIDOf is the crisis an event's data names: its crisis_id field, or
// the id of the crisis it carries (CrisisOpened).
func CrisisIDOf(data proto.Message) (string, bool) {
	if data == nil {
		return "", false
	}
	m := data.ProtoReflect()
	fields := m.Descriptor().Fields()
	if f := fields.ByName("crisis_id"); f != nil && f.Kind() == protoreflect.StringKind {
		return m.Get(f).String(), true
	}
	if f := fields.ByName("crisis"); f != nil && f.Kind() == protoreflect.MessageKind && m.Has(f) {
		c := m.Get(f).Message()
		if id := c.Descriptor().Fields().ByName("id"); id != nil && id.Kind() == protoreflect.StringKind {
			return c.Get(id).String(), true
		}
	}
	return "", false
}

// CheckEvent says why an event must not be chained as the workflow's (nil
// when it may). Every refusal matches ErrForged.
func CheckEvent(ev eventbus.Event) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: event %s: %s", ErrForged, ev.ID, fmt.Sprintf(format, args...))
	}
	id, ok := CrisisIDOf(ev.Data)
	if !ok {
		return refuse("its data names no crisis")
	}
	if id != ev.Subject {
		return refuse("ce-subject %q does not match the crisis %q in its data", ev.Subject, id)
	}
	switch ev.Source {
	case crisis.EventSource:
	case EarlyWarningSource:
		if ev.Type != warningRaisedType {
			return refuse("early warning publishes WarningRaised only, not %s", ev.Type)
		}
		return nil
	case crisis.OutsideWatchSource:
		if ev.Type != alteredOutsideType {
			return refuse("the outside watch publishes CrisisAlteredOutside only, not %s", ev.Type)
		}
		return nil
	default:
		return refuse("ce-source %q is not the crisis workflow's (%s)", ev.Source, crisis.EventSource)
	}
	o := ev.Origin
	if o.WorkflowID == "" || o.RunID == "" || o.HistoryEventID <= 0 {
		return refuse("it does not say which workflow run and history event it comes from (%s, %s, %s)",
			eventbus.HeaderWorkflowID, eventbus.HeaderWorkflowRun, eventbus.HeaderHistoryEvent)
	}
	own := crisis.WorkflowID(id)
	if o.WorkflowID != own && !strings.HasPrefix(o.WorkflowID, own+"-") {
		return refuse("it comes from workflow %s, not from crisis %s's (%s or its stages')", o.WorkflowID, id, own)
	}
	return nil
}
