package eventbus

import "google.golang.org/protobuf/proto"

// Types lists every registered event type in registration order (the crisis
// lifecycle's order for this package's own), for catalogues and contracts.
func Types() []EventType {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]EventType, 0, len(registered))
	for _, ce := range registered {
		out = append(out, byCEType[ce])
	}
	return out
}

// New returns an empty message of the event type's data.
func (et EventType) New() proto.Message { return et.new() }
