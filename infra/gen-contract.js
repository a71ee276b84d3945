// Writes the torch ops' contract (lib/contract/ops.ts) as JSON Schema for the torch side to check requests and results
// against: runtimes/python/ttd_torch/contract.json; and the files generated from the code catalog
// (lib/contract/codes.ts): the torch side's runtimes/python/ttd_torch/codes.py and docs/codes.md. Run after tsc;
// `make setup` does. The files are committed, and unit tests fail when they differ from what the sources give.
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { contractJsonSchema } = require('../dist/lib/contract/ops');
const { CODE_FILES, codesTable, pythonCodes } = require('../dist/lib/contract/code-files');

const root = join(__dirname, '..');
writeFileSync(join(root, 'runtimes', 'python', 'ttd_torch', 'contract.json'), `${JSON.stringify(contractJsonSchema(), null, 2)}\n`);
writeFileSync(join(root, CODE_FILES.python), pythonCodes());
writeFileSync(join(root, CODE_FILES.docs), codesTable());
