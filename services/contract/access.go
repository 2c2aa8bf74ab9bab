package contract

import (
	"fmt"
	"slices"
	"strings"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/partners"
)

// Access: who connects where, with what, and may do what. Everything here is
// generated from pkg/natsauth (the table the dev server's permissions and
// deploy/nats/authorization.conf come from), so the document cannot promise
// a right the servers refuse. devstack/stack's TestAsyncAPIGrantsAreExact
// reads the published document (docs/asyncapi.json) and tries every grant
// with each credential on the running stack.

// The dev and cluster servers.
const (
	DevNATSHost     = "127.0.0.1:4222"
	ClusterNATSHost = "nats-1:4222"
	// CredentialsDir is where `demarche dev` writes one credentials file per
	// identity, in its data folder (devstack/stack.CredentialsDir; a test of
	// the stack keeps them equal).
	CredentialsDir = "nats-credentials"
)

// servers are the NATS servers per environment, each with the security it
// demands (a connection without a credential is refused on both).
func servers() map[string]any {
	security := []any{ref("#/components/securitySchemes/nats")}
	return map[string]any{
		"dev": map[string]any{
			"host": DevNATSHost, "protocol": "nats",
			"title": "demarche dev",
			"description": "`demarche dev`'s embedded NATS server (port: `--nats-port`, default 4222). Credentials are REQUIRED: " +
				"a connection without one is refused (`Authorization Violation`). Each identity's credentials file is `<data-dir>/" + CredentialsDir + "/<identity>.creds` " +
				"(data folder: `demarche dev --data-dir`, default `.demarche`), one line `demarche-<identity>:<password>`; put the user and password in the URL " +
				"(`nats://demarche-partner-ECOWAS:<password>@127.0.0.1:4222`) or pass them as user and password. Plain TCP, no TLS.",
			"security": security,
			"tags":     []any{map[string]any{"name": "env:dev"}},
		},
		"cluster": map[string]any{
			"host": ClusterNATSHost, "protocol": "nats",
			"title": "cluster (deploy/)",
			"description": "The production cluster (deploy/README.md): nodes nats-1, nats-2, nats-3 on port 4222; clients take the seed list " +
				"`nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222`. BOTH are required: mutual TLS (the servers' CA, and the client's own certificate " +
				"`<identity>.pem` + key, issued by `demarche admin certificates` or your PKI) AND the identity's user and password " +
				"(`<identity>.creds`, issued by `demarche admin credentials`, handed to the partner or source out of band). " +
				"The permissions are the same as dev's (deploy/nats/authorization.conf is generated from the same table).",
			"security": []any{ref("#/components/securitySchemes/nats"), ref("#/components/securitySchemes/natsClientCertificate")},
			"tags":     []any{map[string]any{"name": "env:cluster"}},
		},
	}
}

// kindOf says what kind of client an identity is.
func kindOf(id natsauth.Identity) string {
	switch id {
	case natsauth.Observer:
		return "observer: read-only, for natscli and dashboards"
	case natsauth.Subscriber:
		return "subscriber: an integrating service following the crisis events through its own durable consumer (examples/subscriber)"
	case natsauth.Operator:
		return "operator: the demarche CLI's direct NATS verbs (events tail, micro discovery)"
	case natsauth.Provisioner:
		return "provisioner: creates streams and buckets (demarche admin provision), takes backups, opens funds"
	case natsauth.Restorer:
		return "restorer: demarche admin restore"
	case natsauth.Bench:
		return "bench: demarche bench's bare baselines (bench.>, its own stream BENCH_BARE) and fan-out consumers; never for a service"
	}
	if _, ok := id.Partner(); ok {
		return "partner organisation: reads its own deliveries alone"
	}
	if _, ok := id.SignalSource(); ok {
		return "signal source: publishes its own signals alone"
	}
	return "Démarche service (demarche serve " + string(id) + ")"
}

// jsAPI are the JetStream API subjects among a publish list.
func jsAPI(publish []string) []any {
	var out []any
	for _, s := range publish {
		if strings.HasPrefix(s, "$JS.API.") {
			out = append(out, s)
		}
	}
	return orEmpty(out)
}

// identityEntry is one identity's credential and every permission it has.
func identityEntry(id natsauth.Identity, p natsauth.Permissions, durables []any, ordered, reads []string) map[string]any {
	return map[string]any{
		"kind":        kindOf(id),
		"user":        id.User(),
		"inboxPrefix": natsauth.InboxPrefix(id),
		"credential": map[string]any{
			"dev":     "<data-dir>/" + CredentialsDir + "/" + string(id) + ".creds",
			"cluster": string(id) + ".creds (demarche admin credentials) and the client certificate " + string(id) + ".pem with its key (demarche admin certificates)",
		},
		"durableConsumers":   orEmpty(durables),
		"orderedConsumersOn": orEmpty(anys(ordered)),
		"messageReads":       orEmpty(anys(reads)),
		"jetStreamAPI":       jsAPI(p.Publish),
		"publish":            anys(p.Publish),
		"publishDenied":      orEmpty(anys(p.PublishDeny)),
		"subscribe":          anys(p.Subscribe),
	}
}

// consumerEntry describes a durable consumer: the exact name to create it
// under, its stream and the filter its create request must carry when the
// permissions name one.
func consumerEntry(c natsauth.Consumer, filter, note string) map[string]any {
	e := map[string]any{"stream": c.Stream, "name": c.Name}
	if filter != "" {
		e["filterSubject"] = filter
	}
	if note != "" {
		e["note"] = note
	}
	return e
}

// securityScheme is the NATS security scheme, with each identity's
// credential and permissions as pkg/natsauth's table gives them: the same
// table the embedded server and deploy/nats are made from.
func securityScheme() map[string]any {
	ids := map[string]any{}
	all := natsauth.AllDurables(natsauth.DefaultPartners)
	for _, id := range natsauth.Identities {
		var durables []any
		for _, c := range all[id] {
			note := ""
			if strings.HasPrefix(c.Name, natsauth.WebhookDurablePrefix) {
				note = "the partners service's webhook consumer for that partner"
			}
			durables = append(durables, consumerEntry(c, "", note))
		}
		ids[string(id)] = identityEntry(id, natsauth.PermissionsOf(id), durables, natsauth.Ephemerals[id], natsauth.MessageReads[id])
	}
	const org, source = "{ORG}", "{source}"
	partnerID := natsauth.PartnerIdentity(org)
	pe := identityEntry(partnerID, natsauth.PartnerPermissions(org), []any{consumerEntry(
		natsauth.Consumer{Stream: natsauth.PartnerStream(org), Name: org}, partners.SubjectRoot+"."+org+".>",
		"the one consumer the partner may create, pull from and acknowledge: its name is exactly the organisation's code, and the create request must carry exactly this one filter subject (nats.go: FilterSubject; nats.js: filter_subject)")},
		nil, nil)
	pe["instances"] = anys(natsauth.DefaultPartners)
	pe["note"] = "A template: {ORG} is the organisation's registry code (instances: those demarche dev and deploy/nats/authorization.conf give a user). " +
		"No account info ($JS.API.INFO), no stream list, no other stream: with nats.js use jetstreamManager({checkAPI: false}) and jetstream(); with nats.go jetstream.New does not ask for it."
	ids[string(partnerID)] = pe
	sourceID := natsauth.SignalSourceIdentity(source)
	se := identityEntry(sourceID, natsauth.SignalSourcePermissions(source), nil, nil, nil)
	se["instances"] = anys(natsauth.DefaultSignalSources)
	se["note"] = "A template: {source} is the source's name (instances: those demarche dev and deploy/nats/authorization.conf give a user). It publishes on its subject alone, as a JetStream publish (the acknowledgement comes on its inbox) or a core publish."
	ids[string(sourceID)] = se
	return map[string]any{"type": "userPassword",
		"description": "A NATS user of the deployment, demarche-<identity>, with its password: REQUIRED on every server (dev too). " +
			"`demarche dev` writes one credentials file per identity in `<data-dir>/" + CredentialsDir + "/<identity>.creds`; a cluster's come from `demarche admin credentials`. " +
			"Every user's client MUST use its own inbox prefix, _INBOX_<identity> (nats.go: nats.CustomInboxPrefix; nats.js: connect({inboxPrefix}); natscli: --inbox-prefix): " +
			"each may subscribe to its own inbox alone, so the default _INBOX.> is refused and requests (JetStream API included) without it get no reply. " +
			"Each identity may create, update, delete, pull from and acknowledge only its own durable consumers, under the exact names listed (durableConsumers); " +
			"ordered (library-named) consumers only on the streams listed (orderedConsumersOn), never under another's durable name (publishDenied). " +
			"jetStreamAPI lists the JetStream API subjects among publish: any other (e.g. $JS.API.INFO for a partner) is refused. " +
			"x-demarche-identities is generated from pkg/natsauth's table, the one the servers' configuration comes from; devstack/stack's TestAsyncAPIGrantsAreExact " +
			"connects with each credential and checks that what is listed works and what is not is refused.",
		"x-demarche-identities": ids,
	}
}

// clientCertificateScheme is the cluster's mutual TLS.
func clientCertificateScheme() map[string]any {
	return map[string]any{"type": "X509",
		"description": "The cluster's mutual TLS: the client presents its own certificate (one per identity, from `demarche admin certificates` or your PKI) " +
			"and checks the servers' against the deployment's CA. Required in addition to the user and password (servers.cluster)."}
}

// readersOf are the identities that may read a stream through a consumer:
// those owning a durable on it, or allowed ordered consumers on it.
func readersOf(stream string) []any {
	var out []string
	for id, cs := range natsauth.AllDurables(natsauth.DefaultPartners) {
		for _, c := range cs {
			if c.Stream == stream && !slices.Contains(out, string(id)) {
				out = append(out, string(id))
			}
		}
	}
	for id, streams := range natsauth.Ephemerals {
		if slices.Contains(streams, stream) && !slices.Contains(out, string(id)) {
			out = append(out, string(id))
		}
	}
	slices.Sort(out)
	return anys(out)
}

// jsRead is what a NATS user needs to read a stream through a durable
// JetStream consumer whose filter is filter (the consumer-create subject
// carries the filter, so a partner can be allowed its own subjects only).
// No $JS.API.INFO: partners are refused account info, and no client needs it.
func jsRead(stream, filter string) map[string]any {
	return map[string]any{
		"publish": []any{
			"$JS.API.STREAM.INFO." + stream,
			"$JS.API.CONSUMER.CREATE." + stream + ".{durable}." + filter,
			"$JS.API.CONSUMER.INFO." + stream + ".{durable}",
			"$JS.API.CONSUMER.MSG.NEXT." + stream + ".{durable}",
			"$JS.ACK." + stream + ".{durable}.>",
		},
		"subscribe":  []any{"_INBOX_{identity}.>"},
		"identities": readersOf(stream),
		"note": "a durable JetStream consumer on " + stream + " filtered to " + filter + ", under a name the identity owns ({durable}: its durableConsumers " +
			"in components.securitySchemes.nats.x-demarche-identities, no one else's), or, for an identity with orderedConsumersOn " + stream + ", an ordered consumer; " +
			"identities lists who may do either. The client uses its own inbox prefix _INBOX_{identity}. " +
			"A plain core subscription needs only subscribe on " + filter + " and sees only live events",
	}
}

// partnerRead is a partner organisation's read, from its permissions.
func partnerRead() map[string]any {
	const org = "{partner}"
	p := natsauth.PartnerPermissions(org)
	return map[string]any{
		"publish": anys(p.Publish), "subscribe": anys(p.Subscribe),
		"identities": []any{string(natsauth.PartnerIdentity(org))},
		"durable":    map[string]any{"stream": natsauth.PartnerStream(org), "name": org, "filterSubject": partners.SubjectRoot + "." + org + ".>"},
		"note": "the partner's credential demarche-partner-{partner} (x-demarche-identities.partner-{ORG}): its one durable consumer, named exactly {partner} " +
			"(e.g. ECOWAS on DEMARCHE_PARTNER_ECOWAS), filter exactly " + partners.SubjectRoot + ".{partner}.>, inbox prefix _INBOX_partner-{partner}",
	}
}

// Delivery: what identifies a stored message on each subject, and how a
// subscriber de-duplicates and keeps each crisis's order.
const (
	crisisMsgID  = "equals ce-id (the stream DEMARCHE_CRISIS stores an event once: a republished event is absorbed by the stream's de-duplication window)"
	partnerMsgID = "<PARTNER>-<ce-id>, e.g. ECOWAS-<ce-id> (the partner's copy of the event, stored once in its own stream); ce-id is the event's, the same as on demarche.crisis"
)

// natsHeaders are the NATS headers of an event as stored: Nats-Msg-Id and
// Nats-Expected-Stream, per subject.
func natsHeaders() map[string]any {
	return map[string]any{
		"Nats-Msg-Id": map[string]any{"type": "string",
			"description": "JetStream's de-duplication id. On demarche.crisis.…: " + crisisMsgID + ". On demarche.partner.<PARTNER>.…: " + partnerMsgID +
				". De-duplicate on ce-id, not on this header."},
		"Nats-Expected-Stream": map[string]any{"type": "string",
			"description": "the stream the publisher required (the publish fails rather than land elsewhere): " + eventbus.StreamName + " on demarche.crisis.…, " +
				partners.StreamPrefix + "<PARTNER> on demarche.partner.<PARTNER>.…. Informational for subscribers."},
	}
}

// deliveryNote is the delivery, de-duplication and order rules of a channel.
func deliveryNote(stream, msgID string) map[string]any {
	return map[string]any{
		"stream":             stream,
		"natsMsgId":          msgID,
		"natsExpectedStream": stream,
		"deduplicate":        "by the ce-id header: a redelivery (after a crash, a missed ack or the ack wait) carries the same ce-id; keep the ids handled (durably, with what they produced) and acknowledge a repeat without handling it again",
		"order":              orderRule,
	}
}

// orderRule is how a subscriber keeps each crisis's order, crash included.
const orderRule = "Events of one crisis are stored in the order they happened (stream sequence). A consumer with several un-acknowledged messages " +
	"loses that order after a crash: those messages come back only after the ack wait, behind newer ones. To keep each crisis's order, create the " +
	"durable consumer with ack_policy explicit and max_ack_pending 1, and acknowledge each event after handling it: the consumer then delivers the next " +
	"event only after the previous one is acknowledged, so after a crash the un-acknowledged event is redelivered first (after ack_wait) and nothing " +
	"newer overtakes it. Cost: one event in flight (one round trip per event), and after a crash a stall of ack_wait before the redelivery " +
	"(choose ack_wait a little above your longest handling time; send in-progress acks if handling takes longer). Measured on the embedded stack: see docs/events.md, Access and delivery."

// orderCost is the measured cost of max_ack_pending 1: devstack/stack's
// TestSubscriberOrderAfterCrash logs these figures (one run, 2026-12-07, on
// the 2-core development machine); re-measure and update when it changes.
const orderCost = "with ack_wait 2 s, a subscriber that fetched, handled 10 events and crashed holding un-acknowledged ones, " +
	"with 60 newer events arriving meanwhile: with max_ack_pending 1 no event was handled out of its crisis's order and the restarted subscriber " +
	"waited 2.0 s (the ack wait) for its first event; with max_ack_pending 1000 the restarted one started at once and 3 events were handled after " +
	"a later one of their crisis. Throughput (2,000 events, fetch 100, embedded server, no services): acknowledging and waiting for each " +
	"acknowledgement (as examples/subscriber does) 23,400 events/s with max_ack_pending 1 against 25,400 with 1000; acknowledging without waiting " +
	"23,900 against 117,600. So the cost is the ack wait once per crash (30 s with the default ack_wait: choose it) and, for a subscriber that " +
	"would otherwise pipeline, about a fifth of the throughput; for one that handles events one by one, next to nothing."

// accessMarkdown is docs/events.md's section on access and delivery: the
// credential and every permission of the identities people and partners use
// (the services' are in asyncapi.json), and the delivery rules.
func accessMarkdown() string {
	var b strings.Builder
	b.WriteString(`
## Access and delivery

### Servers

| server | address | what it requires |
|---|---|---|
| dev (` + "`demarche dev`" + `) | ` + "`nats://" + DevNATSHost + "`" + ` (` + "`--nats-port`" + `) | a credential: ` + "`<data-dir>/" + CredentialsDir + "/<identity>.creds`" + ` (one line ` + "`demarche-<identity>:<password>`" + `; data folder ` + "`--data-dir`" + `, default ` + "`.demarche`" + `). Without one: ` + "`Authorization Violation`" + `. |
| cluster (deploy/) | ` + "`nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222`" + ` | mutual TLS (the deployment's CA and the client's own certificate, ` + "`demarche admin certificates`" + `) **and** the identity's user and password (` + "`demarche admin credentials`" + `); see deploy/README.md |

Every client must use its own inbox prefix ` + "`_INBOX_<identity>`" + ` (nats.go ` + "`nats.CustomInboxPrefix`" + `,
nats.js ` + "`connect({inboxPrefix})`" + `, natscli ` + "`--inbox-prefix`" + `): the default ` + "`_INBOX.>`" + ` is refused,
so a request (JetStream API calls included) made without it never gets its reply.

### Credentials and what each may do

Generated from pkg/natsauth's table (the one the servers enforce); the full lists, services
included, are ` + "`components.securitySchemes.nats.x-demarche-identities`" + ` in [asyncapi.json](asyncapi.json).
Anything not listed is refused.

`)
	row := func(id natsauth.Identity, p natsauth.Permissions, durables []string) {
		code := func(ss []string) string {
			if len(ss) == 0 {
				return "—"
			}
			q := make([]string, len(ss))
			for i, s := range ss {
				q[i] = "`" + s + "`"
			}
			return strings.Join(q, ", ")
		}
		var api, pub []string
		for _, s := range p.Publish {
			if strings.HasPrefix(s, "$JS.API.") {
				api = append(api, s)
			} else {
				pub = append(pub, s)
			}
		}
		fmt.Fprintf(&b, "#### %s\n\n%s.\n\n| | |\n|---|---|\n", id, kindOf(id))
		fmt.Fprintf(&b, "| user | `%s` |\n| credential (dev) | `<data-dir>/%s/%s.creds` |\n| inbox prefix | `%s` |\n", id.User(), CredentialsDir, id, natsauth.InboxPrefix(id))
		fmt.Fprintf(&b, "| durable consumers (stream.name) | %s |\n| JetStream API | %s |\n| publish (other) | %s |\n", code(durables), code(api), code(pub))
		if len(p.PublishDeny) > 0 {
			fmt.Fprintf(&b, "| publish denied | %s |\n", code(p.PublishDeny))
		}
		fmt.Fprintf(&b, "| subscribe | %s |\n\n", code(p.Subscribe))
	}
	all := natsauth.AllDurables(natsauth.DefaultPartners)
	for _, id := range []natsauth.Identity{natsauth.Observer, natsauth.Subscriber, natsauth.Operator} {
		var ds []string
		for _, c := range all[id] {
			ds = append(ds, c.String())
		}
		row(id, natsauth.PermissionsOf(id), ds)
	}
	row(natsauth.PartnerIdentity("{ORG}"), natsauth.PartnerPermissions("{ORG}"), []string{natsauth.PartnerStream("{ORG}") + ".{ORG}"})
	b.WriteString("A partner `{ORG}` (" + strings.Join(natsauth.DefaultPartners, ", ") + " in dev) creates its one consumer under the name `{ORG}` exactly, " +
		"on `" + natsauth.PartnerStream("{ORG}") + "`, with the one filter subject `" + partners.SubjectRoot + ".{ORG}.>` " +
		"(e.g. ECOWAS: durable `ECOWAS` on `DEMARCHE_PARTNER_ECOWAS`, filter `demarche.partner.ECOWAS.>`, inbox prefix `_INBOX_partner-ECOWAS`). " +
		"It may not ask for account info (`$JS.API.INFO`): with nats.js use `jetstreamManager({checkAPI: false})`.\n\n")
	row(natsauth.SignalSourceIdentity("{source}"), natsauth.SignalSourcePermissions("{source}"), nil)
	b.WriteString("Signal sources in dev: " + strings.Join(natsauth.DefaultSignalSources, ", ") + ". Send no `Nats-Msg-Id` on `" + earlywarning.SignalsRoot + ".{source}`.\n\n")

	b.WriteString(`### Duplicates and order

| subject | stream | ` + "`Nats-Msg-Id`" + ` | ` + "`Nats-Expected-Stream`" + ` |
|---|---|---|---|
| ` + "`" + eventbus.SubjectRoot + ".<region>.<country>.<crisis-id>.<event>`" + ` | ` + "`" + eventbus.StreamName + "`" + ` | ` + "`<ce-id>`" + ` | ` + "`" + eventbus.StreamName + "`" + ` |
| ` + "`" + partners.SubjectRoot + ".<ORG>.<region>.<country>.<crisis-id>.<event>`" + ` | ` + "`" + partners.StreamPrefix + "<ORG>`" + ` | ` + "`<ORG>-<ce-id>`" + ` (e.g. ` + "`ECOWAS-<ce-id>`" + `) | ` + "`" + partners.StreamPrefix + "<ORG>`" + ` |
| ` + "`" + earlywarning.SignalsRoot + ".<source>`" + ` | ` + "`" + earlywarning.SignalsStream + "`" + ` | none (send none: early warning de-duplicates on source + source_id) | — |
| ` + "`" + eventbus.DeadLetterRoot + ".<consumer>`" + ` | ` + "`" + eventbus.DeadLetterStreamName + "`" + ` | ` + "`<consumer>-<original stream sequence>`" + ` | — |

**De-duplicate by ` + "`ce-id`" + `**: a redelivery (after a crash, a lost acknowledgement or the ack
wait) carries the same ` + "`ce-id`" + `, and so does a partner's copy of the same event. Keep the ids
handled, durably and together with what handling them produced, and acknowledge a repeat
without handling it again.

**Per-crisis order after a crash**: ` + orderRule[:strings.Index(orderRule, " Measured")] + `

Measured (devstack/stack TestSubscriberOrderAfterCrash: embedded NATS server with the crisis stream as the platform defines it, one run on a 2-core development machine): ` + orderCost + `

examples/subscriber (Go) and examples/subscriber-node (Node.js, as the partner ECOWAS) do exactly this (` + "`--ack-wait`" + `, ` + "`--state`" + ` for the handled ids).
`)
	return b.String()
}
