// Package origin is the one guard every consumer that acts on crisis events
// applies before it acts: the audit trail before it chains an event, the
// partners service before it forwards one to partner organisations (and
// before it lets one decide who receives a crisis).
//
// NATS permissions (pkg/natsauth) let only the worker publish crisis events
// (and early warning its WarningRaised alone). The guard checks each event
// again, so that one that does not hold together is refused (dead letter,
// alarm), never taken as the workflow's:
//
//   - its ce-subject is the crisis its data names (crisis_id, or the
//     CrisisOpened's crisis.id);
//   - its ce-source is the crisis workflow's (WorkflowSource), early
//     warning's for a WarningRaised, or the worker's outside watch for a
//     CrisisAlteredOutside;
//   - an event of the workflow says where in Temporal it comes from
//     (ce-workflowid, ce-workflowrun, ce-historyevent), and that workflow is
//     the crisis's own or one of its stages' children.
//
// The guard is structural: it needs nothing but the event. A consumer that
// hands out more than the event itself (the partners service decides from
// CrisisOpened and SharingChanged who receives a crisis) checks more on top:
// see RequireOwnWorkflow, and services/partners.
package origin

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The publishers of crisis events (tests in services/audit keep them equal to
// workflows/crisis and services/earlywarning, which pkg cannot import).
const (
	// WorkflowSource is the ce-source of the crisis workflow's events
	// (workflows/crisis.EventSource).
	WorkflowSource = "/demarche/workflows/crisis-response"
	// EarlyWarningSource is the ce-source of early warning's WarningRaised
	// events (services/earlywarning.EventSource).
	EarlyWarningSource = "/demarche/services/earlywarning"
	// OutsideWatchSource is the ce-source of the worker's outside watch: a
	// terminate, cancel or reset seen in Temporal (workflows/crisis.OutsideWatchSource).
	OutsideWatchSource = "/demarche/services/worker/outside-watch"
	// WorkflowIDPrefix + crisis id is the crisis's workflow id
	// (workflows/crisis.WorkflowID); its stages' children add "-<stage>-<run>".
	WorkflowIDPrefix = "crisis-"
)

// ErrForged is matched by the refusal of an event that is not the workflow's.
var ErrForged = errors.New("event refused: not what the crisis workflow published")

var (
	warningRaisedType  = ceTypeOf(&demarchev1.WarningRaised{})
	alteredOutsideType = ceTypeOf(&demarchev1.CrisisAlteredOutside{})
)

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

// Check says why an event must not be taken as what its publisher did (nil
// when it may). Every refusal matches ErrForged and says which rule failed.
func Check(ev eventbus.Event) error {
	id, ok := CrisisIDOf(ev.Data)
	if !ok {
		return refuse(ev, "its data names no crisis")
	}
	if id != ev.Subject {
		return refuse(ev, "ce-subject %q does not match the crisis %q in its data", ev.Subject, id)
	}
	switch ev.Source {
	case WorkflowSource:
	case EarlyWarningSource:
		if ev.Type != warningRaisedType {
			return refuse(ev, "early warning publishes WarningRaised only, not %s", ev.Type)
		}
		return nil
	case OutsideWatchSource:
		if ev.Type != alteredOutsideType {
			return refuse(ev, "the outside watch publishes CrisisAlteredOutside only, not %s", ev.Type)
		}
		return nil
	default:
		return refuse(ev, "ce-source %q is not the crisis workflow's (%s)", ev.Source, WorkflowSource)
	}
	o := ev.Origin
	if o.WorkflowID == "" || o.RunID == "" || o.HistoryEventID <= 0 {
		return refuse(ev, "it does not say which workflow run and history event it comes from (%s, %s, %s)",
			eventbus.HeaderWorkflowID, eventbus.HeaderWorkflowRun, eventbus.HeaderHistoryEvent)
	}
	own := WorkflowIDPrefix + id
	if o.WorkflowID != own && !strings.HasPrefix(o.WorkflowID, own+"-") {
		return refuse(ev, "it comes from workflow %s, not from crisis %s's (%s or its stages')", o.WorkflowID, id, own)
	}
	return nil
}

// RequireOwnWorkflow is Check for an event only the crisis's own workflow
// publishes (not a stage's child, not early warning, not the outside watch):
// CrisisOpened and SharingChanged, the events that say who may see a crisis.
func RequireOwnWorkflow(ev eventbus.Event) error {
	if err := Check(ev); err != nil {
		return err
	}
	if ev.Source != WorkflowSource {
		return refuse(ev, "%s comes from the crisis workflow only, not from %s", ev.Type, ev.Source)
	}
	if own := WorkflowIDPrefix + ev.Subject; ev.Origin.WorkflowID != own {
		return refuse(ev, "%s comes from the crisis's own workflow %s, not from %s", ev.Type, own, ev.Origin.WorkflowID)
	}
	return nil
}

func refuse(ev eventbus.Event, format string, args ...any) error {
	return fmt.Errorf("%w: event %s: %s", ErrForged, ev.ID, fmt.Sprintf(format, args...))
}
