// Benchmark (not a test): the seed's AOTInductor path (torch 2.13, export → compile → parity) through `ttd run`
// against the same work by hand, with Inductor's cache cold and warm, interleaved; medians and ratios; the compile
// stage's own time and what its report says about the cache.
// Usage: node bench/aoti.mjs [RUNS] [RAW.json]   (default 5; `make bench` runs it after seed-pipeline.mjs). With
// BENCH_AOTI_RAW=FILE the measurements are also written to FILE; given as RAW.json, they are tabled without running.
//
// Cold means no cache at all: a fresh Inductor cache directory and a fresh TMPDIR. Inductor keeps its precompiled
// headers (about 300 MB of .gch) in /tmp/torchinductor_<user>/precompiled_headers whatever TORCHINDUCTOR_CACHE_DIR
// says, so a fresh cache directory alone is about 10 s from cold on this machine. Warm keeps both.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { median, root, secs, seedSpec, sh, startServer, ttdBin, ttdEnv } from './common.mjs';

const runs = Number(process.argv[2] ?? 5);
const environment = 'torch-2.13';
const python = join(root, '.torch', environment, 'bin', 'python');
const libtorchRunner = join(root, 'build', 'libtorch-2.13', 'ttd-libtorch-runner');
const scratch = (name) => mkdtempSync(join(tmpdir(), `ttd-bench-aoti-${name}-`));
const remove = (...dirs) => dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));

/** A place for Inductor's caches: its cache directory and a TMPDIR (for the precompiled headers). */
function inductorPlace() {
  return { cache: scratch('inductor'), tmp: scratch('tmp') };
}

// The deploy-side loads a person would do, one after another, each in an empty directory: a fresh `python -I` and the
// libtorch runner, for each format, with each build's own fuser flags (as ttd's parity does; neither build here fuses).
function deploy(dir, formats, tmp) {
  const loads = [];
  if (formats.includes('aoti')) loads.push(['model.pt2', 'aoti-references.safetensors', ['--format', 'aoti']]);
  if (formats.includes('torchscript')) loads.push(['model.pt', 'references.safetensors', []]);
  for (const [model, refs, flags] of loads) {
    const where = mkdtempSync(join(tmp, 'deploy-'));
    copyFileSync(join(dir, model), join(where, model));
    copyFileSync(join(dir, refs), join(where, 'references.safetensors'));
    copyFileSync(join(root, 'runtimes', 'python', 'ttd_parity_runner.py'), join(where, 'runner.py'));
    const args = ['--model', model, '--references', 'references.safetensors', '--out', 'out.safetensors', '--threads', '1', ...flags];
    const env = { ...process.env, TMPDIR: tmp };
    sh(python, ['-I', 'runner.py', ...args], { cwd: where, env });
    sh(libtorchRunner, args, { cwd: where, env });
    remove(where);
  }
}

// The baseline: by_hand_aoti.py (train, export, checks, compile, checks), then the deploy-side loads.
function byHand(formats, place) {
  const dir = scratch('hand');
  const t0 = performance.now();
  const r = sh(python, [join(root, 'bench', 'by_hand_aoti.py'), dir, ...(formats.includes('torchscript') ? ['--torchscript'] : [])], {
    env: { ...process.env, TORCHINDUCTOR_CACHE_DIR: place.cache, TMPDIR: place.tmp },
  });
  deploy(dir, formats, place.tmp);
  const ms = performance.now() - t0;
  remove(dir);
  return { ms, compileMs: JSON.parse(r.stdout.trim().split('\n').pop()).compile_ms };
}

// `ttd run` end to end as a user runs it, then the compile report of the version it promoted (`ttd show --json`).
function viaTtd(address, spec, home, place, extra = []) {
  const env = ttdEnv(address, home, { TTD_INDUCTOR_CACHE: place.cache, TMPDIR: place.tmp });
  const t0 = performance.now();
  const r = sh(process.execPath, [ttdBin, 'run', spec, '--json', ...extra], { env });
  const ms = performance.now() - t0;
  const result = JSON.parse(r.stdout);
  if (result.status !== 'promoted') throw new Error(`ttd run ended ${result.status}`);
  const shown = JSON.parse(sh(process.execPath, [ttdBin, 'show', `${result.model}@production`, '--json'], { env }).stdout);
  return { ms, result: { timings: result.timings, torchTimings: result.torchTimings }, report: shown.stages.compile };
}

const ratio = (a, b) => `**${(a / b).toFixed(2)}×**`;
const ms = (v) => (v === undefined ? '—' : `${Math.round(v)} ms`);

async function main() {
  if (!existsSync(libtorchRunner) || !existsSync(python))
    throw new Error('run make setup first (the torch-2.13 environment and its libtorch runner)');
  if (process.argv[3]) return report(JSON.parse(readFileSync(process.argv[3], 'utf8')));
  const server = await startServer();
  const kept = [];
  try {
    const { address } = server;
    const specDir = scratch('spec');
    kept.push(specDir);
    const aotiSpec = seedSpec(specDir, [`environment: ${environment}`, 'formats: [aoti]']);
    const bothSpec = seedSpec(mkdtempSync(join(specDir, 'both-')), [`environment: ${environment}`, 'formats: [torchscript, aoti]']);
    // Warm places, one each for the baseline and ttd, warmed up once; the step-cache home is filled by its warm-up.
    const handWarm = inductorPlace();
    const ttdWarm = inductorPlace();
    const cachedHome = scratch('home');
    kept.push(handWarm.cache, handWarm.tmp, ttdWarm.cache, ttdWarm.tmp, cachedHome);
    byHand(['aoti'], handWarm);
    viaTtd(address, aotiSpec, cachedHome, ttdWarm); // also the server's first namespace use
    const m = { handCold: [], handWarm: [], ttdCold: [], ttdWarm: [], ttdCached: [], handBoth: [], ttdBoth: [] };
    for (let i = 0; i < runs; i++) {
      const cold = inductorPlace();
      m.handCold.push(byHand(['aoti'], cold));
      remove(cold.cache, cold.tmp);
      const cold2 = inductorPlace();
      const home = scratch('home');
      m.ttdCold.push(viaTtd(address, aotiSpec, home, cold2, ['--no-cache']));
      remove(cold2.cache, cold2.tmp, home);
      m.handWarm.push(byHand(['aoti'], handWarm));
      const home2 = scratch('home');
      m.ttdWarm.push(viaTtd(address, aotiSpec, home2, ttdWarm, ['--no-cache']));
      remove(home2);
      m.ttdCached.push(viaTtd(address, aotiSpec, cachedHome, ttdWarm));
      m.handBoth.push(byHand(['torchscript', 'aoti'], handWarm));
      const home3 = scratch('home');
      m.ttdBoth.push(viaTtd(address, bothSpec, home3, ttdWarm, ['--no-cache']));
      remove(home3);
    }
    if (process.env.BENCH_AOTI_RAW) writeFileSync(process.env.BENCH_AOTI_RAW, JSON.stringify(m));
    report(m);
  } finally {
    server.stop();
    remove(...kept);
  }
}

// The tables, from the measurements.
function report(m) {
  const runs = m.handCold.length;
  const med = (xs, f = (x) => x.ms) => median(xs.map(f));
  const torchVersion = sh(python, ['-c', 'import torch; print(torch.__version__)']).stdout.trim();
  const lines = [];
  lines.push(
    `machine: ${cpus().length} × ${cpus()[0].model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; ${environment} (torch ${torchVersion}); ${runs} runs each, interleaved`,
  );
  lines.push('');
  lines.push('| scenario | by hand median | ttd median | ratio |');
  lines.push('|---|---|---|---|');
  const row = (name, hand, ttd) => lines.push(`| ${name} | ${secs(hand)} | ${secs(ttd)} | ${ratio(ttd, hand)} |`);
  row('`formats: [aoti]`, Inductor cache cold (`ttd run --no-cache`)', med(m.handCold), med(m.ttdCold));
  row('`formats: [aoti]`, Inductor cache warm (`ttd run --no-cache`)', med(m.handWarm), med(m.ttdWarm));
  row('`formats: [aoti]`, same inputs again (step cache; against by hand, warm)', med(m.handWarm), med(m.ttdCached));
  row('`formats: [torchscript, aoti]`, Inductor cache warm (`ttd run --no-cache`)', med(m.handBoth), med(m.ttdBoth));
  lines.push('');
  lines.push(
    `the compile stage, medians of ${runs}: by hand the \`aoti_compile_and_package\` call; ttd the stage (\`timings.compile\`), the torch op inside it (\`torchTimings.compile\`), and the stored report (\`ttd show --json\` → \`stages.compile\`)`,
  );
  lines.push('');
  lines.push(
    '| Inductor cache | by hand compile | ttd `timings.compile` | ttd `torchTimings.compile` | report `compile_ms` | report `cache_hit` | `kernel_count` |',
  );
  lines.push('|---|---|---|---|---|---|---|');
  const hits = (xs) => [...new Set(xs.map((x) => String(x.report.cache_hit)))].join('/');
  const compileRow = (name, hand, ttd) =>
    lines.push(
      `| ${name} | ${hand ? ms(med(hand, (x) => x.compileMs)) : '—'} | ${ms(med(ttd, (x) => x.result.timings.compile))} | ${ttd.every((x) => x.result.torchTimings?.compile === undefined) ? '— (skipped)' : ms(med(ttd.filter((x) => x.result.torchTimings?.compile !== undefined), (x) => x.result.torchTimings.compile))} | ${ms(med(ttd, (x) => x.report.compile_ms))} | ${hits(ttd)} | ${[...new Set(ttd.map((x) => x.report.kernel_count))].join('/')} |`,
    );
  compileRow('cold', m.handCold, m.ttdCold);
  compileRow('warm', m.handWarm, m.ttdWarm);
  compileRow("step cache (the stored version's report)", undefined, m.ttdCached);
  compileRow('warm, `[torchscript, aoti]`', m.handBoth, m.ttdBoth);
  lines.push('');
  for (const [name, xs] of [
    ['cold', m.ttdCold],
    ['warm', m.ttdWarm],
    ['step cache', m.ttdCached],
    ['warm, [torchscript, aoti]', m.ttdBoth],
  ]) {
    const stages = Object.keys(xs[0].result.timings);
    const outside = med(xs, (x) => x.ms - Object.values(x.result.timings).reduce((a, b) => a + b, 0));
    lines.push(
      `ttd stage medians (${name}): ${stages.map((s) => `${s} ${Math.round(med(xs, (x) => x.result.timings[s]))} ms`).join(', ')}; outside the stages ${Math.round(outside)} ms`,
    );
  }
  console.log(lines.join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
