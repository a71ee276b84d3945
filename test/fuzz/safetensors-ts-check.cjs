// The fuzzer's TypeScript side: reads inputs from stdin (4-byte little-endian length, then the bytes) and answers each
// with one JSON line, the verdict of lib/parity/safetensors.ts (built into dist/ by `make setup`).
'use strict';
const { join } = require('node:path');
const { parseSafetensors, SafetensorsError } = require(join(__dirname, '..', '..', 'dist', 'lib', 'parity', 'safetensors.js'));

function verdict(bytes) {
  try {
    const file = parseSafetensors(bytes, 'input');
    const tensors = {};
    for (const [name, t] of file.tensors) tensors[name] = { dtype: t.dtype, shape: t.shape, numel: t.values.length };
    return { ok: true, tensors, metadata: file.metadata };
  } catch (err) {
    if (err instanceof SafetensorsError) return { ok: false, code: err.code, message: err.message };
    return { ok: false, code: `crash: ${err && err.stack}` };
  }
}

let pending = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  const out = [];
  while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32LE(0)) {
    const n = pending.readUInt32LE(0);
    out.push(JSON.stringify(verdict(Buffer.from(pending.subarray(4, 4 + n)))));
    pending = pending.subarray(4 + n);
  }
  if (out.length) process.stdout.write(out.join('\n') + '\n');
});
