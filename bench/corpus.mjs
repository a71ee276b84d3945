// Benchmark (not a test): the real-model corpus (bench/corpus/) through `ttd run --json` and the same torch work by
// hand (bench/by_hand_corpus.py, then each artifact loaded and run in a fresh `python -I` and the libtorch runner),
// interleaved model by model; writes docs/real-models.md: parameters, artifact sizes, each stage beside its by-hand
// equivalent, the peak resident memory of ttd's process tree, and the verdicts against bench/corpus/corpus.json.
// Usage: node bench/corpus.mjs [--reduced] [--only a,b] [--formats torchscript[,aoti]] [--out FILE] [--no-hand]
//        [--raw RAW.json] (the measurements, rewritten after each model) [--from RAW.json] (table them, run nothing)
// (`make corpus` runs it with the full sizes; `make corpus REDUCED=1` with CI's sizes.)
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { treeRssMb } from '../dist/activities/memory-cap.js';
import { root, sh, startServer, ttdBin, ttdEnv } from './common.mjs';
import { corpusModels, corpusSpec, transformersRun, writeCorpusSpec } from './corpus-lib.mjs';

const { values: opts } = parseArgs({
  options: {
    reduced: { type: 'boolean', default: false },
    only: { type: 'string' },
    formats: { type: 'string' },
    out: { type: 'string' },
    'no-hand': { type: 'boolean', default: false },
    raw: { type: 'string' },
    from: { type: 'string' },
  },
});
const python = join(root, '.torch', 'torch-2.13', 'bin', 'python');
const libtorchRunner = join(root, 'build', 'libtorch-2.13', 'ttd-libtorch-runner');
const scratch = (name) => mkdtempSync(join(tmpdir(), `ttd-corpus-${name}-`));
const remove = (...dirs) => dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));

/** Runs a command, sampling the resident memory of its process tree every 200 ms; { code, stdout, stderr, ms, peakMb }. */
function measured(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peakMb = 0;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setInterval(() => (peakMb = Math.max(peakMb, treeRssMb(child.pid))), 200);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0, peakMb });
    });
  });
}

// One model through ttd: the run's JSON, its wall time, peak RSS, and the stored artifacts' sizes.
async function viaTtd(address, model, formats) {
  const home = scratch('home');
  const dir = scratch('spec');
  const tf = model.needs === 'transformers' ? transformersRun() : { environment: undefined, env: {} };
  const spec = writeCorpusSpec(model, dir, { reduced: opts.reduced, formats, environment: tf.environment });
  const env = ttdEnv(address, home, tf.env);
  const r = await measured(process.execPath, [ttdBin, 'run', spec, '--json'], { env });
  let result;
  try {
    result = JSON.parse(r.stdout);
  } catch {
    result = { status: 'failed', error: { code: 'no_json', message: r.stderr.slice(-400) } };
  }
  const sizes = {};
  if (result.status === 'promoted') {
    const shown = JSON.parse(sh(process.execPath, [ttdBin, 'show', `${result.model}@production`, '--json'], { env }).stdout);
    for (const [format, { digest }] of Object.entries(shown.formats ?? {})) {
      const blob = join(home, 'store', 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
      if (existsSync(blob)) sizes[format] = statSync(blob).size;
    }
  }
  remove(home, dir);
  return { ms: r.ms, peakMb: r.peakMb, result, sizes };
}

// The deploy-side loads by hand, each in an empty directory: a fresh `python -I` and the libtorch runner per format.
function deployByHand(dir, format) {
  const [model, refs, flags] =
    format === 'aoti' ? ['model.pt2', 'aoti-references.safetensors', ['--format', 'aoti']] : ['model.pt', 'references.safetensors', []];
  const where = scratch('deploy');
  copyFileSync(join(dir, model), join(where, model));
  copyFileSync(join(dir, refs), join(where, 'references.safetensors'));
  copyFileSync(join(root, 'runtimes', 'python', 'ttd_parity_runner.py'), join(where, 'runner.py'));
  const args = ['--model', model, '--references', 'references.safetensors', '--out', 'out.safetensors', '--threads', '1', ...flags];
  const t0 = performance.now();
  sh(python, ['-I', 'runner.py', ...args], { cwd: where });
  sh(libtorchRunner, args, { cwd: where });
  const ms = performance.now() - t0;
  remove(where);
  return ms;
}

// One model by hand: by_hand_corpus.py (its stage times), then the deploy-side loads.
async function byHand(model, formats) {
  const spec = corpusSpec(model);
  const params = opts.reduced ? { ...spec.params, ...model.reduced } : spec.params;
  const dir = scratch('hand');
  const py = model.needs === 'transformers' ? (transformersRun().env.TTD_PYTHON ?? python) : python;
  const args = [join(root, 'bench', 'by_hand_corpus.py'), join(root, 'bench', 'corpus', model.dir, 'model.py'), dir,
    JSON.stringify(params), JSON.stringify(spec.train), formats.join(','), String(spec.parity.atol), String(spec.parity.rtol)];
  // Cold, as ttd's fresh home: Inductor's cache and its precompiled headers (which it keeps under $TMPDIR whatever the
  // cache directory is, and which save about 10 s of a compile once there).
  mkdirSync(join(dir, 'tmp'));
  const r = await measured(py, args, { env: { ...process.env, TORCHINDUCTOR_CACHE_DIR: join(dir, 'inductor'), TMPDIR: join(dir, 'tmp') } });
  if (r.code !== 0) {
    remove(dir);
    return { failed: r.stderr.trim().split('\n').slice(-3).join(' ') };
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  const stages = { ...out.ms };
  if (formats.includes('torchscript')) stages.parity = deployByHand(dir, 'torchscript');
  if (formats.includes('aoti')) stages.parity_aoti = deployByHand(dir, 'aoti');
  remove(dir);
  return { ms: r.ms + (stages.parity ?? 0) + (stages.parity_aoti ?? 0), peakMb: r.peakMb, stages, params: out.params, sizes: out.sizes };
}

// ttd's stages against the by-hand work they stand for (verify: the trace's checks, which by hand run in "trace").
const PAIRS = [
  ['train', ['train'], ['train']],
  ['trace + verify', ['trace', 'verify'], ['trace']],
  ['optimize', ['optimize'], ['optimize']],
  ['fusion', ['fusion'], []],
  ['export', ['export'], ['export']],
  ['compile', ['compile'], ['compile']],
  ['store', ['store'], ['store']],
  ['parity (TorchScript)', ['parity'], ['parity']],
  ['parity (AOTInductor)', ['parity_aoti'], ['parity_aoti']],
];
const s = (ms) => (ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);
const mb = (bytes) =>
  bytes === undefined ? '—' : bytes < 2 ** 20 ? `${(bytes / 1024).toFixed(0)} KiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const sum = (o, keys) => (keys.some((k) => o?.[k] !== undefined) ? keys.reduce((a, k) => a + (o?.[k] ?? 0), 0) : undefined);

function verdict(model, result) {
  const code = result.gates?.find((g) => !g.passed)?.code ?? result.error?.code;
  const want = model.expect;
  const ok = result.status === want.status && (want.code === undefined || want.code === code);
  return { ok, text: `${result.status}${code ? ` (${code})` : ''}`, expected: `${want.status}${want.code ? ` (${want.code})` : ''}` };
}

function report(rows) {
  const torchVersion = sh(python, ['-c', 'import torch; print(torch.__version__)']).stdout.trim();
  const L = [];
  L.push('# Real models through ttd');
  L.push('');
  L.push(`Written by \`make corpus\`${opts.reduced ? ' (REDUCED=1: the reduced sizes CI runs, not the benchmark)' : ''} on ${new Date().toISOString().slice(0, 16)} UTC:`);
  L.push(`${cpus().length} × ${cpus()[0].model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; torch ${torchVersion}.`);
  L.push('Each model (bench/corpus/) ran once through `ttd run --json` (fresh home, step cache empty, Inductor cache');
  L.push('empty) and once by hand (bench/by_hand_corpus.py: the same training, trace, checks, freeze, export, AOTInductor');
  L.push('compile and checks, then each artifact loaded and run in a fresh `python -I` and the libtorch runner), one after');
  L.push('the other. Peak RSS: the resident memory of the whole process tree (workers, fork server, stages, runtimes),');
  L.push('sampled every 200 ms; pages shared between processes count once per process.');
  L.push('');
  L.push('| model | parameters | verdict (expected) | TorchScript | AOTInductor | ttd | by hand | ratio | peak RSS ttd / by hand | load (5 min) |');
  L.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const { model, ttd, hand, load } of rows) {
    const v = verdict(model, ttd.result);
    L.push(`| ${model.dir} | ${hand.params ? `${(hand.params / 1e6).toFixed(2)} M` : '—'} | ${v.ok ? '✓' : '✗'} ${v.text}${v.ok ? '' : ` (expected ${v.expected})`} | ${mb(ttd.sizes.torchscript)} | ${mb(ttd.sizes.aoti)} | ${s(ttd.ms)} | ${hand.failed ? 'failed' : s(hand.ms)} | ${hand.ms ? `${(ttd.ms / hand.ms).toFixed(2)}×` : '—'} | ${Math.round(ttd.peakMb)} / ${hand.peakMb ? Math.round(hand.peakMb) : '—'} MiB | ${load === undefined ? '—' : load.toFixed(1)} |`);
  }
  L.push('');
  L.push('Load: the host\'s 5-minute load average when the model\'s runs ended (other work beside them slows both sides).');
  L.push('');
  L.push('Per stage, ttd (`timings`) beside the same work by hand, and the ratio. By hand, "trace" holds the trace and every');
  L.push('check ttd spreads over its trace and verify stages; "fusion" has no by-hand equivalent on a CPU build without LLVM.');
  for (const { model, ttd, hand } of rows) {
    L.push('');
    L.push(`### ${model.dir}`);
    L.push('');
    if (hand.failed) L.push(`By hand failed: ${hand.failed}`, '');
    const failed = ttd.result.gates?.find((g) => !g.passed);
    if (failed) L.push(`ttd: ${failed.gate} ${failed.code}: ${failed.message}`, '');
    if (ttd.result.error) L.push(`ttd: ${ttd.result.error.code}: ${ttd.result.error.message}`, '');
    L.push('| stage | ttd | by hand | ratio |');
    L.push('|---|---|---|---|');
    for (const [name, mine, theirs] of PAIRS) {
      const a = sum(ttd.result.timings, mine);
      const b = theirs.length ? sum(hand.stages, theirs) : undefined;
      if (a === undefined && b === undefined) continue;
      L.push(`| ${name} | ${s(a)} | ${s(b)} | ${a !== undefined && b ? `${(a / b).toFixed(2)}×` : '—'} |`);
    }
    const staged = Object.values(ttd.result.timings ?? {}).reduce((x, y) => x + y, 0);
    L.push(`| outside the stages (start, server, workers) | ${s(ttd.ms - staged)} | — | — |`);
  }
  return L.join('\n') + '\n';
}

async function main() {
  if (!existsSync(libtorchRunner) || !existsSync(python)) throw new Error('run make setup first');
  if (opts.from) return finish(JSON.parse(readFileSync(opts.from, 'utf8')));
  const only = opts.only?.split(',');
  const models = corpusModels().filter((m) => (only ? only.includes(m.dir) : m.needs !== 'streaming' || process.env.CORPUS_LARGE === '1'));
  const server = await startServer();
  const rows = [];
  try {
    for (const [i, model] of models.entries()) {
      const formats = opts.formats?.split(',') ?? corpusSpec(model).formats;
      console.error(`corpus: ${model.dir} (${formats.join(', ')})`);
      // Interleaved, alternating which goes first, so that neither always meets the other's leftovers.
      const first = i % 2 === 0;
      const hand = first && !opts['no-hand'] ? await byHand(model, formats) : undefined;
      const ttd = await viaTtd(server.address, model, formats);
      const hand2 = !first && !opts['no-hand'] ? await byHand(model, formats) : hand;
      rows.push({ model, ttd, hand: hand2 ?? {}, load: loadavg()[1] });
      console.error(`  ttd ${verdict(model, ttd.result).text} in ${s(ttd.ms)}; by hand ${hand2?.failed ? 'failed' : s(hand2?.ms)}`);
      if (opts.raw) writeFileSync(opts.raw, JSON.stringify(rows));
    }
  } finally {
    server.stop();
  }
  finish(rows);
}

// The report from the measurements, written or printed; exit 1 when a model did not end as expected.
function finish(rows) {
  const text = report(rows);
  const out = opts.out ?? (opts.reduced ? undefined : join(root, 'docs', 'real-models.md'));
  if (out) {
    writeFileSync(out, text);
    console.error(`wrote ${relative(root, out)}`);
  } else process.stdout.write(text);
  if (rows.some(({ model, ttd }) => !verdict(model, ttd.result).ok)) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
