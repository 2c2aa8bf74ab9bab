#!/usr/bin/env node
// A partner organisation's subscriber to its Démarche feed, in Node.js,
// written from the published contract alone:
//   - docs/asyncapi.json, components.securitySchemes.nats.x-demarche-identities
//     ["partner-{ORG}"]: user demarche-partner-<ORG>, inbox prefix
//     _INBOX_partner-<ORG>, ONE durable consumer named <ORG> on the stream
//     DEMARCHE_PARTNER_<ORG> with the one filter subject
//     demarche.partner.<ORG>.>, no $JS.API.INFO (so checkAPI: false);
//   - docs/events.md "Access and delivery": the .creds file is one line
//     demarche-<identity>:<password>; de-duplicate on ce-id (a partner's
//     Nats-Msg-Id is <ORG>-<ce-id>, not the id to de-duplicate on); per-crisis
//     order after a crash needs ack_policy explicit and max_ack_pending 1,
//     acknowledging each event after handling it;
//   - the schema route over NATS, demarche.schema.get with
//     {"name": <ce-dataschema>, "format": "descriptor"}: the binary
//     google.protobuf.FileDescriptorSet, the message named by the reply's
//     Demarche-Schema-Message header.
//
//   node subscriber.mjs --server nats://127.0.0.1:4222 \
//     --creds .demarche/nats-credentials/partner-ECOWAS.creds --org ECOWAS \
//     --state ecowas-handled.jsonl
//
// Handling an event here means recording it: one JSON line
// {"id","type","crisis","subject","seq","data"} appended (and fsynced) to the
// --state journal, then printed on stdout. The journal is also the record of
// the ce-ids handled: a restart reads it and acknowledges a repeat without
// handling it again. One write of one line is the handling and its record at
// once, so a kill -9 at any point neither loses an event (it was not
// acknowledged: it comes back) nor handles one twice (its id is in the
// journal). A line cut by a crash mid-write is ignored on restart (that event
// was not acknowledged either). Lag (the consumer's num_pending) goes to
// stderr as "lag: N pending".
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, truncateSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { AckPolicy, DeliverPolicy, connect, headers as natsHeaders, nanos } from "nats";
import { createFileRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const usage = `usage: node subscriber.mjs --server URL --creds FILE --org ORG --state FILE
  --server     NATS URL(s), comma-separated (dev: nats://127.0.0.1:4222)
  --creds      the partner's credentials file, one line demarche-partner-<ORG>:<password>
  --org        the partner organisation, e.g. ECOWAS (its stream, consumer and subjects follow)
  --state      journal of the events handled (JSON lines); kept across restarts
  --ack-wait   seconds before an unacknowledged event is redelivered (default 30;
               a crash stalls delivery this long: choose it a little above your
               longest handling time)
  --lag-every  seconds between lag reports on stderr (default 5)
  --hold-after N  (for crash drills) after handling the Nth event of this run, hold it
               unacknowledged forever: kill the process then, and the restarted one
               gets that event again and acknowledges it without handling it twice`;

const { values: opt } = parseArgs({
  options: {
    server: { type: "string", default: "nats://127.0.0.1:4222" },
    creds: { type: "string" },
    org: { type: "string" },
    state: { type: "string" },
    "ack-wait": { type: "string", default: "30" },
    "lag-every": { type: "string", default: "5" },
    "hold-after": { type: "string", default: "0" },
    help: { type: "boolean", short: "h" },
  },
});
if (opt.help) {
  console.log(usage);
  process.exit(0);
}
for (const f of ["creds", "org", "state"]) {
  if (!opt[f]) fail(`--${f} is required\n${usage}`);
}
const ackWait = Number(opt["ack-wait"]), lagEvery = Number(opt["lag-every"]);
if (!(ackWait > 0)) fail(`--ack-wait: ${opt["ack-wait"]} is not a positive number of seconds`);
const holdAfter = Number(opt["hold-after"]);
if (!Number.isInteger(holdAfter) || holdAfter < 0) fail(`--hold-after: ${opt["hold-after"]} is not a count of events`);
if (!(lagEvery > 0)) fail(`--lag-every: ${opt["lag-every"]} is not a positive number of seconds`);
if (!/^[A-Z][A-Z0-9]*$/.test(opt.org)) fail(`--org: ${opt.org} is not a partner code (upper-case letters and digits, e.g. ECOWAS)`);

function fail(msg) {
  process.stderr.write(`subscriber-node: ${msg}\n`);
  process.exit(2);
}
const log = (msg) => process.stderr.write(`${msg}\n`);

// Names, all from x-demarche-identities["partner-{ORG}"].
const identity = `partner-${opt.org}`;
const stream = `DEMARCHE_PARTNER_${opt.org}`;
const durable = opt.org;
const filter = `demarche.partner.${opt.org}.>`;

// The credentials file: "one line demarche-<identity>:<password>".
const credLine = readFileSync(opt.creds, "utf8").split("\n").map((l) => l.trim()).find((l) => l !== "");
const colon = credLine ? credLine.indexOf(":") : -1;
if (colon <= 0) fail(`--creds ${opt.creds}: want one line demarche-${identity}:<password>`);
const user = credLine.slice(0, colon), pass = credLine.slice(colon + 1);
if (user !== `demarche-${identity}`) fail(`--creds ${opt.creds} is ${user}'s, not demarche-${identity}'s (--org ${opt.org})`);

// The journal: ids handled before this run.
const seen = new Set();
if (existsSync(opt.state)) {
  const text = readFileSync(opt.state, "utf8");
  // A line cut by a crash mid-write is cut off, so the next line starts on its own.
  if (text !== "" && !text.endsWith("\n")) truncateSync(opt.state, Buffer.byteLength(text.slice(0, text.lastIndexOf("\n") + 1)));
  for (const l of text.split("\n")) {
    if (!l) continue;
    try {
      seen.add(JSON.parse(l).id);
    } catch {
      // A line cut by a crash mid-write: its event was not acknowledged and comes back.
    }
  }
}
const journal = openSync(opt.state, "a");

const nc = await connect({ servers: opt.server.split(","), user, pass, inboxPrefix: `_INBOX_${identity}`, name: `subscriber-node ${identity}` });
log(`connected to ${nc.getServer()} as ${user}; ${seen.size} events handled before`);
// The partner may not ask for account info ($JS.API.INFO): checkAPI false.
const jsm = await nc.jetstreamManager({ checkAPI: false });
const js = nc.jetstream({ checkAPI: false });

// The one durable consumer, created (or its settings brought back) under the
// documented name with the documented filter. max_ack_pending 1: the next
// event is delivered only once this one is acknowledged, so after a crash the
// unacknowledged one is redelivered first and nothing of its crisis overtakes it.
await jsm.consumers.add(stream, {
  durable_name: durable,
  filter_subject: filter,
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.All,
  max_ack_pending: 1,
  ack_wait: nanos(ackWait * 1000),
}, "");
const consumer = await js.consumers.get(stream, durable);

// Descriptor sets by ce-dataschema, fetched once each over NATS.
const schemas = new Map();
async function schemaFor(dataschema) {
  let s = schemas.get(dataschema);
  if (s) return s;
  const h = natsHeaders();
  h.set("Content-Type", "application/json");
  const reply = await nc.request("demarche.schema.get", JSON.stringify({ name: dataschema, format: "descriptor" }), { timeout: 10000, headers: h });
  const code = reply.headers?.get("Nats-Service-Error-Code");
  if (code) throw new Error(`demarche.schema.get ${dataschema}: ${code} ${reply.headers.get("Nats-Service-Error")}`);
  const message = reply.headers?.get("Demarche-Schema-Message");
  if (!message) throw new Error(`demarche.schema.get ${dataschema}: no Demarche-Schema-Message header`);
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, reply.data));
  const desc = registry.getMessage(message);
  if (!desc) throw new Error(`demarche.schema.get ${dataschema}: ${message} is not in the descriptor set`);
  s = { registry, desc };
  schemas.set(dataschema, s);
  log(`schema: ${dataschema} -> ${message}`);
  return s;
}

let handledThisRun = 0;
async function handle(m) {
  const h = m.headers;
  const id = h?.get("ce-id");
  if (!id) {
    // Not a Démarche event: nothing to handle; acknowledged so it does not block the feed.
    log(`skipped seq ${m.seq} on ${m.subject}: no ce-id`);
    await m.ackAck();
    return;
  }
  if (seen.has(id)) {
    log(`duplicate ${id} (seq ${m.seq}, delivery ${m.info.redeliveryCount}): acknowledged, not handled again`);
    await m.ackAck();
    return;
  }
  const { registry, desc } = await schemaFor(h.get("ce-dataschema"));
  const data = toJson(desc, fromBinary(desc, m.data), { registry });
  const line = JSON.stringify({ id, type: h.get("ce-type"), crisis: h.get("ce-subject"), subject: m.subject, seq: m.seq, data });
  writeSync(journal, line + "\n");
  fsyncSync(journal);
  seen.add(id);
  writeSync(1, line + "\n");
  if (holdAfter > 0 && ++handledThisRun === holdAfter) {
    // The worst moment for a crash: handled and recorded, not acknowledged.
    log(`holding ${id} unacknowledged (--hold-after ${holdAfter}): kill me now`);
    await new Promise(() => {});
  }
  // Wait for the server to confirm: the next event comes only after it.
  await m.ackAck();
}

async function reportLag() {
  try {
    const info = await consumer.info();
    log(`lag: ${info.num_pending} pending, ${info.num_ack_pending} in flight`);
  } catch (e) {
    log(`lag: unknown (${e.message})`);
  }
}
const lagTimer = setInterval(reportLag, lagEvery * 1000);
await reportLag();

let stopping = false;
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    stopping = true;
  });
}
while (!stopping) {
  const m = await consumer.next({ expires: 2000 });
  if (!m) continue;
  try {
    await handle(m);
  } catch (e) {
    // Not handled, not recorded: asked again after 5 s (and nothing of the
    // feed overtakes it, max_ack_pending being 1).
    log(`error: seq ${m.seq} ${m.subject}: ${e.message}`);
    m.nak(5000);
  }
}
clearInterval(lagTimer);
await reportLag();
closeSync(journal);
await nc.drain();
