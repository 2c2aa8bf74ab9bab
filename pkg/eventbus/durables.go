package eventbus

import (
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// DurableSpec is a durable consumer as its owner provisions it: on which
// stream, under which name, on which subjects, with which ack policy. The
// audit service compares the server's consumers with these (services/audit
// consumers.go): one deleted, edited or created outside provisioning is an
// alarm.
type DurableSpec struct {
	// Stream is the stream's name; with StreamPrefix, every stream whose
	// name starts with it (one stream per partner organisation).
	Stream       string
	StreamPrefix bool
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
	partnerStreams = "DEMARCHE_PARTNER_" // + the organisation (natsauth.PartnerStream)
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
	{Stream: partnerStreams, StreamPrefix: true, Durable: "partners-webhook-", Prefix: true, Owner: "partners", AckPolicy: jetstream.AckExplicitPolicy,
		Filter: func(durable string) []string {
			return []string{partnerRoot + "." + strings.TrimPrefix(durable, "partners-webhook-") + ".>"}
		}},
	// A partner organisation's own consumer on its stream, named after it
	// (natsauth.PartnerPermissions lets it make that one alone).
	{Stream: partnerStreams, StreamPrefix: true, Prefix: true, Owner: "partner", AckPolicy: jetstream.AckExplicitPolicy,
		Filter: func(durable string) []string { return []string{partnerRoot + "." + durable + ".>"} }},
}

// Watched says whether a stream may hold declared durables (the audit
// service lists the consumers of every such stream).
func Watched(stream string) bool {
	for _, d := range Durables {
		if d.matchesStream(stream) {
			return true
		}
	}
	return false
}

func (d DurableSpec) matchesStream(stream string) bool {
	return d.Stream == stream || d.StreamPrefix && strings.HasPrefix(stream, d.Stream) && len(stream) > len(d.Stream)
}

// SpecOf is the declaration of a durable on a stream (nil: not declared).
func SpecOf(stream, durable string) *DurableSpec {
	for i, d := range Durables {
		if d.matchesStream(stream) && (d.Durable == durable || d.Prefix && strings.HasPrefix(durable, d.Durable) && len(durable) > len(d.Durable)) {
			return &Durables[i]
		}
	}
	return nil
}
