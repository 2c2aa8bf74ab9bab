// Validates docs/asyncapi.json with the official AsyncAPI parser
// (@asyncapi/parser, the one `asyncapi validate` runs, with its default
// ruleset) and prints every diagnostic. Exit 1 on any error or warning, so
// the contract stays at 0 errors and 0 warnings (make contract-lint).
// Used instead of @asyncapi/cli: its current releases need Node >= 24, and
// it pulls in hundreds of packages for the one call made here.
'use strict';
const fs = require('fs');
const path = require('path');
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');

const names = { [DiagnosticSeverity.Error]: 'error', [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info', [DiagnosticSeverity.Hint]: 'hint' };

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node asyncapi-validate.js <asyncapi.json>');
    process.exit(2);
  }
  const source = path.resolve(file);
  const diagnostics = await new Parser().validate(fs.readFileSync(source, 'utf8'), { source });
  const counts = { error: 0, warning: 0, info: 0, hint: 0 };
  for (const d of diagnostics) {
    const sev = names[d.severity] || String(d.severity);
    counts[sev] = (counts[sev] || 0) + 1;
    const at = d.range ? `${d.range.start.line + 1}:${d.range.start.character + 1}` : '-';
    console.log(`${file}:${at} ${sev} ${d.code} ${JSON.stringify(d.message)} at ${(d.path || []).join('.')}`);
  }
  console.log(`${file}: ${counts.error} errors, ${counts.warning} warnings, ${counts.info} infos, ${counts.hint} hints`);
  process.exit(counts.error + counts.warning > 0 ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
