package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/jsonschema"
	"github.com/demarche/demarche/pkg/natsauth"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/eventlog"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/workflows/crisis"
)

// AsyncAPIVersion is the AsyncAPI specification the document follows.
const AsyncAPIVersion = "3.0.0"

// DocumentVersion is the version of the contract: its major follows the
// event types' version (…v1).
const DocumentVersion = "1.0.0"

var exampleTime = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// CrisisEvents are the event types published on the crisis stream, in
// lifecycle order: every registered event type but the early-warning signal,
// which travels on its own stream.
func CrisisEvents() []eventbus.EventType {
	signal, _ := eventbus.TypeOf(&demarchev1.Signal{}) // Signal is a registered event type: TypeOf cannot fail
	var out []eventbus.EventType
	for _, et := range eventbus.Types() {
		if et.CEType != signal.CEType {
			out = append(out, et)
		}
	}
	return out
}

// SignalEvent is the type of the CloudEvents partners' early-warning systems
// publish on demarche.signals.<source>.
func SignalEvent() eventbus.EventType {
	et, _ := eventbus.TypeOf(&demarchev1.Signal{}) // Signal is a registered event type: TypeOf cannot fail
	return et
}

// DeadLetterConsumers are Démarche's durable consumers, which dead-letter
// what they give up on ({PARTNER}: one per partner with a webhook).
func DeadLetterConsumers() []string {
	return []string{audit.Durable, eventlog.Durable, partners.Durable, earlywarning.SignalsDurable, partners.WebhookDurablePrefix + "{PARTNER}"}
}

// messageDescriptor is the commented descriptor of a message.
func messageDescriptor(n protoreflect.FullName) protoreflect.MessageDescriptor {
	files, err := demarchev1.SchemaFiles()
	if err != nil {
		panic(err) // the embedded set is checked by the proto module's tests
	}
	d, err := files.FindDescriptorByName(n)
	if err != nil {
		panic(fmt.Sprintf("schema %s is not in the embedded descriptor set: run 'make proto'", n))
	}
	return d.(protoreflect.MessageDescriptor)
}

// firstSentence is a comment's first sentence, for summaries.
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i+1]
	}
	return s
}

// whenPublished is the part of an event message's comment after "Name: ".
func whenPublished(md protoreflect.MessageDescriptor) string {
	c := jsonschema.Comment(md)
	return strings.TrimSpace(strings.TrimPrefix(c, string(md.Name())+":"))
}

func ref(path string) map[string]any { return map[string]any{"$ref": path} }

func protoJSON(m proto.Message) any {
	b, err := protojson.Marshal(m)
	if err != nil {
		panic(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		panic(err)
	}
	return v
}

// ceHeaders is the headers schema of a CloudEvent of type et (NATS binding, binary mode).
func ceHeaders(et eventbus.EventType, extra map[string]any) map[string]any {
	props := map[string]any{
		eventbus.HeaderSpecVersion:  map[string]any{"type": "string", "const": eventbus.SpecVersion, "description": "CloudEvents specification version"},
		eventbus.HeaderID:           map[string]any{"type": "string", "description": "event id, unique per event; a redelivered or republished event keeps it (deduplicate on it)"},
		eventbus.HeaderSource:       map[string]any{"type": "string", "format": "uri-reference", "description": "what published the event, e.g. " + crisis.EventSource},
		eventbus.HeaderType:         map[string]any{"type": "string", "const": et.CEType, "description": "event type; its last segment is the schema's version"},
		eventbus.HeaderTime:         map[string]any{"type": "string", "format": "date-time", "description": "when it happened (RFC 3339, UTC)"},
		eventbus.HeaderSubject:      map[string]any{"type": "string", "description": "the crisis id (for signals: the source's id of the signal's situation)"},
		eventbus.HeaderDataSchema:   map[string]any{"type": "string", "const": et.DataSchema, "description": "the data's protobuf message; resolve it with demarche.schema.get or GET /v1/schemas/{ce-dataschema}"},
		eventbus.HeaderContentType:  map[string]any{"type": "string", "const": eventbus.ContentTypeData},
		eventbus.HeaderWorkflowID:   map[string]any{"type": "string", "description": "CloudEvents extension: the workflow that published the event (events of the crisis workflow always carry it; the audit trail refuses one that does not)"},
		eventbus.HeaderWorkflowRun:  map[string]any{"type": "string", "description": "CloudEvents extension: that workflow's run id"},
		eventbus.HeaderHistoryEvent: map[string]any{"type": "string", "pattern": "^[0-9]+$", "description": "CloudEvents extension: the history event (ActivityTaskScheduled of the publishing activity) the event comes from"},
	}
	required := []any{eventbus.HeaderSpecVersion, eventbus.HeaderID, eventbus.HeaderSource, eventbus.HeaderType, eventbus.HeaderTime, eventbus.HeaderSubject, eventbus.HeaderDataSchema, eventbus.HeaderContentType}
	for k, v := range natsHeaders() {
		props[k] = v
	}
	for k, v := range extra {
		props[k] = v
		required = append(required, k)
	}
	return map[string]any{"type": "object", "properties": props, "required": required}
}

func exampleHeaders(ev eventbus.Event, subject string) map[string]any {
	msg, err := eventbus.Encode(subject, ev)
	if err != nil {
		panic(err)
	}
	out := map[string]any{}
	for k := range msg.Header {
		out[k] = msg.Header.Get(k)
	}
	return out
}

func identityNames(ids []natsauth.Identity) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func orEmpty(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

// AsyncAPI builds the AsyncAPI 3 document of every subject Démarche publishes or serves.
func AsyncAPI() map[string]any {
	channels := map[string]any{}
	operations := map[string]any{}
	messages := map[string]any{}
	schemas := jsonschema.NewSet(func(n protoreflect.FullName) string { return "#/components/schemas/" + string(n) })
	security := []any{ref("#/components/securitySchemes/nats")}

	regions := []any{}
	for _, r := range demarchev1.EnumSlugs(demarchev1.Region(0)) {
		regions = append(regions, r)
	}
	var partnerNames []any
	if reg, err := partners.LoadRegistry(""); err == nil {
		for _, p := range reg.Partners() {
			partnerNames = append(partnerNames, p.Name)
		}
	}
	var tokens, dlqConsumers []any
	for _, et := range CrisisEvents() {
		tokens = append(tokens, et.Token)
	}
	for _, c := range DeadLetterConsumers() {
		dlqConsumers = append(dlqConsumers, c)
	}
	params := map[string]any{
		"region":   map[string]any{"enum": regions, "description": "the crisis's region (demarche.v1.Region as a slug)"},
		"country":  map[string]any{"description": "the crisis's country, ISO 3166-1 alpha-2 in upper case, e.g. GN", "examples": []any{"GN"}},
		"crisisId": map[string]any{"description": "the crisis id (also in ce-subject), e.g. " + ExampleCrisis, "examples": []any{ExampleCrisis}},
		"partner":  map[string]any{"enum": partnerNames, "description": "a partner organisation of the registry (services/partners/partners.json)"},
		"event":    map[string]any{"enum": tokens, "description": "the event's subject token (the ce-type's name part)"},
		"source":   map[string]any{"description": "the reporting system, lower case and subject-safe: acled, ucdp, ecowarn, operator, ...", "examples": []any{"ecowarn"}},
		"consumer": map[string]any{"examples": dlqConsumers, "description": "the durable consumer that gave up on the event: one of Démarche's (see examples; " + partners.WebhookDurablePrefix + "<PARTNER> for each partner webhook) or any consumer built on pkg/eventbus"},
	}
	paramRefs := func(names ...string) map[string]any {
		out := map[string]any{}
		for _, n := range names {
			out[n] = ref("#/components/parameters/" + n)
		}
		return out
	}

	// Crisis events: one channel per event type.
	partnerMsgs := map[string]any{}
	for _, et := range CrisisEvents() {
		md := messageDescriptor(et.Message)
		name := string(md.Name())
		ev, err := ExampleEvent(et)
		if err != nil {
			panic(err)
		}
		route := eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "GN", CrisisID: ExampleCrisis}
		if et.Message == "demarche.v1.WarningRaised" {
			ev.Source = earlywarning.EventSource
		}
		messages[name] = map[string]any{
			"name":        name,
			"title":       et.CEType,
			"summary":     firstSentence(whenPublished(md)),
			"description": "Published when: " + whenPublished(md) + "\n\nBody: `" + string(et.Message) + "` in binary protobuf; the payload schema below is its protobuf JSON form (what `demarche events tail --output json` prints).",
			"contentType": eventbus.ContentTypeData,
			"headers":     ceHeaders(et, nil),
			"payload":     schemas.Message(md),
			"examples": []any{map[string]any{
				"name": "example", "headers": exampleHeaders(ev, route.Subject(et.Token)), "payload": protoJSON(ev.Data),
			}},
			"x-protobuf-message": string(et.Message),
			"x-cloudevents-type": et.CEType,
		}
		id := "crisis." + et.Token
		channels[id] = map[string]any{
			"address":     eventbus.SubjectRoot + ".{region}.{country}.{crisisId}." + et.Token,
			"title":       name,
			"description": whenPublished(md) + " Stored in the JetStream stream " + eventbus.StreamName + " with Nats-Msg-Id = ce-id.",
			"messages":    map[string]any{name: ref("#/components/messages/" + name)},
			"parameters":  paramRefs("region", "country", "crisisId"),
		}
		operations[id] = map[string]any{
			"action":   "send",
			"channel":  ref("#/channels/" + id),
			"messages": []any{ref("#/channels/" + id + "/messages/" + name)},
			"summary":  "Démarche publishes " + et.CEType + ".",
			"description": "Published when: " + whenPublished(md) + "\n\nRead it from the JetStream stream " + eventbus.StreamName +
				" with a durable consumer under a name your identity owns (x-demarche-permissions lists the API calls and who may make them); " +
				"de-duplicate by the ce-id header and keep each crisis's order as x-demarche-delivery says. Partner organisations read their own copy " +
				"on the partner channel instead.",
			"tags":                   tagRefs(tagCrisisEvents),
			"security":               security,
			"x-demarche-permissions": jsRead(eventbus.StreamName, eventbus.SubjectRoot+".>"),
			"x-demarche-delivery":    deliveryNote(eventbus.StreamName, crisisMsgID),
		}
	}
	// Partner deliveries: each partner's own copy of the types it receives.
	var partnerOpMsgs []any
	for _, et := range CrisisEvents() {
		pm, ok := partnerMessage(et, schemas)
		if !ok {
			continue
		}
		name := pm["name"].(string)
		messages[name] = pm
		partnerMsgs[name] = ref("#/components/messages/" + name)
		partnerOpMsgs = append(partnerOpMsgs, ref("#/channels/partner/messages/"+name))
	}

	// Partner deliveries.
	channels["partner"] = map[string]any{
		"address":     partners.SubjectRoot + ".{partner}.{region}.{country}.{crisisId}.{event}",
		"title":       "Partner deliveries",
		"description": "Each partner's own copy of the crisis events shared with it (Nats-Msg-Id = <PARTNER>-<ce-id>, Nats-Expected-Stream = the partner's stream). " + partnerCopyRule + " Stored in the partner's own stream " + partners.StreamPrefix + "{partner} (its stream info lists nothing of another partner's). A public crisis reaches the partners whose regions, countries and crisis types match; a restricted or confidential one only the partners it is shared with.",
		"messages":    partnerMsgs,
		"parameters":  paramRefs("partner", "region", "country", "crisisId", "event"),
	}
	operations["partner"] = map[string]any{
		"action": "send", "channel": ref("#/channels/partner"), "messages": partnerOpMsgs,
		"summary": "The partners service delivers the partner's copy of each shared event to its subjects (and signed webhook).",
		"description": "A partner organisation's feed: its own copy of the crisis events shared with it, on its own subjects and stream " + partners.StreamPrefix +
			"{partner}. " + partnerCopyRule + " Read it with the partner's credential (demarche-partner-{partner}) through the durable consumer named {partner}, " +
			"with the inbox prefix _INBOX_partner-{partner} (x-demarche-permissions lists exactly what the credential may do). " +
			"A copy's Nats-Msg-Id is <PARTNER>-<ce-id>: de-duplicate by the ce-id header.",
		"tags":                   tagRefs(tagPartnerDeliveries),
		"security":               security,
		"x-demarche-permissions": partnerRead(),
		"x-demarche-delivery":    deliveryNote(partners.StreamPrefix+"{partner}", partnerMsgID),
	}

	// Signals from partners' early-warning systems.
	sig := SignalEvent()
	sigMD := messageDescriptor(sig.Message)
	sigEv, err := ExampleEvent(sig)
	if err != nil {
		panic(err)
	}
	sigEv.Source, sigEv.Subject = "/partners/ecowas/ecowarn", "EW-2026-3310"
	messages["Signal"] = map[string]any{
		"name": "Signal", "title": sig.CEType,
		"summary":     "An early-warning signal from a partner's system.",
		"description": jsonschema.Comment(sigMD) + "\n\nBody: `" + string(sig.Message) + "` in binary protobuf.",
		"contentType": eventbus.ContentTypeData,
		"headers":     ceHeaders(sig, nil),
		"payload":     schemas.Message(sigMD),
		"examples": []any{map[string]any{"name": "example",
			"headers": exampleHeaders(sigEv, earlywarning.SignalsRoot+".ecowarn"), "payload": protoJSON(sigEv.Data)}},
		"x-protobuf-message": string(sig.Message), "x-cloudevents-type": sig.CEType,
	}
	channels["signals"] = map[string]any{
		"address":     earlywarning.SignalsRoot + ".{source}",
		"title":       "Early-warning signals",
		"description": "Signals from partners' early-warning systems, stored in " + earlywarning.SignalsStream + " and scored by the earlywarning service (consumer " + earlywarning.SignalsDurable + "). A source publishes on its own subject alone, with its own credential (demarche-signals-{source}): the subject is the signal's source. A body that names another source is refused (dead-lettered on demarche.dlq." + earlywarning.SignalsDurable + " with the rule); source may be left out. Send no Nats-Msg-Id: early warning de-duplicates on the authenticated source + source_id (the stream's de-duplication is shared by all sources).",
		"messages":    map[string]any{"Signal": ref("#/components/messages/Signal")},
		"parameters":  paramRefs("source"),
	}
	operations["signals"] = map[string]any{
		"action": "receive", "channel": ref("#/channels/signals"), "messages": []any{ref("#/channels/signals/messages/Signal")},
		"summary": "Démarche's early warning receives signals; a partner publishes them.",
		"description": "A partner's early-warning system publishes each signal on " + earlywarning.SignalsRoot + ".{source} with its own credential " +
			"(demarche-signals-{source}); the earlywarning service scores it. A signal naming another source is dead-lettered with the rule.",
		"tags":     tagRefs(tagSignals),
		"security": security,
		"x-demarche-permissions": map[string]any{
			"publish": []any{earlywarning.SignalsRoot + ".{source}"},
			"note":    "publish with a JetStream publish (acknowledged by " + earlywarning.SignalsStream + ") or a core publish",
		},
	}

	// Dead letters.
	messages["DeadLetter"] = map[string]any{
		"name": "DeadLetter", "title": "dead letter",
		"summary":     "An event a consumer gave up on, with why.",
		"description": "A copy of the original message (headers and body unchanged, except NATS directives) that a consumer could not decode, validate or handle after its bounded redeliveries. The body is whatever the original carried: usually one of the events above.",
		"contentType": eventbus.ContentTypeData,
		"headers": map[string]any{"type": "object", "required": []any{eventbus.HeaderDeadLetterReason, eventbus.HeaderDeadLetterConsumer, eventbus.HeaderDeadLetterSubject, eventbus.HeaderDeadLetterSequence, eventbus.HeaderDeadLetterAttempts},
			"properties": map[string]any{
				eventbus.HeaderDeadLetterReason:   map[string]any{"type": "string", "description": "why the consumer gave up"},
				eventbus.HeaderDeadLetterConsumer: map[string]any{"type": "string", "description": "the durable consumer"},
				eventbus.HeaderDeadLetterSubject:  map[string]any{"type": "string", "description": "the original subject"},
				eventbus.HeaderDeadLetterSequence: map[string]any{"type": "string", "description": "the original stream sequence"},
				eventbus.HeaderDeadLetterAttempts: map[string]any{"type": "string", "description": "deliveries tried"},
			}, "additionalProperties": true},
		"payload": map[string]any{"description": "the original body, unchanged"},
	}
	channels["deadLetters"] = map[string]any{
		"address":     eventbus.DeadLetterRoot + ".{consumer}",
		"title":       "Dead letters",
		"description": "Events a consumer gave up on, stored in " + eventbus.DeadLetterStreamName + " (one per consumer and stream position).",
		"messages":    map[string]any{"DeadLetter": ref("#/components/messages/DeadLetter")},
		"parameters":  paramRefs("consumer"),
	}
	operations["deadLetters"] = map[string]any{
		"action": "send", "channel": ref("#/channels/deadLetters"), "messages": []any{ref("#/channels/deadLetters/messages/DeadLetter")},
		"summary": "A Démarche consumer copies an event it gives up on.", "security": security,
		"description": "When a Démarche consumer cannot decode, validate or handle an event after its bounded redeliveries, it copies the event here " +
			"with the reason in headers, then terminates the original so the consumer moves on. Operators read them (stream " + eventbus.DeadLetterStreamName + ") to see what failed and why.",
		"tags":                   tagRefs(tagDeadLetters),
		"x-demarche-permissions": jsRead(eventbus.DeadLetterStreamName, eventbus.DeadLetterRoot+".>"),
	}

	// Request services.
	for _, ep := range Endpoints() {
		id := ep.Subject
		reqName, respName := id+".request", id+".reply"
		if ep.Request != nil {
			md := messageDescriptor(ep.Request.ProtoReflect().Descriptor().FullName())
			messages[reqName] = map[string]any{
				"name": string(md.Name()), "title": string(md.FullName()), "summary": ep.Summary,
				"contentType": "application/json",
				"description": "protobuf JSON; binary `" + string(md.FullName()) + "` when the request's Content-Type header is application/protobuf (the reply then is binary too)",
				"payload":     schemas.Message(md), "x-protobuf-message": string(md.FullName()),
			}
		}
		if ep.Request != nil && ep.Response != nil {
			rmd := messageDescriptor(ep.Response.ProtoReflect().Descriptor().FullName())
			messages[respName] = map[string]any{
				"name": string(rmd.Name()), "title": string(rmd.FullName()), "contentType": "application/json",
				"description": "On failure the reply has no body but the headers Nats-Service-Error-Code (400 bad input, 403, 404, 409, 422 rule refused, 503 retry, 500) and Nats-Service-Error (the reason).",
				"payload":     schemas.Message(rmd), "x-protobuf-message": string(rmd.FullName()),
			}
		}
		if ep.Request == nil {
			messages[reqName] = map[string]any{"name": "AnyRequest", "summary": ep.Summary, "payload": map[string]any{}}
			messages[respName] = map[string]any{"name": "Document", "contentType": ep.Raw, "payload": map[string]any{"type": "object"}}
		}
		channels[id] = map[string]any{
			"address": ep.Subject, "title": ep.Subject, "description": ep.Summary + " (NATS micro service `" + ep.Service + "`)",
			"messages": map[string]any{"request": ref("#/components/messages/" + reqName)},
		}
		replyMsgs := map[string]any{"reply": ref("#/components/messages/" + respName)}
		if ep.Subject == SubjectGet { // one reply per format: standard encodings, not a message of ours
			replyMsgs = map[string]any{}
			for name, m := range schemaReplyMessages(schemas) {
				messages[respName+"."+name] = m
				replyMsgs[name] = ref("#/components/messages/" + respName + "." + name)
			}
			messages[reqName].(map[string]any)["description"] = "protobuf JSON (binary `demarche.v1.GetSchemaRequest` when the request's Content-Type header is application/protobuf); " +
				"format picks the reply's encoding: descriptor-json (the default), descriptor or jsonschema"
		}
		var replyRefs []any
		for _, name := range sortedKeys(replyMsgs) {
			replyRefs = append(replyRefs, ref("#/channels/"+id+".reply/messages/"+name))
		}
		channels[id+".reply"] = map[string]any{
			"address": nil, "description": "the requester's reply subject (in its own inbox, _INBOX_<identity>.…)",
			"messages": replyMsgs,
		}
		callers := identityNames(natsauth.Publishers(ep.Subject))
		if natsauth.PartnerPermissions("{ORG}").Allows(ep.Subject) {
			callers = append(callers, string(natsauth.PartnerIdentity("{ORG}")))
		}
		operations[id] = map[string]any{
			"action": "receive", "channel": ref("#/channels/" + id), "messages": []any{ref("#/channels/" + id + "/messages/request")},
			"summary": ep.Summary, "security": security,
			"description": ep.Summary + " A request/reply call to the NATS micro service `" + ep.Service + "`: publish the request on " + ep.Subject +
				" with a reply subject in your own inbox (_INBOX_<identity>.…); x-demarche-permissions.identities lists who may call it.",
			"tags":               tagRefs(tagServices),
			"reply":              map[string]any{"channel": ref("#/channels/" + id + ".reply"), "messages": replyRefs},
			"x-demarche-service": ep.Service,
			"x-demarche-permissions": map[string]any{"publish": []any{ep.Subject}, "subscribe": []any{"_INBOX_{identity}.>"},
				"identities": orEmpty(anys(callers))},
		}
	}

	return map[string]any{
		"asyncapi": AsyncAPIVersion,
		"id":       "urn:org:demarche:events",
		"info": map[string]any{
			"title":       "Démarche",
			"version":     DocumentVersion,
			"description": infoDescription,
			"contact":     Contact(),
			"tags":        asyncAPITags(),
		},
		"defaultContentType": eventbus.ContentTypeData,
		"servers":            servers(),
		"channels":           channels,
		"operations":         operations,
		"components": map[string]any{
			"schemas":         schemas.Defs(),
			"messages":        messages,
			"parameters":      params,
			"securitySchemes": map[string]any{"nats": securityScheme(), "natsClientCertificate": clientCertificateScheme()},
		},
	}
}

const infoDescription = `Every NATS subject Démarche publishes or serves, generated from the schemas
(proto/demarche/v1) and the subject definitions in code (` + "`make docs`" + `).

**Events** are CloudEvents 1.0 in the NATS protocol binding's binary mode: the
attributes in ` + "`ce-`" + ` headers, the data as binary protobuf
(` + "`content-type: application/protobuf`" + `). ` + "`ce-dataschema`" + ` names the data's message
(` + "`type.googleapis.com/demarche.v1.StageEntered`" + `): ask ` + "`demarche.schema.get`" + ` (or
` + "`GET /v1/schemas/{ce-dataschema}`" + ` on the gateway) for its descriptor set and decode
with any protobuf library, or for a JSON Schema of its JSON form: ` + "`format`" + ` picks a
standard encoding, ` + "`descriptor-json`" + ` (the default: ` + "`google.protobuf.FileDescriptorSet`" + `
in protobuf JSON), ` + "`descriptor`" + ` (the same set, binary) or ` + "`jsonschema`" + `. Partner
organisations may ask it with their own credential. Payload schemas
in this document describe the protobuf JSON form of each message.

**Access**: every server requires a credential, dev included (` + "`demarche dev`" + ` writes
` + "`<data-dir>/nats-credentials/<identity>.creds`" + `); the cluster requires mutual TLS too. Each
kind of client (observer, subscriber, partner-<ORG>, signals-<source>, the services) has its
own user, inbox prefix ` + "`_INBOX_<identity>`" + `, durable consumer names and JetStream API
rights, all listed in ` + "`components.securitySchemes.nats.x-demarche-identities`" + `, generated
from the table the servers enforce. A partner ORG reads its own stream
DEMARCHE_PARTNER_ORG through one durable consumer named exactly ORG, filtered on
` + "`demarche.partner.ORG.>`" + `.

**Delivery**: crisis events are stored in the JetStream stream DEMARCHE_CRISIS with
` + "`Nats-Msg-Id`" + ` = ` + "`ce-id`" + `; a partner's copies in DEMARCHE_PARTNER_<ORG> with
` + "`Nats-Msg-Id`" + ` = ` + "`<ORG>-<ce-id>`" + ` (both with ` + "`Nats-Expected-Stream`" + ` = that stream). Read them with
a durable consumer and explicit acks, and de-duplicate on ` + "`ce-id`" + ` (a redelivery carries
the same id). Events of one crisis are stored in the order they happened; to keep that order
after a crash use ` + "`max_ack_pending: 1`" + ` (each operation's ` + "`x-demarche-delivery`" + ` says why and what it costs).

**Versions**: the last segment of ` + "`ce-type`" + ` (` + "`…v1`" + `) is the schema's version. Compatible
changes (new fields, new event types) keep it; ` + "`make lint`" + ` runs ` + "`buf breaking`" + ` against
the last release's schemas. A breaking change is a new version published beside
the old one (` + "`…v2`" + ` with data in package demarche.v2, on the same subjects) for a
deprecation period of at least two releases and six months, announced here.

**JSON**: ` + "`demarche events tail --output json`" + ` prints each event as a structured-mode CloudEvent
with its data in protobuf JSON. It is converted by the reader, so the stream stays
binary: no second copy is stored, and a JSON reader pays the decoding (roughly
3-5x the bytes of the protobuf body, and the CPU to convert).`

// AsyncAPIJSON is the document as written to docs/asyncapi.json.
func AsyncAPIJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(AsyncAPI()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
