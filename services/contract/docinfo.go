package contract

import "github.com/demarche/demarche/pkg/eventbus"

// What both contract documents (docs/asyncapi.json here, docs/openapi.json in
// services/gateway) say about who answers for them and how their operations
// are grouped: the lint in `make contract-lint` (spectral:oas,
// spectral:asyncapi and the AsyncAPI parser) asks every document for a
// contact and every operation for tags and a description.

// Contact is the documents' info.contact: who a partner's engineer asks. The
// repository names no mailbox or web site of its own, so it gives a name
// alone rather than an address nobody reads; the organisation that hands the
// documents to partners puts its operations centre's url or email here (one
// place, both documents).
func Contact() map[string]any {
	return map[string]any{"name": "Démarche maintainers (the operations centre that issued your credential)"}
}

// The AsyncAPI document's operation tags (info.tags lists them once with
// what each groups).
const (
	tagCrisisEvents      = "crisis-events"
	tagPartnerDeliveries = "partner-deliveries"
	tagSignals           = "signals"
	tagDeadLetters       = "dead-letters"
	tagServices          = "services"
)

// asyncAPITags are in alphabetical order (spectral's asyncapi-3-tags-alphabetical).
func asyncAPITags() []any {
	return []any{
		map[string]any{"name": tagCrisisEvents, "description": "The crisis events Démarche publishes, one channel per event type (stream " + eventbus.StreamName + ")."},
		map[string]any{"name": tagDeadLetters, "description": "Events a Démarche consumer gave up on, with why."},
		map[string]any{"name": tagPartnerDeliveries, "description": "A partner organisation's own copy of the events shared with it (its stream, its credential)."},
		map[string]any{"name": tagServices, "description": "Request/reply NATS micro services (roster, funding, early warning, partners, audit, schemas)."},
		map[string]any{"name": tagSignals, "description": "Early-warning signals partners' systems send in."},
	}
}

// tagRefs is an operation's tags, by name.
func tagRefs(names ...string) []any {
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = map[string]any{"name": n}
	}
	return out
}
