// Benchmark (not a test): what the sandbox costs per stage. The seed pipeline (torch 1.13, TorchScript) and its
// AOTInductor path (torch 2.13, export → compile) through `ttd run --no-cache`, with TTD_SANDBOX=on and off
// interleaved in one run; medians of each stage's wall time and the on/off ratio.
// Usage: node bench/sandbox.mjs [RUNS] [--cold]   (default 3). --cold adds one compile per mode with an empty
// Inductor cache (the precompiled headers rebuilt).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, root, sh, startServer, ttdBin, ttdEnv } from './common.mjs';

const runs = Number(process.argv[2] ?? 3);
const cold = process.argv.includes('--cold');
const scratch = (name) => mkdtempSync(join(tmpdir(), `ttd-bench-sandbox-${name}-`));
const MODES = ['off', 'on'];

// The seed's spec in `dir` with its formats replaced and an environment named, its model file by absolute path.
function spec(dir, environment, formats) {
  const seed = join(root, 'examples', 'seed-mlp');
  const text = readFileSync(join(seed, 'pipeline.yaml'), 'utf8')
    .replace(/^model: .*$/m, `model: ${join(seed, 'model.py')}`)
    .replace(/^formats: .*$/m, `formats: [${formats}]\nenvironment: ${environment}`);
  const path = join(mkdtempSync(join(dir, 'spec-')), 'pipeline.yaml');
  writeFileSync(path, text);
  return path;
}

// One `ttd run` in a fresh home; its stage timings (ms).
function run(address, spec, sandbox, inductorCache) {
  const home = scratch('home');
  try {
    const env = ttdEnv(address, home, { TTD_SANDBOX: sandbox, TTD_INDUCTOR_CACHE: inductorCache });
    const t0 = performance.now();
    const r = sh(process.execPath, [ttdBin, 'run', spec, '--json', '--no-cache'], { env });
    const total = performance.now() - t0;
    const result = JSON.parse(r.stdout);
    if (result.status !== 'promoted') throw new Error(`ttd run (TTD_SANDBOX=${sandbox}) ended ${result.status}: ${r.stdout}`);
    return { ...result.timings, total };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

function table(title, samples) {
  const stages = Object.keys(samples.off[0]);
  console.log(`\n${title} (median of ${samples.off.length})\n`);
  console.log('| stage | sandbox off | sandbox on | on/off |');
  console.log('|---|---|---|---|');
  for (const stage of stages) {
    const off = median(samples.off.map((s) => s[stage]));
    const on = median(samples.on.map((s) => s[stage]));
    console.log(`| ${stage} | ${Math.round(off)} ms | ${Math.round(on)} ms | ${(on / off).toFixed(2)}× |`);
  }
}

async function main() {
  const server = await startServer();
  const dirs = [];
  try {
    const specDir = scratch('spec');
    dirs.push(specDir);
    const seed = spec(specDir, 'torch-1.13', 'torchscript');
    const aoti = spec(specDir, 'torch-2.13', 'aoti');
    const caches = { off: scratch('inductor-off'), on: scratch('inductor-on') };
    dirs.push(caches.off, caches.on);
    // Warm-up: the server's first use, and each mode's Inductor cache (precompiled headers included).
    for (const mode of MODES) run(server.address, aoti, mode, caches[mode]);
    const seedRuns = { off: [], on: [] };
    const aotiRuns = { off: [], on: [] };
    for (let i = 0; i < runs; i++) {
      for (const mode of i % 2 ? [...MODES].reverse() : MODES) {
        seedRuns[mode].push(run(server.address, seed, mode, caches[mode]));
        aotiRuns[mode].push(run(server.address, aoti, mode, caches[mode]));
      }
    }
    table('Seed pipeline, torch 1.13 (stage wall time)', seedRuns);
    table('AOTInductor path, torch 2.13, Inductor cache warm (stage wall time)', aotiRuns);
    if (cold) {
      const coldRuns = { off: [], on: [] };
      for (const mode of MODES) {
        const empty = scratch(`inductor-cold-${mode}`);
        coldRuns[mode].push(run(server.address, aoti, mode, empty));
        rmSync(empty, { recursive: true, force: true });
      }
      table('AOTInductor path, Inductor cache empty (one run each)', coldRuns);
    }
  } finally {
    server.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
