package audit

import (
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/origin"
)

// What is chained is what the workflow did. NATS permissions (pkg/natsauth)
// let only the worker publish crisis events (and early warning its
// WarningRaised alone); the audit service checks each event again before
// chaining it with the one guard every consumer that acts on crisis events
// shares (pkg/origin: the partners service applies it too), and refuses
// (alarm, dead letter, never chained as genuine) one that does not hold
// together:
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
const EarlyWarningSource = origin.EarlyWarningSource

// ErrForged is matched by the refusal of an event that is not the workflow's.
var ErrForged = origin.ErrForged

// CrisisIDOf is the crisis an event's data names: its crisis_id field, or
// the id of the crisis it carries (CrisisOpened).
var CrisisIDOf = origin.CrisisIDOf

// CheckEvent says why an event must not be chained as the workflow's (nil
// when it may). Every refusal matches ErrForged.
func CheckEvent(ev eventbus.Event) error { return origin.Check(ev) }

func ceTypeOf(m proto.Message) string {
	et, err := eventbus.TypeOf(m)
	if err != nil {
		panic(err)
	}
	return et.CEType
}
