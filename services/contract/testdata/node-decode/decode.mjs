// Decodes Démarche events with the schema service's answers, using standard
// non-Go libraries only, as a partner's engineer would: @bufbuild/protobuf
// for the google.protobuf.FileDescriptorSet (binary, and canonical protobuf
// JSON), ajv (JSON Schema 2020-12) for the JSON Schema.
//
//   node decode.mjs cases.json
//
// cases.json: [{format, contentType, message, schema (base64), wire (base64:
// the event's binary body), want (the event's protobuf JSON)}]. Prints one
// line per case and "N passed, M failed"; exits 1 on any failure.
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { createFileRegistry, fromBinary, fromJson, toJson } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import Ajv2020 from "ajv/dist/2020.js";

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
let passed = 0, failed = 0;

function decode(c) {
  const schema = Buffer.from(c.schema, "base64");
  if (c.format === "jsonschema") {
    // Formats such as int64 are annotations here (not asserted), as in 2020-12.
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    const validate = ajv.compile(JSON.parse(schema.toString("utf8")));
    if (!validate(c.want)) {
      throw new Error("the JSON Schema refuses the event: " + ajv.errorsText(validate.errors));
    }
    if (validate({ ...c.want, noSuchField: true })) {
      throw new Error("the JSON Schema accepts a field the message does not have");
    }
    return;
  }
  const set = c.format === "descriptor"
    ? fromBinary(FileDescriptorSetSchema, new Uint8Array(schema))
    : fromJson(FileDescriptorSetSchema, JSON.parse(schema.toString("utf8")));
  const registry = createFileRegistry(set);
  const desc = registry.getMessage(c.message);
  if (!desc) throw new Error(`${c.message} is not in the descriptor set`);
  const msg = fromBinary(desc, new Uint8Array(Buffer.from(c.wire, "base64")), { readUnknownFields: true });
  if (msg.$unknown && msg.$unknown.length > 0) {
    throw new Error(`${msg.$unknown.length} fields of the event are unknown to the schema`);
  }
  const got = toJson(desc, msg, { registry });
  if (!isDeepStrictEqual(got, c.want)) {
    throw new Error(`decoded ${JSON.stringify(got)}, want ${JSON.stringify(c.want)}`);
  }
}

for (const c of cases) {
  try {
    decode(c);
    passed++;
    console.log(`ok   ${c.format} ${c.message}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${c.format} ${c.message}: ${e.message}`);
  }
}
console.log(`decode: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
