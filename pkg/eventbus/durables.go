package eventbus

import (
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// DurableSpec is a durable consumer as its owner provisions it: on which
// stream, under which name, on which subjects, with which ack policy. The
// audit service compares the server's consumers with these (services/audit
// consumers.go): one deleted, edited or created outside provisioning is an
// alarm.
type DurableSpec struct {
	Stream string
	// Durable is the consumer's name; with Prefix, every durable whose name
	// starts with it (one per partner, say).
	Durable string
	Prefix  bool
	// Owner is the identity that provisions and consumes it.
	Owner string
	// Filter is the filter subjects the consumer must have, given its name;
	// nil when its owner chooses them (an integrating subscriber follows the
	// region it wants).
	Filter    func(durable string) []string
	AckPolicy jetstream.AckPolicy
}

// Names of the streams and subjects of other services' durables, as they
// provision them (services/earlywarning, services/partners); kept in step by
// the stack's test that every durable on a running stack is declared here.
const (
	signalsStream  = "DEMARCHE_SIGNALS"
	signalsRoot    = "demarche.signals"
	partnersStream = "DEMARCHE_PARTNERS"
	partnerRoot    = "demarche.partner"
)

func fixed(subjects ...string) func(string) []string {
	return func(string) []string { return subjects }
}

// Durables is every durable consumer Démarche provisions: one place.
var Durables = []DurableSpec{
	{Stream: StreamName, Durable: "audit", Owner: "audit", Filter: fixed(AllEvents()), AckPolicy: jetstream.AckExplicitPolicy},
	{Stream: StreamName, Durable: "eventlog", Owner: "eventlog", Filter: fixed(AllEvents()), AckPolicy: jetstream.AckExplicitPolicy},
	{Stream: StreamName, Durable: "partners", Owner: "partners", Filter: fixed(AllEvents()), AckPolicy: jetstream.AckExplicitPolicy},
	{Stream: StreamName, Durable: "example-subscriber", Owner: "subscriber", AckPolicy: jetstream.AckExplicitPolicy},
	{Stream: signalsStream, Durable: "earlywarning-signals", Owner: "earlywarning", Filter: fixed(signalsRoot + ".>"), AckPolicy: jetstream.AckExplicitPolicy},
	{Stream: partnersStream, Durable: "partners-webhook-", Prefix: true, Owner: "partners", AckPolicy: jetstream.AckExplicitPolicy,
		Filter: func(durable string) []string {
			return []string{partnerRoot + "." + strings.TrimPrefix(durable, "partners-webhook-") + ".>"}
		}},
}

// DurableStreams are the streams that hold declared durables.
func DurableStreams() []string {
	var out []string
	for _, d := range Durables {
		if !slices.Contains(out, d.Stream) {
			out = append(out, d.Stream)
		}
	}
	return out
}

// SpecOf is the declaration of a durable on a stream (nil: not declared).
func SpecOf(stream, durable string) *DurableSpec {
	for i, d := range Durables {
		if d.Stream == stream && (d.Durable == durable || d.Prefix && strings.HasPrefix(durable, d.Durable) && len(durable) > len(d.Durable)) {
			return &Durables[i]
		}
	}
	return nil
}
