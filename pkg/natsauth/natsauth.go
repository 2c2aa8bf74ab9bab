// Package natsauth is who may do what on NATS: one identity per service, and
// one table of subject permissions (Table) from which the embedded server of
// `demarche dev` and the production server configuration (deploy/nats) are
// both derived.
//
// Each service publishes only what it owns: only the worker publishes crisis
// events (early warning its WarningRaised alone), only funding writes the
// ledgers, only audit writes the audit chains, only partners writes partner
// subjects, each service writes its own buckets. No identity but the
// provisioner may create, edit, purge or delete a stream or a bucket (but
// `demarche bench`, its own baselines' stream alone): services get read-only
// JetStream API rights and the rights to run their consumers.
package natsauth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Identity is a NATS user.
type Identity string

// The identities. Operator is the CLI's own NATS identity in `demarche dev`
// (its direct NATS verbs: roster, fund, warning, partner, audit, events tail);
// Observer is read-only, for natscli; Subscriber is an integrating service
// that follows the events through its own durable consumer
// (examples/subscriber).
const (
	Provisioner  Identity = "provisioner"
	Worker       Identity = "worker"
	EventLog     Identity = "eventlog"
	Roster       Identity = "roster"
	Funding      Identity = "funding"
	Partners     Identity = "partners"
	EarlyWarning Identity = "earlywarning"
	Audit        Identity = "audit"
	Gateway      Identity = "gateway"
	Schema       Identity = "schema"
	Operator     Identity = "operator"
	Observer     Identity = "observer"
	Subscriber   Identity = "subscriber"
	// Restorer is `demarche admin restore`'s identity: it may restore a
	// stream from a snapshot (and read stream information), nothing else. The
	// provisioner, which takes the snapshots, may not restore: a restore
	// replaces history, so it is an act of its own, with its own credential.
	Restorer Identity = "restorer"
	// Bench is `demarche bench`'s own identity, for its bare baselines:
	// subjects bench.> and their stream BENCH_BARE (BenchStream), the one
	// stream not the provisioner's, which it makes and removes itself; and,
	// for its fan-out scenario, durable consumers of the crisis stream under
	// names of its own (others' denied), which it removes after. It may read
	// early warning's consumer's state (the ingest scenario waits for it) and
	// publishes nothing a service reads: the Démarche side of the bench acts
	// as the operator, the worker and the gateway, with their credentials.
	Bench Identity = "bench"
)

// Identities lists every identity, in a stable order.
var Identities = []Identity{Provisioner, Worker, EventLog, Roster, Funding, Partners, EarlyWarning, Audit, Gateway, Schema, Operator, Observer, Subscriber, Restorer, Bench}

// Access is publish, subscribe, or both.
type Access int

// Access kinds.
const (
	Pub Access = 1 << iota
	Sub
)

// Rule allows identities to publish and/or subscribe on a subject.
type Rule struct {
	Subject string
	Access  Access
	Who     []Identity
	Why     string
}

// The streams and buckets whose consumers and messages the table names. The
// services define them (natsauth imports no service); a test of the stack
// (TestNATSPermissions) keeps the two equal.
const (
	CrisisStream     = "DEMARCHE_CRISIS"        // pkg/eventbus
	DeadLetterStream = "DEMARCHE_DLQ"           // pkg/eventbus
	SignalsStream    = "DEMARCHE_SIGNALS"       // services/earlywarning
	LedgerStream     = "DEMARCHE_LEDGER"        // services/funding
	AuditStream      = "DEMARCHE_AUDIT"         // services/audit
	AnchorStream     = "DEMARCHE_AUDIT_ANCHORS" // services/audit

	RosterBucket         = "DEMARCHE_ROSTER"         // services/roster
	FundingBucket        = "DEMARCHE_FUNDING"        // services/funding
	PartnerCrisesBucket  = "DEMARCHE_PARTNER_CRISES" // services/partners
	PartnerPendingBucket = "DEMARCHE_PARTNER_PENDING"
	SignalsBucket        = "EARLYWARNING_SIGNALS" // services/earlywarning
	SituationsBucket     = "EARLYWARNING_SITUATIONS"
	RulesBucket          = "EARLYWARNING_RULES"
	DialoguesBucket      = "EARLYWARNING_DIALOGUES"
	SignalStoreBucket    = "EARLYWARNING_SIGNAL_STORE"
	ClaimsBucket         = "DEMARCHE_CLAIMS" // services/gateway/claims

	// BenchStream holds `demarche bench`'s bare baselines (subjects bench.>).
	BenchStream = "BENCH_BARE"

	// WebhookDurablePrefix + a partner's name is the partners service's
	// consumer of the partner stream for that partner's webhook.
	WebhookDurablePrefix = "partners-webhook-"
)

// KV is the stream behind a bucket.
func KV(bucket string) string { return "KV_" + bucket }

// Consumer is a durable consumer: its stream and its name.
type Consumer struct{ Stream, Name string }

// String is stream.name.
func (c Consumer) String() string { return c.Stream + "." + c.Name }

// Durables are the durable consumers each identity owns. The owner alone may
// create, update, delete, pull from and acknowledge them (and read their
// info): its permissions name each one, stream and consumer, and every other
// identity that may make consumers on the same stream is denied their names.
// The partners service owns, besides, one webhook consumer per partner
// (WebhookDurable); a partner organisation its own (PartnerPermissions).
var Durables = map[Identity][]Consumer{
	EventLog:     {{CrisisStream, "eventlog"}},
	Audit:        {{CrisisStream, "audit"}},
	Partners:     {{CrisisStream, "partners"}},
	EarlyWarning: {{SignalsStream, "earlywarning-signals"}},
	Subscriber:   {{CrisisStream, "example-subscriber"}},
}

// WebhookDurable is the partners service's consumer for a partner's webhook.
func WebhookDurable(org string) Consumer {
	return Consumer{PartnerStream(org), WebhookDurablePrefix + org}
}

// Ephemerals are the streams on which an identity runs ordered (or other
// ephemeral) consumers: jetstream.OrderedConsumer, KV listings and watches,
// `events tail`, natscli's `nats sub --stream`. Their names are made by the
// client library (a nuid, then _<serial> on each reset): a permission cannot
// name them, nor a name prefix (wildcards are whole tokens). So the identity
// may create, pull from and delete consumers of any name on those streams,
// in the new-style subject forms that carry the name
// ($JS.API.CONSUMER.CREATE.<stream>.<name>[.<filter>]; the legacy ephemeral
// form, whose name hides in the body, is allowed to nobody), except the names
// of the durables other identities own there, which it is denied. It never
// gets acknowledgements on them (ordered consumers do not acknowledge), but
// for Pagers, whose `nats stream view` does.
var Ephemerals = map[Identity][]string{
	Audit:    {AuditStream},      // chain reads, the alarm watch
	Funding:  {LedgerStream},     // a fund's ledger read
	Roster:   {KV(RosterBucket)}, // bookings listed by key
	Partners: {KV(PartnerPendingBucket)},
	// The situations listed by key (the console inbox's situations endpoint,
	// re-scoring under applied rules); the applied rules watched; the signal
	// store read by key filter (a query, an old signal's own window).
	EarlyWarning: {KV(SituationsBucket), KV(RulesBucket), KV(SignalStoreBucket)},
	Operator:     {CrisisStream}, // events tail
	// The observer watches what happened, never the partner stream (each
	// partner's deliveries are its own) nor the buckets (bookings, requests).
	Observer: {CrisisStream, DeadLetterStream, SignalsStream, LedgerStream, AuditStream, AnchorStream},
}

// EventReads are the ordered consumers an identity may make on a stream with
// one of these filters alone (the filter is in the create request's subject,
// $JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>, where the permission
// sees it): early warning reads which crises open and close (its index of
// each situation's open crises, services/earlywarning/openindex.go), and
// nothing else of the crisis stream. It may pull from, read the state of and
// delete consumers of any name there, but the durables others own (Denied).
var EventReads = map[Identity][]StreamFilter{
	EarlyWarning: {
		{CrisisStream, "demarche.crisis.*.*.*.crisis_opened"},
		{CrisisStream, "demarche.crisis.*.*.*.crisis_closed"},
	},
}

// StreamFilter is a stream and a filter subject on it.
type StreamFilter struct{ Stream, Filter string }

// eventReadStreams are the streams of id's EventReads.
func eventReadStreams(id Identity) []string {
	var out []string
	for _, f := range EventReads[id] {
		if !slices.Contains(out, f.Stream) {
			out = append(out, f.Stream)
		}
	}
	return out
}

// OwnDurables are the streams on which an identity makes durable consumers
// under names of its own choosing (random: no permission can name them). It
// may create, pull from, acknowledge and delete consumers of any name there,
// but the names of the durables others own, which it is denied (Denied).
// Only demarche bench has any: its baselines' consumers on its own stream,
// and its fan-out scenario's durables on the crisis stream, removed after the
// scenario (the audit service's consumer watch raises its alarm for them, as
// for any durable nobody declared).
var OwnDurables = map[Identity][]string{Bench: {BenchStream, CrisisStream}}

// ConsumerReads are durables others own whose state ($JS.API.CONSUMER.INFO)
// an identity may read, and do nothing else with: demarche bench's ingest
// scenario waits until early warning's consumer has acknowledged its signals.
var ConsumerReads = map[Identity][]Consumer{Bench: {{SignalsStream, "earlywarning-signals"}}}

// Pagers are the identities people use with natscli (the operator's and the
// observer's credentials). `nats stream view` pages through a stream with a
// pull consumer of its own (stream_pager_<pid><time>) and acknowledges each
// message it shows: without acknowledgements every message prints a
// permissions error, and past the consumer's 1,000 unacknowledged messages
// the pager stalls. So on their Ephemerals streams they may acknowledge
// consumers of any name, but the names of the durables others own there
// (Denied): on these streams (limits retention) an acknowledgement moves
// only the acknowledging consumer's own state.
var Pagers = []Identity{Operator, Observer}

// MessageReads are the streams whose messages an identity reads one by one:
// $JS.API.STREAM.MSG.GET.<stream> (a chain's or ledger's tail, a record
// stored a moment ago) and, for buckets (which allow direct gets),
// $JS.API.DIRECT.GET.KV_<bucket>[.>] (a key's value). Nobody else may.
var MessageReads = map[Identity][]string{
	Audit:        {AuditStream, AnchorStream},
	Funding:      {LedgerStream, KV(FundingBucket)},
	Roster:       {KV(RosterBucket)},
	Partners:     {KV(PartnerCrisesBucket), KV(PartnerPendingBucket)},
	EarlyWarning: {KV(SignalsBucket), KV(SituationsBucket), KV(RulesBucket), KV(DialoguesBucket), KV(SignalStoreBucket)},
	// a pending decision's claim, read key by key (never listed)
	Gateway: {KV(ClaimsBucket)},
}

// ConsumerWatchers may read the info of every consumer of every stream and
// list them: the audit service watches the consumers that feed the trail
// (a filter, ack floor or existence changed outside provisioning is an
// alarm), the observer looks.
var ConsumerWatchers = []Identity{Audit, Observer}

var (
	services = []Identity{Worker, EventLog, Roster, Funding, Partners, EarlyWarning, Audit, Gateway, Schema}
	everyone = append(slices.Clone(services), Provisioner, Operator, Observer, Subscriber, Restorer, Bench)
	// responders answer NATS micro requests.
	responders = []Identity{Roster, Funding, Partners, EarlyWarning, Audit, Schema}
	// readers may ask the read-only endpoints.
	readers = []Identity{Worker, Gateway, Operator, Observer}
)

// rules are the hand-written rows of Table; consumer, message-read, inbox and
// reply rows are derived from Durables, Ephemerals, MessageReads and the
// request rows (see Table).
var rules = []Rule{
	// Micro discovery.
	{"$SRV.>", Sub, responders, "micro discovery (nats micro ls)"},
	{"$SRV.>", Pub, []Identity{Operator, Observer}, "micro discovery (nats micro ls)"},

	// JetStream: the provisioner alone manages streams and buckets.
	{"$JS.API.>", Pub, []Identity{Provisioner}, "create and update streams and buckets at start-up"},
	{"$JS.SNAPSHOT.ACK.>", Pub, []Identity{Provisioner}, "demarche admin backup, nats stream backup: acknowledge the snapshot's chunks (flow control)"},
	// Restore: its own identity, and only what a restore needs.
	{"$JS.API.STREAM.RESTORE.*", Pub, []Identity{Restorer}, "demarche admin restore, nats stream restore: ask to restore a stream"},
	{"$JS.SNAPSHOT.RESTORE.>", Pub, []Identity{Restorer}, "demarche admin restore, nats stream restore: send the snapshot's chunks"},
	{"$JS.API.INFO", Pub, everyone, "account info"},
	{"$JS.API.STREAM.INFO.*", Pub, everyone, "bind to a stream or bucket"},
	{"$JS.API.STREAM.NAMES", Pub, everyone, "list streams"},
	{"$JS.API.STREAM.LIST", Pub, everyone, "list streams"},
	// demarche bench: its baselines' own stream, made and removed by itself.
	{"$JS.API.STREAM.CREATE." + BenchStream, Pub, []Identity{Bench}, "demarche bench: make its baselines' stream (bench.>), nothing else's"},
	{"$JS.API.STREAM.UPDATE." + BenchStream, Pub, []Identity{Bench}, "demarche bench: its baselines' stream"},
	{"$JS.API.STREAM.DELETE." + BenchStream, Pub, []Identity{Bench}, "demarche bench: remove its baselines' stream after a run"},
	{"bench.>", Pub | Sub, []Identity{Bench}, "demarche bench's bare baselines: subjects no service uses"},

	// Events.
	{"demarche.crisis.>", Pub, []Identity{Worker}, "only the worker publishes crisis events"},
	{"demarche.crisis.*.*.*.warning_raised", Pub, []Identity{EarlyWarning}, "early warning's WarningRaised, nothing else"},
	{"demarche.>", Sub, []Identity{Operator, Observer}, "watch everything (events tail, nats sub)"},
	{"demarche.crisis.>", Sub, []Identity{Gateway}, "the console's live updates (filtered per principal before they leave)"},
	{"demarche.claims.*", Pub | Sub, []Identity{Gateway}, "a crisis's claims changed (no content): between gateways, to their consoles' live updates"},
	{"demarche.dlq.eventlog", Pub, []Identity{EventLog}, "its dead letters"},
	{"demarche.dlq.audit", Pub, []Identity{Audit}, "its dead letters"},
	{"demarche.dlq.partners", Pub, []Identity{Partners}, "its dead letters"},
	{"demarche.dlq.*", Pub, []Identity{Partners}, "its webhooks' dead letters (demarche.dlq.partners-webhook-<PARTNER>: wildcards are whole tokens)"},
	{"demarche.dlq.earlywarning-signals", Pub, []Identity{EarlyWarning}, "its dead letters"},
	{"demarche.dlq.example-subscriber", Pub, []Identity{Subscriber}, "its dead letters"},
	{"demarche.ledger.>", Pub, []Identity{Funding}, "only funding writes ledgers"},
	{"demarche.ledger.*", Pub, []Identity{Provisioner}, "open a fund: its opening line, once (demarche admin open-fund; a second opening breaks the ledger's links and is refused as an alarm)"},
	{"demarche.audit.>", Pub, []Identity{Audit}, "only audit writes audit chains"},
	{"demarche.audit.alarm", Pub, []Identity{Funding}, "a broken ledger's alarm, which audit records on the global chain (core NATS, not a chain subject)"},
	{"demarche.partner.>", Pub, []Identity{Partners}, "only partners delivers to partners"},
	{SignalsOperatorSubject, Pub, []Identity{Operator}, "the operator's own signals, recorded as the operator's (sources publish on demarche.signals.<source> as demarche-signals-<source>: SignalSourcePermissions)"},

	// Buckets: each service writes its own.
	{"$KV.DEMARCHE_ROSTER.>", Pub, []Identity{Roster}, "experts and bookings"},
	{"$KV.DEMARCHE_FUNDING.>", Pub, []Identity{Funding}, "requests and paid keys"},
	{"$KV.DEMARCHE_FUNDING.fund.*", Pub, []Identity{Provisioner}, "mark a fund opened (demarche admin open-fund)"},
	{"$KV.DEMARCHE_PARTNER_CRISES.>", Pub, []Identity{Partners}, "crises partners know"},
	{"$KV.DEMARCHE_PARTNER_PENDING.>", Pub, []Identity{Partners}, "events waiting for their opening"},
	{"$KV.EARLYWARNING_SIGNALS.>", Pub, []Identity{EarlyWarning}, "signals seen"},
	{"$KV.EARLYWARNING_SITUATIONS.>", Pub, []Identity{EarlyWarning}, "situations"},
	{"$KV.EARLYWARNING_SIGNAL_STORE.>", Pub, []Identity{EarlyWarning}, "the signal store: every accepted signal and its revisions (people read it through the gateway's GET /v1/signals)"},
	{"$KV.DEMARCHE_CLAIMS.>", Pub, []Identity{Gateway}, "who claimed a pending decision (advisory; the claimant stamped from the credential)"},
	{"$KV.EARLYWARNING_RULES.>", Pub, []Identity{EarlyWarning}, "rules applied on the running platform (validated by early warning, asked by the gateway for the head of department)"},
	{"$KV.EARLYWARNING_DIALOGUES.>", Pub, []Identity{EarlyWarning}, "each situation's early-warning dialogues with regional organisations (asked by the gateway for an analyst or head of department)"},

	// Requests (NATS micro): the service listens, its callers ask. Money and
	// bookings move for the worker alone, carrying out a crisis's decision;
	// everyone else reads.
	{"demarche.roster.>", Sub, []Identity{Roster}, "roster endpoints"},
	{"demarche.roster.reserve", Pub, []Identity{Worker}, "book an expert for a decided appointment (the worker alone)"},
	{"demarche.roster.release", Pub, []Identity{Worker}, "release a crisis's experts at its closure (the worker alone)"},
	{"demarche.funding.>", Sub, []Identity{Funding}, "funding endpoints"},
	{"demarche.funding.request", Pub, []Identity{Worker}, "a crisis's funding request (the worker alone)"},
	{"demarche.funding.decide", Pub, []Identity{Worker}, "a crisis's four-eyes funding decision (the worker alone)"},
	{"demarche.funding.disburse", Pub, []Identity{Worker}, "an approved request's disbursement (the worker alone)"},
	{"demarche.funding.contribute", Pub, []Identity{Gateway}, "credit a voluntary contribution, for a funding officer or fund manager the gateway authenticated (who is stamped from the credential)"},
	{"demarche.earlywarning.>", Sub, []Identity{EarlyWarning}, "early-warning endpoints"},
	{"demarche.earlywarning.>", Pub, []Identity{Gateway}, "ingest (a person's signals, stamped by the gateway with its principal: early warning trusts no other caller on it), score, rules (applied by the head of department the gateway authenticated, who is named in the audit record)"},
	{"demarche.partners.>", Sub, []Identity{Partners}, "partner endpoints"},
	{"demarche.partners.>", Pub, []Identity{Gateway, Operator}, "role acknowledgements"},
	{"demarche.partners.list", Pub, []Identity{EarlyWarning}, "the registry, to check a dialogue's regional organisation"},
	{"demarche.audit.>", Sub, []Identity{Audit}, "audit endpoints (chain, heads)"},
	// Chains and heads are read through the gateway alone: it checks the
	// reader's clearance and stamps the read with the token's subject (the
	// audit service records the reader the request names, and a NATS caller's
	// name would be its body's word).
	{"demarche.audit.chain", Pub, []Identity{Gateway}, "read a chain, for a person the gateway authenticated"},
	{"demarche.audit.heads", Pub, []Identity{Gateway}, "read chain heads, for a person the gateway authenticated"},
	{"demarche.audit.read", Pub, []Identity{Gateway}, "record a read of a restricted or confidential crisis"},
	{"demarche.audit.operation", Pub, []Identity{Worker}, "record a terminate, cancel or reset of a crisis workflow, found in its history (services/audit.AppendOperation)"},
	{"demarche.audit.fund-contribution", Pub, []Identity{Funding}, "record a voluntary contribution the funding service credited, on the global chain"},
	{"demarche.audit.fund-opened", Pub, []Identity{Provisioner}, "record a fund's opening on the global chain (demarche admin open-fund; the record's principal is the provisioner, whose credentials alone may ask)"},
	{"demarche.audit.warning-dialogue", Pub, []Identity{EarlyWarning}, "record an early-warning dialogue with a regional organisation on the global chain (the record's principal is the person early warning names, as the gateway authenticated them: early warning's credentials alone may ask)"},
	{"demarche.audit.rules-changed", Pub, []Identity{EarlyWarning}, "record early-warning rules put into force on the global chain (the record's principal is the person early warning names, as the gateway authenticated them: early warning's credentials alone may ask)"},
	{"demarche.schema.>", Sub, []Identity{Schema}, "schema endpoints (get, asyncapi)"},
	{"demarche.schema.>", Pub, []Identity{Gateway, Operator, Observer, Subscriber}, "fetch a schema or the AsyncAPI document (subscribers decode with it)"},
	{"demarche.roster.search", Pub, readers, "read-only"},
	{"demarche.roster.assignments", Pub, readers, "read-only"},
	{"demarche.roster.experts", Pub, readers, "read-only"},
	{"demarche.funding.balance", Pub, readers, "read-only"},
	{"demarche.funding.ledger", Pub, readers, "read-only"},
	{"demarche.earlywarning.score", Pub, readers, "read-only"},
}

// Table is every permission there is: the hand-written rules, then the rows
// derived from Durables, Ephemerals, MessageReads and ConsumerWatchers, each
// identity's own inbox, and each responder's right to answer its callers'
// inboxes. Anything not allowed here is refused; Denied takes back, from
// identities with consumer rights of any name on a stream, the names of the
// durables others own there.
var Table = derive(rules)

func derive(rules []Rule) []Rule {
	out := slices.Clone(rules)
	for _, id := range Identities {
		out = append(out, Rule{InboxPrefix(id) + ".>", Sub, []Identity{id}, "its own inbox: replies to its requests, JetStream API answers, ordered consumers' deliveries"})
	}
	for _, id := range Identities {
		for _, c := range ownedDurables(id, DefaultPartners) {
			out = append(out, consumerRules(id, c.Stream, c.Name, "its durable consumer "+c.String())...)
		}
		for _, stream := range Ephemerals[id] {
			out = append(out, consumerRules(id, stream, "*", "ordered consumers on "+stream+" (library-named; others' durables denied)")...)
			out = append(out, Rule{"$JS.FC." + stream + ".>", Pub, []Identity{id}, "flow control of its ordered push consumers on " + stream})
			if slices.Contains(Pagers, id) {
				out = append(out, Rule{"$JS.ACK." + stream + ".*.>", Pub, []Identity{id}, "acknowledge its own consumers on " + stream + " (nats stream view's pager; others' durables denied)"})
			}
		}
		for _, f := range EventReads[id] {
			why := "ordered consumers on " + f.Stream + " filtered to " + f.Filter + " alone (library-named)"
			out = append(out, Rule{"$JS.API.CONSUMER.CREATE." + f.Stream + ".*." + f.Filter, Pub, []Identity{id}, why})
		}
		for _, stream := range eventReadStreams(id) {
			why := "its ordered consumers on " + stream + " (EventReads; others' durables denied)"
			for _, verb := range []string{"INFO", "DELETE", "MSG.NEXT"} {
				out = append(out, Rule{"$JS.API.CONSUMER." + verb + "." + stream + ".*", Pub, []Identity{id}, why})
			}
		}
		for _, stream := range OwnDurables[id] {
			out = append(out, consumerRules(id, stream, "*", "durables of its own naming on "+stream+" (others' durables denied)")...)
			out = append(out, Rule{"$JS.ACK." + stream + ".*.>", Pub, []Identity{id}, "acknowledge its own durables on " + stream + " (others' durables denied)"})
		}
		for _, c := range ConsumerReads[id] {
			out = append(out, Rule{"$JS.API.CONSUMER.INFO." + c.String(), Pub, []Identity{id}, "read the state of " + c.String() + " (nothing else with it)"})
		}
		for _, stream := range MessageReads[id] {
			if strings.HasPrefix(stream, "KV_") {
				out = append(out,
					Rule{"$JS.API.DIRECT.GET." + stream, Pub, []Identity{id}, "read a key of its bucket"},
					Rule{"$JS.API.DIRECT.GET." + stream + ".>", Pub, []Identity{id}, "read a key of its bucket"})
				continue
			}
			out = append(out, Rule{"$JS.API.STREAM.MSG.GET." + stream, Pub, []Identity{id}, "read one message of " + stream})
		}
	}
	for _, org := range DefaultPartners {
		out = append(out, schemaReply(org))
	}
	for _, id := range ConsumerWatchers {
		out = append(out,
			Rule{"$JS.API.CONSUMER.INFO.*.*", Pub, []Identity{id}, "every consumer's state (watch them)"},
			Rule{"$JS.API.CONSUMER.NAMES.*", Pub, []Identity{id}, "list consumers"},
			Rule{"$JS.API.CONSUMER.LIST.*", Pub, []Identity{id}, "list consumers"})
	}
	// Replies: a responder publishes on the inbox of each identity that may
	// call it, and on no other (inbox prefixes are whole tokens,
	// _INBOX_<identity>, so no wildcard could say "any inbox" without
	// saying "any subject").
	for _, caller := range Identities {
		var to []Identity
		for _, r := range responders {
			if r != caller && calls(out, caller, r) {
				to = append(to, r)
			}
		}
		if len(to) > 0 {
			out = append(out, Rule{InboxPrefix(caller) + ".>", Pub, to, "answer " + string(caller) + "'s requests"})
		}
	}
	return out
}

// SchemaGetSubject is the schema service's request subject
// (pkg/natsrpc.SchemaGet), which partner organisations may ask too: they
// decode their deliveries with the descriptor set it answers.
const SchemaGetSubject = "demarche.schema.get"

// schemaReply lets the schema service answer a partner organisation's
// inbox (partners are not in Identities, so the derived reply rows miss them).
func schemaReply(org string) Rule {
	return Rule{InboxPrefix(PartnerIdentity(org)) + ".>", Pub, []Identity{Schema}, "answer partner-" + org + "'s schema requests (" + SchemaGetSubject + ")"}
}

// consumerRules are the rights to run one consumer (name "*": any name).
func consumerRules(id Identity, stream, name, why string) []Rule {
	who := []Identity{id}
	rs := []Rule{
		{"$JS.API.CONSUMER.CREATE." + stream + "." + name, Pub, who, why},
		{"$JS.API.CONSUMER.CREATE." + stream + "." + name + ".>", Pub, who, why + " (filtered)"},
		{"$JS.API.CONSUMER.INFO." + stream + "." + name, Pub, who, why},
		{"$JS.API.CONSUMER.DELETE." + stream + "." + name, Pub, who, why},
		{"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + name, Pub, who, why},
	}
	if name != "*" {
		rs = append(rs, Rule{"$JS.ACK." + stream + "." + name + ".>", Pub, who, why + ": acknowledge"})
	}
	return rs
}

// ownedDurables are id's durables, the partners service's webhook consumers
// for partners included.
func ownedDurables(id Identity, partners []string) []Consumer {
	out := slices.Clone(Durables[id])
	if id == Partners {
		for _, org := range partners {
			out = append(out, WebhookDurable(org))
		}
	}
	return out
}

// calls tells whether caller may publish on a subject responder listens on
// (its request subjects, $SRV discovery).
func calls(table []Rule, caller, responder Identity) bool {
	for _, l := range table {
		if l.Access&Sub == 0 || !slices.Contains(l.Who, responder) || strings.HasPrefix(l.Subject, "_INBOX") {
			continue
		}
		for _, p := range table {
			if p.Access&Pub != 0 && slices.Contains(p.Who, caller) && Overlap(p.Subject, l.Subject) {
				return true
			}
		}
	}
	return false
}

// Overlap tells whether two subjects (wildcards allowed) have a subject in common.
func Overlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		if i == len(at) || i == len(bt) {
			return len(at) == len(bt)
		}
		if at[i] == ">" || bt[i] == ">" {
			return true
		}
		if at[i] != bt[i] && at[i] != "*" && bt[i] != "*" {
			return false
		}
	}
}

// Permissions are the subjects an identity may publish and subscribe to;
// PublishDeny takes subjects back from Publish (nats-server's deny list wins
// over its allow list).
type Permissions struct {
	Publish, Subscribe []string
	PublishDeny        []string
}

// PermissionsOf derives an identity's permissions from Table (a partner
// organisation's or a signal source's from PartnerPermissions and
// SignalSourcePermissions). outside are the partner organisations and signal
// sources let in beside Démarche's identities: the partners service gets a
// webhook consumer for each partner among them (DefaultPartners' are in
// Table), and their durables are denied to others like every durable.
func PermissionsOf(id Identity, outside ...Identity) Permissions {
	if org, ok := id.Partner(); ok {
		return PartnerPermissions(org)
	}
	if source, ok := id.SignalSource(); ok {
		return SignalSourcePermissions(source)
	}
	var p Permissions
	add := func(r Rule) {
		if !slices.Contains(r.Who, id) {
			return
		}
		if r.Access&Pub != 0 && !slices.Contains(p.Publish, r.Subject) {
			p.Publish = append(p.Publish, r.Subject)
		}
		if r.Access&Sub != 0 && !slices.Contains(p.Subscribe, r.Subject) {
			p.Subscribe = append(p.Subscribe, r.Subject)
		}
	}
	for _, r := range Table {
		add(r)
	}
	partners := partnersOf(outside)
	if id == Schema {
		for _, org := range partners {
			if !slices.Contains(DefaultPartners, org) {
				add(schemaReply(org))
			}
		}
	}
	if id == Partners {
		for _, org := range partners {
			if !slices.Contains(DefaultPartners, org) {
				c := WebhookDurable(org)
				for _, r := range consumerRules(id, c.Stream, c.Name, "") {
					add(r)
				}
			}
		}
	}
	p.PublishDeny = Denied(id, partners)
	return p
}

// partnersOf are DefaultPartners and the partner organisations among ids.
func partnersOf(ids []Identity) []string {
	out := slices.Clone(DefaultPartners)
	for _, id := range ids {
		if org, ok := id.Partner(); ok && !slices.Contains(out, org) {
			out = append(out, org)
		}
	}
	return out
}

// AllDurables are every durable consumer there is, by owner: Durables, the
// partners service's webhook consumers and each partner organisation's own.
func AllDurables(partners []string) map[Identity][]Consumer {
	out := map[Identity][]Consumer{}
	for _, id := range Identities {
		if cs := ownedDurables(id, partners); len(cs) > 0 {
			out[id] = cs
		}
	}
	for _, org := range partners {
		out[PartnerIdentity(org)] = []Consumer{{PartnerStream(org), org}}
	}
	return out
}

// Denied are the consumer subjects an identity is refused although its
// consumer rights of any name on a stream (Ephemerals, OwnDurables) would match them: the
// names of the durables others own on that stream. Creating (or updating,
// the same request), deleting, pulling and (but for ConsumerWatchers)
// reading their state are denied, and so is acknowledging (Pagers may
// acknowledge consumers of any name on those streams but these).
func Denied(id Identity, partners []string) []string {
	var out []string
	for owner, cs := range AllDurables(partners) {
		if owner == id {
			continue
		}
		for _, c := range cs {
			if !slices.Contains(Ephemerals[id], c.Stream) && !slices.Contains(OwnDurables[id], c.Stream) && !slices.Contains(eventReadStreams(id), c.Stream) {
				continue
			}
			verbs := []string{"CREATE", "DELETE", "MSG.NEXT"}
			if !slices.Contains(ConsumerWatchers, id) {
				verbs = append(verbs, "INFO") // a watcher reads every consumer's state
			}
			for _, verb := range verbs {
				out = append(out, "$JS.API.CONSUMER."+verb+"."+c.String())
			}
			out = append(out, "$JS.API.CONSUMER.CREATE."+c.String()+".>")
			out = append(out, "$JS.ACK."+c.String()+".>") // Pagers acknowledge their own consumers alone
		}
	}
	slices.Sort(out)
	return out
}

// User is an identity's NATS user name: demarche-<identity>.
func (id Identity) User() string { return "demarche-" + string(id) }

// Credentials are an identity's user and password.
type Credentials struct {
	Identity Identity
	Password string
}

// FileName is where an identity's credentials live in a credentials folder.
func FileName(dir string, id Identity) string { return filepath.Join(dir, string(id)+".creds") }

// Ensure loads each identity's credentials from dir (Identities, then the
// extra ones: partner organisations, signal sources), generating (random,
// 256-bit) those missing, in files readable by their owner alone (0600).
func Ensure(dir string, extra ...Identity) (map[Identity]Credentials, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("credentials folder %s: %w", dir, err)
	}
	for _, id := range extra {
		if err := id.Check(); err != nil {
			return nil, err
		}
	}
	out := map[Identity]Credentials{}
	for _, id := range append(slices.Clone(Identities), extra...) {
		file := FileName(dir, id)
		c, err := Load(file)
		if errors.Is(err, os.ErrNotExist) {
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			c = Credentials{Identity: id, Password: base64.RawURLEncoding.EncodeToString(b)}
			if err := os.WriteFile(file, []byte(c.Identity.User()+":"+c.Password+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("write credentials %s: %w", file, err)
			}
			remember(c, file)
		} else if err != nil {
			return nil, err
		}
		if c.Identity != id {
			return nil, fmt.Errorf("credentials %s are %s's, not %s's", file, c.Identity, id)
		}
		out[id] = c
	}
	return out, nil
}

// Load reads a credentials file: one line, "<user>:<password>".
func Load(file string) (Credentials, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Credentials{}, err
	}
	user, pw, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok || !strings.HasPrefix(user, "demarche-") || pw == "" {
		return Credentials{}, fmt.Errorf("credentials %s: want one line <user>:<password>", file)
	}
	c := Credentials{Identity: Identity(strings.TrimPrefix(user, "demarche-")), Password: pw}
	remember(c, file)
	return c, nil
}

// URL returns the NATS URL with the credentials in it, the form every
// Démarche process (and natscli's --server) accepts. A cluster's seed list,
// comma-separated URLs, gets them in each URL.
func (c Credentials) URL(natsURL string) (string, error) {
	var out []string
	for _, one := range strings.Split(natsURL, ",") {
		one = strings.TrimSpace(one)
		u, err := url.Parse(one)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("NATS URL %q: want nats://host:port, or a cluster's seed list nats://host1:port,nats://host2:port", one)
		}
		u.User = url.UserPassword(c.Identity.User(), c.Password)
		out = append(out, u.String())
	}
	return strings.Join(out, ","), nil
}

// WithCredentialsFile returns natsURL with the credentials of file in it
// (natsURL unchanged when file is empty).
func WithCredentialsFile(natsURL, file string) (string, error) {
	if file == "" {
		return natsURL, nil
	}
	c, err := Load(file)
	if err != nil {
		return "", err
	}
	return c.URL(natsURL)
}

// ServerConfig is the nats-server `authorization` block equivalent to Table,
// for production (deploy/nats/authorization.conf). Each user's password is a
// variable, DEMARCHE_NATS_<IDENTITY>_PASSWORD, defined in PasswordsFile
// beside it, which it includes (`demarche admin credentials` writes it with
// bcrypt hashes), and which `nats-server --signal reload` reads again: see
// Rotate.
func ServerConfig(extra ...Identity) string {
	var b strings.Builder
	b.WriteString("# Generated from pkg/natsauth.Table by `go test ./pkg/natsauth -run TestDeployConfig` with\n")
	b.WriteString("# DEMARCHE_UPDATE_DEPLOY=1. Do not edit: change the table.\n")
	b.WriteString("# Include it from nats-server.conf. The password hashes come from " + PasswordsFile + " beside\n")
	b.WriteString("# this file, one line per identity, DEMARCHE_NATS_<IDENTITY>_PASSWORD: \"<bcrypt hash>\"\n")
	b.WriteString("# (`demarche admin credentials --dir DIR` writes DIR/" + PasswordsFile + "). `nats-server --signal reload`\n")
	b.WriteString("# reads it again: a rotated password takes effect without a restart (docs/operations.md).\n")
	b.WriteString("# Partner organisations (demarche-partner-<ORG>) and signal sources (demarche-signals-<source>)\n")
	b.WriteString("# connect from outside: give each its own password. Every user's client must use its own inbox\n")
	b.WriteString("# prefix, _INBOX_<identity> (e.g. _INBOX_observer, _INBOX_partner-<ORG>; natscli --inbox-prefix):\n")
	b.WriteString("# each may read its own inbox alone.\n")
	fmt.Fprintf(&b, "include %q\n", PasswordsFile)
	b.WriteString("authorization {\n  users = [\n")
	for _, id := range append(slices.Clone(Identities), extra...) {
		p := PermissionsOf(id, extra...)
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: $%s\n      permissions: {\n", id.User(), PasswordVariable(id))
		if len(p.PublishDeny) > 0 {
			fmt.Fprintf(&b, "        publish: { allow: %s, deny: %s }\n", quoteList(p.Publish), quoteList(p.PublishDeny))
		} else {
			fmt.Fprintf(&b, "        publish: { allow: %s }\n", quoteList(p.Publish))
		}
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", quoteList(p.Subscribe))
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// PasswordVariable names the variable holding an identity's password (hash)
// in the production server configuration, defined in PasswordsFile.
func PasswordVariable(id Identity) string {
	return "DEMARCHE_NATS_" + strings.NewReplacer("-", "_").Replace(strings.ToUpper(string(id))) + "_PASSWORD"
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Partner organisations and signal sources from outside connect to NATS too,
// each as its own user (not in Table: they come from configuration).
//
// A partner organisation ORG (its registry code, e.g. ECOWAS) is the user
// demarche-partner-ORG. It reads its own subjects, demarche.partner.ORG.>, and
// nothing else: as a core subscription, or through its one durable consumer
// named ORG on its own stream DEMARCHE_PARTNER_ORG (PartnerStream), which
// holds its deliveries alone: the stream's info (subjects and their counts)
// tells it nothing of crises shared with other organisations, and it may ask
// no other stream's. Its replies come on its own inbox prefix (InboxPrefix),
// so it cannot read anyone else's replies either; it publishes nothing.
//
// A signal source SOURCE (e.g. acled) is the user demarche-signals-SOURCE. It
// publishes its signals on demarche.signals.SOURCE alone (JetStream stores
// them; the acknowledgement comes on its own inbox prefix) and reads nothing.
// The subject is its proof: early warning takes a stream signal's source from
// the subject it was published on, and refuses (dead letter) one whose body
// names another source. The operator identity publishes on
// demarche.signals.operator alone (SignalsOperatorSubject): its signals are
// recorded as the operator's, never as a source's.

// DefaultSignalSources are the signal sources `demarche dev` (and
// deploy/nats/authorization.conf) give a user each; production adds its own.
var DefaultSignalSources = []string{"acled", "ucdp", "ecowarn", "cewarn", "un-human-rights", "civil-society", "media"}

// DefaultPartners are the partner organisations of the embedded registry
// (services/partners; a test keeps them equal), in
// deploy/nats/authorization.conf.
var DefaultPartners = []string{"AU", "ECOWAS", "SADC", "IGAD", "ICGLR", "EU", "OSCE", "OAS", "CARICOM", "ASEAN", "PIF", "LAS", "OIC",
	"ICG-GUINEA", "WANEP", "FEMWISE"}

// DeployIdentities are the outside identities of deploy/nats/authorization.conf.
func DeployIdentities() []Identity {
	var out []Identity
	for _, org := range DefaultPartners {
		out = append(out, PartnerIdentity(org))
	}
	for _, src := range DefaultSignalSources {
		out = append(out, SignalSourceIdentity(src))
	}
	return out
}

// PartnerStream is the stream of one partner organisation's deliveries
// (services/partners.PartnerStream; a test keeps them equal).
func PartnerStream(org string) string { return "DEMARCHE_PARTNER_" + org }

// SignalsOperatorSubject is where the operator identity publishes signals:
// recorded as the operator's own ("operator"), it speaks for no source.
const SignalsOperatorSubject = "demarche.signals.operator"

// PartnerIdentity is a partner organisation's identity.
func PartnerIdentity(org string) Identity { return Identity("partner-" + org) }

// SignalSourceIdentity is a signal source's identity.
func SignalSourceIdentity(source string) Identity { return Identity("signals-" + source) }

// Partner is the organisation of a partner identity.
func (id Identity) Partner() (string, bool) { return strings.CutPrefix(string(id), "partner-") }

// SignalSource is the source of a signal-source identity.
func (id Identity) SignalSource() (string, bool) { return strings.CutPrefix(string(id), "signals-") }

// Check refuses an identity whose organisation or source is not one subject
// token of letters, digits and dashes (a wildcard or a dot would widen its rights).
func (id Identity) Check() error {
	name, ok := id.Partner()
	if !ok {
		name, ok = id.SignalSource()
	}
	if !ok {
		if slices.Contains(Identities, id) {
			return nil
		}
		return fmt.Errorf("NATS identity %q: not a service identity, partner-<ORG> or signals-<source>", id)
	}
	if name == "" {
		return fmt.Errorf("NATS identity %q: the organisation or source is empty", id)
	}
	if _, source := id.SignalSource(); source && name == "operator" {
		// demarche.signals.operator is the operator identity's: a source so
		// named would speak as the operator.
		return fmt.Errorf("NATS identity %q: the source name operator is the operator identity's", id)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("NATS identity %q: %q may hold letters, digits and dashes only", id, name)
		}
	}
	return nil
}

// InboxPrefix is the inbox prefix an identity's client must use
// (nats.CustomInboxPrefix, natscli --inbox-prefix): _INBOX_<identity>, for
// every identity. Each may subscribe to its own alone, so nobody reads
// another's replies; a responder may answer only the inboxes of those who
// may call it. pkg/natsx.Connect sets it from the URL's user.
func InboxPrefix(id Identity) string { return "_INBOX_" + string(id) }

// IdentityOfUser is the identity of a NATS user name, demarche-<identity>.
func IdentityOfUser(user string) (Identity, bool) {
	id, ok := strings.CutPrefix(user, "demarche-")
	return Identity(id), ok && id != ""
}

// PartnerPermissions are a partner organisation's: its own stream, its own
// durable consumer on it, its own subjects and inbox, and the schema
// service's get (to decode what it receives); nothing shared.
func PartnerPermissions(org string) Permissions {
	subjects := "demarche.partner." + org + ".>"
	stream := PartnerStream(org)
	return Permissions{
		Publish: []string{
			"$JS.API.STREAM.INFO." + stream,
			// nats consumer ls --names: the names on its own stream (its
			// own and the partners service's webhook consumer for it); not
			// CONSUMER.LIST, which would give the webhook consumer's state.
			"$JS.API.CONSUMER.NAMES." + stream,
			"$JS.API.CONSUMER.CREATE." + stream + "." + org + "." + subjects,
			"$JS.API.CONSUMER.INFO." + stream + "." + org,
			"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + org,
			"$JS.ACK." + stream + "." + org + ".>",
			// The schemas of the events it receives, with its own
			// credential; the answer comes on its own inbox.
			SchemaGetSubject,
		},
		Subscribe: []string{subjects, InboxPrefix(PartnerIdentity(org)) + ".>"},
	}
}

// SignalSourcePermissions are a signal source's.
func SignalSourcePermissions(source string) Permissions {
	return Permissions{
		Publish:   []string{"demarche.signals." + source},
		Subscribe: []string{InboxPrefix(SignalSourceIdentity(source)) + ".>"},
	}
}

// Allows tells whether p lets its holder publish on subject (no wildcards):
// an allow matches and no deny does, as nats-server decides.
func (p Permissions) Allows(subject string) bool {
	match := func(list []string) bool {
		return slices.ContainsFunc(list, func(s string) bool { return Overlap(s, subject) })
	}
	return match(p.Publish) && !match(p.PublishDeny)
}

// Publishers are the identities (Démarche's own, not the provisioner, which
// may publish anything) allowed to publish on subject: for a request
// subject, who may call it.
func Publishers(subject string) []Identity {
	var out []Identity
	for _, id := range Identities {
		if id != Provisioner && PermissionsOf(id).Allows(subject) {
			out = append(out, id)
		}
	}
	return out
}
