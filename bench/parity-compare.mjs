// Benchmark (not a test): the parity stage's own work on one runtime's outputs, a language model's logits in size:
// read the references and the outputs (safetensors) and compare them (lib/parity). This checkout against a baseline
// checkout, interleaved, each measurement in a Node process of its own so that its peak RSS is the comparison's.
// Usage: node bench/parity-compare.mjs [MILLION_ELEMENTS] [RUNS] [BASELINE_CHECKOUT]   (default 103, 3 runs, no baseline)
// The baseline needs its dist/ built (npx tsc there). The default size is a GPT-2 corpus run's compared outputs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, root, sh } from './common.mjs';

const millions = Number(process.argv[2] ?? 103);
const runs = Number(process.argv[3] ?? 3);
const baseline = process.argv[4];
const checkouts = baseline ? { before: baseline, after: root } : { after: root };
const scratch = mkdtempSync(join(tmpdir(), 'ttd-bench-parity-'));

// One F32 output of n elements (and a small input) as a references file or a runtime's outputs, written by hand.
function writeOutputs(path, n, seed, jitter) {
  const input = new Float32Array(16).fill(1);
  const output = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    output[i] = (x / 2147483648) * 20 - 10 + (jitter ? ((i % 7) - 3) * 1e-7 : 0);
  }
  const header = {
    __metadata__: { cases: 'validation' },
    'validation/input/0': { dtype: 'F32', shape: [16], data_offsets: [0, 64] },
    'validation/output/0': { dtype: 'F32', shape: [n], data_offsets: [64, 64 + n * 4] },
  };
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, Buffer.from(input.buffer), Buffer.from(output.buffer)]));
}

// What check-parity.ts does with one runtime's outputs, in a fresh process: { ms, maxRssMb, passed }.
const CHILD = `
const [checkout, refs, outs] = process.argv.slice(1);
const { readSafetensors } = await import(checkout + '/dist/lib/parity/safetensors.js');
const { compareOutputs } = await import(checkout + '/dist/lib/parity/parity.js');
const t = performance.now();
const cmp = compareOutputs(await readSafetensors(refs), await readSafetensors(outs), 1e-5, 1e-4, 'python');
const ms = performance.now() - t;
console.log(JSON.stringify({ ms, maxRssMb: process.resourceUsage().maxRSS / 1024, passed: cmp.passed }));
`;

function main() {
  const n = Math.round(millions * 1e6);
  const refs = join(scratch, 'references.safetensors');
  const outs = join(scratch, 'outputs.safetensors');
  writeOutputs(refs, n, 7, false);
  writeOutputs(outs, n, 7, true);
  const results = {};
  for (let run = 0; run < runs; run++) {
    const order = Object.entries(checkouts);
    if (run % 2) order.reverse();
    for (const [name, checkout] of order) {
      const r = sh(process.execPath, ['--input-type=module', '-e', CHILD, checkout, refs, outs]);
      const out = JSON.parse(r.stdout.trim().split('\n').pop());
      if (!out.passed) throw new Error(`${name}: the comparison failed`);
      (results[name] ??= []).push(out);
    }
  }
  console.log(`parity comparison of ${millions} M float32 elements, ${runs} runs, ${cpus().length} × ${cpus()[0].model}; medians:`);
  const after = median(results.after.map((r) => r.ms));
  for (const [name, rs] of Object.entries(results)) {
    const ms = median(rs.map((r) => r.ms));
    const ratio = name === 'after' || !results.before ? '' : ` (after: ${(after / ms).toFixed(2)}×)`;
    console.log(`  ${name}: ${(ms / 1000).toFixed(2)} s, peak RSS ${Math.round(median(rs.map((r) => r.maxRssMb)))} MiB${ratio}`);
  }
}

try {
  main();
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
