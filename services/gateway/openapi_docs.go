package gateway

import (
	"fmt"
	"strings"

	"github.com/demarche/demarche/pkg/natsrpc"
)

// What docs/openapi.json says beside the route table: each operation's tag
// and description, each parameter's description, the servers and the tags.
// `make contract-lint` (spectral, spectral:oas "all") asks for all of them;
// OpenAPI panics on a route without its row here, so a new route cannot be
// published undocumented (TestOpenAPIUpToDate runs it).

// The operations' tags, as the document's tags lists them: in alphabetical
// order (spectral's openapi-tags-alphabetical).
var openAPITags = []struct{ name, description string }{
	{"audit", "The hash-chained audit trails, the workflows' histories and Temporal's payload codec."},
	{"contract", "The published contract: this document, the AsyncAPI document, the event schemas, and who you are."},
	{"crises", "Crises: open, list, read, decide, control, share."},
	{"funding", "Rapid-response funds' balances and ledgers (read only: money moves only through a crisis's funding decisions)."},
	{"partners", "Partner organisations: who receives what, and a partner's acknowledgement of its role."},
	{"roster", "The roster of envoys, mediators and standby experts, and a crisis's bookings (read only: bookings come from a crisis's workflow)."},
	{"signals", "Early-warning signals and the situations they score."},
}

type routeDoc struct {
	tag, description string
}

// routeDocs is each route's tag and description, by "METHOD pattern" as in
// the route table.
var routeDocs = map[string]routeDoc{
	"GET /v1/whoami": {"contract", "Who the bearer token says you are, as the API sees it: subject, name, roles, clearance and partner organisation. " +
		"Use it to check a credential before anything else."},
	"GET /v1/openapi.json": {"contract", "This OpenAPI document, as the running gateway serves it (the same as docs/openapi.json of its release)."},
	"GET /v1/asyncapi.json": {"contract", "The AsyncAPI document of every NATS subject Démarche publishes or serves (docs/asyncapi.json of the release): " +
		"servers, credentials and what each may do, the events and their headers."},
	"GET " + schemaPattern: {"contract", "The schema of an event's data, named by its ce-dataschema (type.googleapis.com/demarche.v1.StageEntered), " +
		"its message name or its ce-type, in a standard encoding picked by format: the google.protobuf.FileDescriptorSet in canonical " +
		"protobuf JSON (descriptor-json, the default) or binary (descriptor), or a JSON Schema of the message's JSON form (jsonschema). " +
		"Decode the events with any protobuf library from the descriptor set."},
	"POST /v1/signals": {"signals", "Send early-warning signals (a partner's system, an analyst). Each is answered accepted, duplicate or " +
		"rejected with its reason."},
	"GET /v1/signals":                             {"signals", "Accepted signals from the signal store (every live or historical signal, its latest revision with its fatalities, rule and revision), oldest first; query country, type, since, until, limit, after (a page's next)."},
	"GET /v1/situations/{country}/{type}":         {"signals", "A situation's current score (country and crisis type), its threshold and the signals that contribute to it."},
	"GET /v1/situations/{country}/{type}/history": {"signals", "A situation's score over time, with the signals that moved it."},
	"GET /v1/warning/rules": {"signals", "The early-warning rules in force: the file, its version and digest, who applied it when and its revision " +
		"(revision 0: the service's own --rules file, none applied since)."},
	"POST /v1/warning/rules": {"signals", "Put early-warning rules into force without a restart (the head of department): validated with the bounds of " +
		"`warning rules validate` (400 naming line and field; nothing changes), kept in the EARLYWARNING_RULES bucket, recorded on the audit " +
		"trail's global chain (rules-changed, as the caller), and every situation re-scored under the new version (crossings raise their warnings)."},
	"POST /v1/exercises/{id}/signals": {"signals", "Send an exercise's signals: they score and raise drill crises only, never real ones (the drill coordinator's)."},
	"POST /v1/crises": {"crises", "Open a crisis (a drill when drill is set) and answer its state (201); 409 when its id is taken (ids are never " +
		"reused). Opening a real crisis needs crisis.open, a drill crisis.open-drill."},
	"GET /v1/crises": {"crises", "The crises you may see (up to your clearance; a partner: only those shared with it), newest first, filtered by the query " +
		"parameters (a saved search is its query string). A text (q) or an outcome is matched against each candidate's state (the title and outcome are " +
		"not indexed: a title is never stored in clear), so such a search reads the 500 most recent candidates the other filters select, each read of a " +
		"restricted or confidential crisis recorded in its audit trail; its rows then carry the title and outcome."},
	"GET /v1/lessons": {"crises", "Lessons recorded at closure across the closed crises you may see (up to your clearance), most recently closed first, " +
		"with each crisis's type, country, region, outcome and closing time; filtered by the query parameters. Lessons are internal: a partner " +
		"liaison is refused. Each candidate crisis is read (a restricted or confidential one's read recorded in its audit trail)."},
	"GET /v1/crises/{id}": {"crises", "One crisis's state (its stage, decisions and what they set in motion); 404 when it does not exist or is not yours to see. " +
		"A partner liaison reads the partner's view: where the crisis stands and its own organisation's role, without decisions, amounts, roster ids or signals."},
	"POST /v1/crises/{id}/decisions": {"crises", "Record a decision for the crisis's current stage (triage, good offices, ..., closure); the crisis's workflow " +
		"checks it against the stage and your roles and answers the recorded decision, or 422 naming the rule that refused it (400 for bad " +
		"input; when the decision's service refuses it, its kind of refusal: 409 for an expert booked elsewhere, 404 for what the service does not know)."},
	"POST /v1/crises/{id}/controls/{control}": {"crises", "Steer the crisis outside its normal course: escalate, de-escalate, skip or reopen a stage, " +
		"set a partner's role, raise a warning, or leave a comment on its timeline (operators and analysts). The body is the control's own message; each control needs its own action."},
	"POST /v1/crises/{id}/sharing": {"crises", "Share the crisis with partner organisations or unshare it (share, unshare, with a reason); a partner receives " +
		"its events while it is shared, and nothing after it is unshared."},
	"GET /v1/crises/{id}/report": {"crises", "The crisis's report for a hand-over: one timeline (signals, decisions and refusals, controls, sharing changes, " +
		"stages, deadline events, money, comments) with the crisis, its figures and its lessons, as JSON, CSV (the timeline, then figures and lessons) " +
		"or HTML for print. Read as the crisis is: a partner liaison gets the partner's view only (no rationale, amounts, names or comments)."},
	"GET /v1/audit/evidence/{id}": {"audit", "The crisis's evidence bundle (tar.gz: histories, audit chain, decision trail, figures, manifest) with an unsigned " +
		"manifest: demarche audit verify --bundle checks it offline (the chain inside carries the audit service's signatures)."},
	"POST /v1/audit/verify/{id}": {"audit", "Verify the crisis's audit chain now (links, hashes, signatures, head, anchors); the result is recorded on the chain " +
		"under your name and answered {kind, ok, result, principal, at}. A chain that does not verify is a result (ok false), not an error."},
	"POST /v1/audit/reconcile/{id}": {"audit", "Reconcile the crisis's workflow histories with its audit chain, and its disbursements and bookings with the " +
		"histories' decisions, as demarche audit reconcile does; the result is recorded on the chain and answered {kind, ok, result, principal, at}."},
	"GET /v1/audit/histories/{id}": {"audit", "The crisis's workflow histories (the crisis's and its stages', every run), each as temporal workflow show --output json prints it, for replay, reconciliation and evidence."},
	"POST " + codecPrefix + "{namespace}/decode": {"audit", "Temporal's remote codec: decrypt payloads for the Temporal UI (auditors and admins, " +
		"from the origins the gateway allows)."},
	"POST " + codecPrefix + "{namespace}/encode": {"audit", "Temporal's remote codec: encrypt payloads for the Temporal UI (auditors and admins, " +
		"from the origins the gateway allows)."},
	"POST " + ServicePath(natsrpc.RosterSearch):         {"roster", "Rank envoys, mediators and standby experts for a need (expertise, languages, region)."},
	"POST " + ServicePath(natsrpc.RosterExperts):        {"roster", "Every expert on the roster (crisis_id in the body is ignored)."},
	"POST " + ServicePath(natsrpc.RosterAssignments):    {"roster", "A crisis's current bookings of experts, by role."},
	"POST " + ServicePath(natsrpc.FundingBalance):       {"funding", "Each fund's balance and what it has disbursed (a fund whose ledger cannot be trusted says why instead)."},
	"POST " + ServicePath(natsrpc.FundingContribute):    {"funding", "Credit a voluntary contribution (donor, amount, currency USD, reference) to a fund, for a funding officer or fund manager: a ledger line and a record on the global audit chain. The same reference again changes nothing; bad input is refused naming the field."},
	"POST " + ServicePath(natsrpc.EarlyWarningDialogue): {"signals", "Record an early-warning dialogue held with a regional organisation of the partner registry about a situation (country, crisis type): the day, a summary and the outcome (the assessment shared), for an analyst or head of department (who is stamped from the credential); kept with the situation (its score lists them) and recorded on the global audit chain. The same dialogue again changes nothing; an unknown organisation (400) or situation (404) is refused naming the field."},
	"POST " + ServicePath(natsrpc.FundingLedger):        {"funding", "A fund's append-only ledger, line by line."},
	"POST " + ServicePath(natsrpc.PartnersList):         {"partners", "The partner organisations and what each receives (regions, countries, crisis types)."},
	"POST " + ServicePath(natsrpc.PartnersAckRole): {"partners", "A partner acknowledges its role (lead, support, ...) in a crisis shared with it; " +
		"a partner's credential acknowledges for its own organisation only."},
	"GET /v1/crises/{id}/claims": {"crises", "Who claimed the crisis's pending decisions (advisory: a claim never stops anyone holding the role from deciding), " +
		"as JSON {\"claims\": [{crisis, kind, holder, name, at, expires}], \"ttl_seconds\": N}; a lapsed claim is not listed."},
	"POST /v1/crises/{id}/claims/{kind}": {"crises", "Claim a pending decision (say you are on it), or renew your own claim: only a person holding the role the " +
		"decision waits for (403 otherwise); 404 when no such decision waits; 409 naming the holder when someone else's claim is live. " +
		"The claimant is the token's subject. It lapses after the gateway's claim TTL unless renewed or released."},
	"DELETE /v1/crises/{id}/claims/{kind}":    {"crises", "Release your own claim (204); someone else's is not yours to release (403): it lapses by itself."},
	"POST " + ServicePath(natsrpc.AuditChain): {"audit", "Read a hash-chained audit trail (the global one, or a crisis's) to verify it; the read is itself audited."},
	"POST " + ServicePath(natsrpc.AuditHeads): {"audit", "The head of every audit chain, signed when the deployment has a key: keep them to prove later that no line was changed."},
}

// paramDocs describes each path and query parameter, by name (a name means
// the same on every route).
var paramDocs = map[string]string{
	"id":        "the crisis's id (as answered by POST /v1/crises or GET /v1/crises), or the exercise's id on /v1/exercises",
	"country":   "an ISO 3166-1 alpha-2 country code (GN); as a query parameter: only that country's crises",
	"type":      "a crisis type, short value or full name (coup, CRISIS_TYPE_COUP); as a query parameter: only crises of that type",
	"control":   "the control, without its crisis. prefix: " + strings.Join(trimAll(controlNames(), "crisis."), ", "),
	"kind":      "a pending decision's kind, as the crisis's state lists it (pending_decisions[].kind)",
	"namespace": "the Temporal namespace whose payloads are coded (the deployment's, demarche by default)",
	"name":      "the schema's name: a ce-dataschema (type.googleapis.com/demarche.v1.StageEntered), a message name (demarche.v1.StageEntered) or a ce-type",
	"stage":     "only crises at this stage, short value or full name (good-offices, STAGE_GOOD_OFFICES)",
	"open":      "true: only crises not closed (the same as status=open)",
	"drills": "crises: false leaves drill crises out, only lists drills alone (by default they are listed with the real ones); " +
		"lessons: true includes drills' lessons (left out by default)",
	"limit":        "at most this many rows: crises from 1 to 5000 (default 500), lessons from 1 to 1000 (default 200)",
	"q":            "text in the crisis's id or title, any case (lessons: also in the lessons); at most 200 characters",
	"region":       "only crises of this region: africa, americas, asia-pacific, europe or middle-east",
	"severity_min": "only crises of at least this severity (1 to 5)",
	"severity_max": "only crises of at most this severity (1 to 5)",
	"status":       "open: only crises not closed; closed: only closed ones (ended, or stopped from outside)",
	"outcome":      "only closed crises with this outcome: averted, contained, escalated or unresolved",
	"opened_from":  "only crises opened on or after this day (YYYY-MM-DD, UTC) or time (RFC 3339)",
	"opened_to":    "only crises opened on or before this day (YYYY-MM-DD, UTC, the whole day) or before this time (RFC 3339)",
	"format":       "the report's format: json (the default), csv (the timeline, then figures and lessons) or html (for print; a browser's Save as PDF makes the PDF)",
}

func trimAll(ss []string, prefix string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.TrimPrefix(s, prefix)
	}
	return out
}

func docOf(rt Route) routeDoc {
	d, ok := routeDocs[rt.Method+" "+rt.Pattern]
	if !ok {
		panic(fmt.Sprintf("OpenAPI: route %s %s has no description: add its row to routeDocs (services/gateway/openapi_docs.go)", rt.Method, rt.Pattern))
	}
	return d
}

func paramDoc(name string) string {
	d, ok := paramDocs[name]
	if !ok {
		panic("OpenAPI: parameter " + name + " has no description: add it to paramDocs (services/gateway/openapi_docs.go)")
	}
	return d
}

// openAPIContact is the AsyncAPI document's contact too (contract.Contact;
// TestOpenAPIContactIsAsyncAPIs keeps them one: the gateway does not import
// services/contract, which pulls in every domain service).
func openAPIContact() map[string]any {
	return map[string]any{"name": "Démarche maintainers (the operations centre that issued your credential)"}
}

// openAPIServers are where the API answers: demarche dev's gateway, and a
// cluster's gateway behind its public URL.
func openAPIServers() []any {
	return []any{
		map[string]any{"url": "http://127.0.0.1:8080", "description": "demarche dev (port: --http-port, default 8080; bearer tokens from its dev issuer, demarche login)"},
		map[string]any{"url": "https://{gateway}", "description": "a cluster's gateway (deploy/): the host of its --public-url",
			"variables": map[string]any{"gateway": map[string]any{"default": "gateway.demarche.example.org", "description": "your gateway's public host name (deploy/k8s/gateway.yaml uses gateway.demarche.example.org)"}}},
	}
}

func openAPITagList() []any {
	out := make([]any, len(openAPITags))
	for i, t := range openAPITags {
		out[i] = map[string]any{"name": t.name, "description": t.description}
	}
	return out
}
