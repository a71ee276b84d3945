// Benchmarks (not tests): the seed pipeline through `ttd run` against the same work done by hand, interleaved,
// medians and ratios; per-stage orchestration overhead. Many pipelines at once on one worker: bench/capacity.mjs.
// Usage: node bench/seed-pipeline.mjs [RUNS]   (default 5; `make bench`)
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { median, root, secs, seedSpec, sh, startServer, ttdBin, ttdEnv } from './common.mjs';

const runs = Number(process.argv[2] ?? 5);
const python = '/usr/bin/python3';
// The seed, pinned to the environment of the baseline (Debian's torch 1.13 and the libtorch runner built against it):
// without `environment:` a run takes the newest installed (torch 2.13), and the ratio would compare two torches. The
// baseline does TorchScript only, and torch 1.13 cannot export: the seed's AOTInductor format is left out (bench/aoti.mjs).
const specDir = mkdtempSync(join(tmpdir(), 'ttd-bench-spec-'));
const specPath = seedSpec(specDir, ['environment: torch-1.13', 'formats: [torchscript]']);

// The baseline: one plain script (train, trace, every check ttd makes, save), then the deploy-side loads a person
// would do one after another: a fresh `python -I` and the libtorch runner, each with its build's own fuser flags (as
// ttd's parity does: neither build here has LLVM, so neither fuses).
function byHand() {
  const dir = mkdtempSync(join(tmpdir(), 'ttd-bench-hand-'));
  const t0 = performance.now();
  sh(python, [join(root, 'bench', 'by_hand.py'), dir]);
  for (const fuser of [false]) {
    const deploy = mkdtempSync(join(tmpdir(), 'ttd-bench-deploy-'));
    for (const f of ['model.pt', 'references.safetensors']) copyFileSync(join(dir, f), join(deploy, f));
    copyFileSync(join(root, 'runtimes', 'python', 'ttd_parity_runner.py'), join(deploy, 'runner.py'));
    const args = ['--model', 'model.pt', '--references', 'references.safetensors', '--out', 'out.safetensors', '--threads', '1', ...(fuser ? ['--fuser'] : [])];
    sh(python, ['-I', 'runner.py', ...args], { cwd: deploy });
    sh(join(root, 'build', 'libtorch', 'ttd-libtorch-runner'), args, { cwd: deploy });
    rmSync(deploy, { recursive: true, force: true });
  }
  const ms = performance.now() - t0;
  rmSync(dir, { recursive: true, force: true });
  return ms;
}

// `ttd run` end to end as a user runs it (node start, in-process workers, the fork server's import torch included).
function viaTtd(address, home, extra = []) {
  const t0 = performance.now();
  const r = sh(process.execPath, [ttdBin, 'run', specPath, '--json', ...extra], { env: ttdEnv(address, home) });
  const ms = performance.now() - t0;
  const result = JSON.parse(r.stdout);
  if (result.status !== 'promoted') throw new Error(`ttd run ended ${result.status}`);
  return { ms, result };
}

async function main() {
  if (!existsSync(join(root, 'build', 'libtorch', 'ttd-libtorch-runner'))) throw new Error('run make setup first');
  const server = await startServer();
  try {
    const address = server.address;
    const cacheHome = mkdtempSync(join(tmpdir(), 'ttd-bench-cache-'));
    viaTtd(address, cacheHome); // warm-up (the server's first namespace use), and fills cacheHome's step cache
    const hand = [];
    const cold = [];
    const warm = [];
    for (let i = 0; i < runs; i++) {
      hand.push(byHand());
      const home = mkdtempSync(join(tmpdir(), 'ttd-bench-home-'));
      cold.push(viaTtd(address, home, ['--no-cache']));
      rmSync(home, { recursive: true, force: true });
      warm.push(viaTtd(address, cacheHome));
    }
    rmSync(cacheHome, { recursive: true, force: true });
    const h = median(hand);
    const c = median(cold.map((r) => r.ms));
    const w = median(warm.map((r) => r.ms));
    const torchVersion = sh(python, ['-c', 'import torch; print(torch.__version__)']).stdout.trim();
    const lines = [];
    lines.push(`machine: ${cpus().length} × ${cpus()[0].model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; torch ${torchVersion}; ${runs} runs each, interleaved`);
    lines.push('');
    lines.push('| scenario | baseline median | ttd median | ratio |');
    lines.push('|---|---|---|---|');
    lines.push(`| seed pipeline, every stage worked (\`ttd run --no-cache\`) | ${secs(h)} | ${secs(c)} | ${(c / h).toFixed(2)}× |`);
    lines.push(`| seed pipeline, same inputs again (step cache) | ${secs(h)} | ${secs(w)} | ${(w / h).toFixed(2)}× |`);

    // Overhead per stage: stage time minus the torch work inside it (torch stages), the whole stage (store, promote).
    const stages = Object.keys(cold[0].result.timings);
    const overhead = {};
    for (const s of stages) overhead[s] = cold.map((r) => r.result.timings[s] - (r.result.torchTimings?.[s] ?? 0));
    const perStage = stages.map((s) => [s, median(overhead[s])]);
    const all = stages.flatMap((s) => overhead[s]);
    lines.push('');
    lines.push(`overhead per stage (stage wall time − torch work inside it), median of ${runs} cold runs:`);
    lines.push(`| ${stages.join(' | ')} | all stages |`);
    lines.push(`|${stages.map(() => '---').join('|')}|---|`);
    lines.push(`| ${perStage.map(([, v]) => `${Math.round(v)} ms`).join(' | ')} | **${Math.round(median(all))} ms** |`);
    lines.push('');
    lines.push(`ttd stage medians (cold): ${stages.map((s) => `${s} ${Math.round(median(cold.map((r) => r.result.timings[s])))} ms`).join(', ')}`);
    lines.push(`outside the stages (node start, connect, workers, store the inputs, start, result): ${Math.round(median(cold.map((r) => r.ms - Object.values(r.result.timings).reduce((a, b) => a + b, 0))))} ms`);

    console.log(lines.join('\n'));
  } finally {
    server.stop();
    rmSync(specDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
