// Writes the torch ops' contract (lib/contract/ops.ts) as JSON Schema for the torch side to check requests and results
// against: runtimes/python/ttd_torch/contract.json. Run after tsc; `make setup` does. The file is committed, and a
// unit test fails when it differs from what the schemas give.
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { contractJsonSchema } = require('../dist/lib/contract/ops');

const out = join(__dirname, '..', 'runtimes', 'python', 'ttd_torch', 'contract.json');
writeFileSync(out, `${JSON.stringify(contractJsonSchema(), null, 2)}\n`);
