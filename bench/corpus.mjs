// Benchmark (not a test): the real-model corpus (bench/corpus/) through `ttd run --json` and the same torch work by
// hand (bench/by_hand_corpus.py, then each artifact loaded and run in a fresh `python -I` and the libtorch runner),
// interleaved model by model; writes docs/real-models.md: parameters, artifact sizes, each stage beside its by-hand
// equivalent, the peak resident memory of ttd's process tree, and the verdicts against bench/corpus/corpus.json. A model
// that lists `stores` in corpus.json runs through ttd on each (fs: the home's; s3: a moto_server of its own); one that
// needs streaming also at CI's sizes, and has a section of its own (peak RSS of the worker, the torch side, moto).
// Usage: node bench/corpus.mjs [--reduced] [--only a,b] [--formats torchscript[,aoti][,onnx]] [--stores fs[,s3]] [--out FILE]
//        [--no-hand] [--raw RAW.json] (the measurements, rewritten after each model) [--from RAW.json] (table them, run nothing)
// (`make corpus` runs it with the full sizes; `make corpus REDUCED=1` with CI's sizes.)
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { treeRssMb } from '../dist/activities/memory-cap.js';
import { FsObjectStore } from '../dist/lib/store/fs-store.js';
import { S3ObjectStore } from '../dist/lib/store/s3-store.js';
import { blobKey } from '../dist/lib/store/store.js';
import { root, sh, startMoto, startServer, ttdBin, ttdEnv } from './common.mjs';
import { corpusModels, corpusSpec, transformersPython, transformersRun, writeCorpusSpec } from './corpus-lib.mjs';

const { values: opts } = parseArgs({
  options: {
    reduced: { type: 'boolean', default: false },
    only: { type: 'string' },
    formats: { type: 'string' },
    stores: { type: 'string' },
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
// Where a run on S3 keeps its store: a bucket startMoto makes, a prefix as a team's would be.
const S3_BUCKET = 'models';
const S3_PREFIX = 'corpus';

// A process's own peak resident memory so far (VmHWM, MiB): exact, where sampling could miss a short peak; 0 once gone.
function ownPeakMb(pid) {
  try {
    return Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}
const ownRssMb = (pid) => {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
};

/** Runs a command, sampling every 200 ms the resident memory of its process tree; { code, stdout, stderr, ms, peakMb,
 * ownPeakMb, childrenPeakMb, besidePeakMb }. ownPeakMb is the command's own process (`ttd run`, which hosts the workers),
 * childrenPeakMb what ran under it at once (the torch side: fork server, stages, runtimes), besidePeakMb the process
 * `beside` (a store server the command talks to), each its own peak. */
function measured(cmd, args, opts, beside) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const peak = { tree: 0, own: 0, children: 0, beside: 0 };
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const sample = () => {
      const tree = treeRssMb(child.pid);
      peak.tree = Math.max(peak.tree, tree);
      peak.own = Math.max(peak.own, ownPeakMb(child.pid));
      if (tree > 0) peak.children = Math.max(peak.children, tree - ownRssMb(child.pid));
      if (beside) peak.beside = Math.max(peak.beside, ownPeakMb(beside));
    };
    const timer = setInterval(sample, 200);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      const ms = performance.now() - t0;
      resolve({ code, stdout, stderr, ms, peakMb: peak.tree, ownPeakMb: peak.own, childrenPeakMb: peak.children, besidePeakMb: peak.beside });
    });
  });
}

// One model through ttd: the run's JSON, its wall time, peak RSS, and the stored artifacts' sizes. `store`: 'fs' (the
// fresh home's own store) or 's3' (a bucket of a moto_server started for this run alone, so that the blobs it keeps in
// memory never add up across runs); `reduced`: CI's sizes whatever the run's.
async function viaTtd(address, model, formats, { store = 'fs', reduced = opts.reduced } = {}) {
  const home = scratch('home');
  const dir = scratch('spec');
  const tf = model.needs === 'transformers' ? transformersRun() : { environment: undefined, env: {} };
  const spec = writeCorpusSpec(model, dir, { reduced, formats, environment: tf.environment });
  const moto = store === 's3' ? await startMoto() : undefined;
  const env = ttdEnv(address, home, { ...tf.env, ...(moto ? { ...moto.env, TTD_STORE: `s3://${S3_BUCKET}/${S3_PREFIX}` } : {}) });
  try {
    const r = await measured(process.execPath, [ttdBin, 'run', spec, '--json'], { env }, moto?.pid);
    let result;
    try {
      result = JSON.parse(r.stdout);
    } catch {
      result = { status: 'failed', error: { code: 'no_json', message: r.stderr.slice(-400) } };
    }
    const sizes = {};
    if (result.status === 'promoted') {
      const shown = JSON.parse(sh(process.execPath, [ttdBin, 'show', `${result.model}@production`, '--json'], { env }).stdout);
      const blobs = moto
        ? new S3ObjectStore(S3_BUCKET, S3_PREFIX, {
            endpoint: moto.env.AWS_ENDPOINT_URL,
            region: moto.env.AWS_REGION,
            forcePathStyle: true,
            credentials: { accessKeyId: moto.env.AWS_ACCESS_KEY_ID, secretAccessKey: moto.env.AWS_SECRET_ACCESS_KEY },
          })
        : new FsObjectStore(join(home, 'store'));
      for (const [format, { digest }] of Object.entries(shown.formats ?? {})) {
        const head = await blobs.head(blobKey(digest));
        if (head) sizes[format] = head.size;
      }
    }
    const peaks = { workerMb: r.ownPeakMb, torchMb: r.childrenPeakMb, ...(moto ? { storeServerMb: r.besidePeakMb } : {}) };
    return { ms: r.ms, peakMb: r.peakMb, peaks, result, sizes, store, reduced };
  } finally {
    await moto?.stop();
    remove(home, dir);
  }
}

// The deploy-side loads by hand, each in an empty directory: a fresh `python -I` and the libtorch runner per format; for
// ONNX, ONNX Runtime in its Python without torch and onnxruntime-node, graph optimisations off and all on, as ttd's parity.
function deployByHand(dir, format) {
  if (format === 'onnx') return deployOnnxByHand(dir);
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

function deployOnnxByHand(dir) {
  const where = scratch('deploy');
  copyFileSync(join(dir, 'model.onnx'), join(where, 'model.onnx'));
  copyFileSync(join(dir, 'onnx-references.safetensors'), join(where, 'references.safetensors'));
  copyFileSync(join(root, 'runtimes', 'python', 'ttd_onnx_runner.py'), join(where, 'runner.py'));
  copyFileSync(join(root, 'runtimes', 'python', 'ttd_parity_runner.py'), join(where, 'ttd_parity_runner.py'));
  const args = ['--model', 'model.onnx', '--references', 'references.safetensors', '--out', 'out.safetensors', '--threads', '1'];
  const t0 = performance.now();
  for (const level of ['disabled', 'all']) {
    sh(join(root, '.onnxruntime', 'bin', 'python'), ['-I', 'runner.py', ...args, '--graph-optimization', level], { cwd: where });
    sh(process.execPath, [join(root, 'runtimes', 'onnx-node', 'runner.mjs'), ...args, '--graph-optimization', level], { cwd: where });
  }
  const ms = performance.now() - t0;
  remove(where);
  return ms;
}

// The Python by hand for a model that needs transformers: torch-2.13's own torch with transformers beside it
// (bench/corpus/transformers-env.sh, made here when missing). ttd builds its declared environment in the run's home,
// which is gone by then; before, a fresh checkout's by-hand ran such a model without transformers and failed.
function transformersForHand() {
  sh('bash', [join(root, 'bench', 'corpus', 'transformers-env.sh')]);
  return transformersPython;
}

// One model by hand: by_hand_corpus.py (its stage times), then the deploy-side loads.
async function byHand(model, formats) {
  const spec = corpusSpec(model);
  const params = opts.reduced ? { ...spec.params, ...model.reduced } : spec.params;
  const dir = scratch('hand');
  const py = model.needs === 'transformers' ? transformersForHand() : python;
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
  // Named as ttd names its parity stages: `parity` for the first format, `parity_<format>` after it.
  const parity = formats.map((f, i) => [i === 0 ? 'parity' : `parity_${f}`, deployByHand(dir, f)]);
  Object.assign(stages, Object.fromEntries(parity));
  remove(dir);
  const deployMs = parity.reduce((a, [, ms]) => a + ms, 0);
  return { ms: r.ms + deployMs, peakMb: r.peakMb, stages, params: out.params, sizes: out.sizes };
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
  ['onnx', ['onnx'], ['onnx']],
  ['parity (the first format)', ['parity'], ['parity']],
  ['parity (AOTInductor)', ['parity_aoti'], ['parity_aoti']],
  ['parity (ONNX)', ['parity_onnx'], ['parity_onnx']],
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
  L.push('compile, ONNX export and checks, then each artifact loaded and run in a fresh `python -I` and the libtorch runner,');
  L.push('an ONNX model in ONNX Runtime without torch and in onnxruntime-node, graph optimisations off and on), one after');
  L.push('the other. Peak RSS: the resident memory of the whole process tree (workers, fork server, stages, runtimes),');
  L.push('sampled every 200 ms; pages shared between processes count once per process.');
  L.push('');
  L.push('| model | parameters | verdict (expected) | TorchScript | AOTInductor | ONNX | ttd | by hand | ratio | peak RSS ttd / by hand | load (5 min) |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const { model, ttd, hand, load } of rows) {
    const v = verdict(model, ttd.result);
    L.push(`| ${model.dir} | ${hand.params ? `${(hand.params / 1e6).toFixed(2)} M` : '—'} | ${v.ok ? '✓' : '✗'} ${v.text}${v.ok ? '' : ` (expected ${v.expected})`} | ${mb(ttd.sizes.torchscript)} | ${mb(ttd.sizes.aoti)} | ${mb(ttd.sizes.onnx)} | ${s(ttd.ms)} | ${hand.failed ? 'failed' : s(hand.ms)} | ${hand.ms ? `${(ttd.ms / hand.ms).toFixed(2)}×` : '—'} | ${Math.round(ttd.peakMb)} / ${hand.peakMb ? Math.round(hand.peakMb) : '—'} MiB | ${load === undefined ? '—' : load.toFixed(1)} |`);
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
      const stores = opts.stores?.split(',') ?? model.stores ?? ['fs'];
      console.error(`corpus: ${model.dir} (${formats.join(', ')}; ${stores.join(', ')})`);
      // Interleaved, alternating which goes first, so that neither always meets the other's leftovers.
      const first = i % 2 === 0;
      const hand = first && !opts['no-hand'] ? await byHand(model, formats) : undefined;
      const runs = [];
      for (const store of stores) {
        runs.push(await viaTtd(server.address, model, formats, { store }));
        console.error(`  ttd on ${store}: ${verdict(model, runs.at(-1).result).text} in ${s(runs.at(-1).ms)}`);
      }
      // A model that needs streaming runs once more on each store at CI's sizes: what the worker's peak RSS does with the
      // model's size.
      if (model.needs === 'streaming' && !opts.reduced)
        for (const store of stores) runs.push({ ...(await viaTtd(server.address, model, formats, { store, reduced: true })), sizeCheck: true });
      const hand2 = !first && !opts['no-hand'] ? await byHand(model, formats) : hand;
      rows.push({ model, ttd: runs[0], runs, hand: hand2 ?? {}, load: loadavg()[1], at: new Date().toISOString() });
      console.error(`  by hand ${hand2?.failed ? 'failed' : s(hand2?.ms)}`);
      if (opts.raw) writeFileSync(opts.raw, JSON.stringify(rows));
    }
  } finally {
    server.stop();
  }
  finish(rows);
}

// The > 1 GB model's section of docs/real-models.md begins here; a run that did not measure it keeps the one written.
const LARGE_MARK = '<!-- the large-model section: written by bench/corpus.mjs when it runs a model that needs streaming -->';

// Parameters of a corpus model at `params`, counted on the meta device (no weights allocated, whatever their size).
function countParams(model, params) {
  const code = `import importlib.util, json, sys, torch
spec = importlib.util.spec_from_file_location("corpus_model", sys.argv[1])
mod = importlib.util.module_from_spec(spec); sys.modules["corpus_model"] = mod; spec.loader.exec_module(mod)
with torch.device("meta"):
    print(sum(p.numel() for p in mod.build_model(json.loads(sys.argv[2])).parameters()))`;
  return Number(sh(python, ['-c', code, join(root, 'bench', 'corpus', model.dir, 'model.py'), JSON.stringify(params)]).stdout.trim());
}

// The section on the models that need streaming: each store's run and the run at CI's sizes, peak RSS split between the
// worker, the torch side and the S3 server, and each stage beside the by-hand work.
function largeReport(rows) {
  const torchVersion = sh(python, ['-c', 'import torch; print(torch.__version__)']).stdout.trim();
  const storeName = (run) => (run.store === 's3' ? 'S3 (moto)' : 'filesystem');
  const L = [LARGE_MARK, '## The > 1 GB model on the filesystem store and on S3', ''];
  L.push(`Written by \`CORPUS_LARGE=1 make corpus ONLY=${rows.map((r) => r.model.dir).join(',')}\` on ${(rows.at(-1).at ?? new Date().toISOString()).slice(0, 16)} UTC:`);
  L.push(`${cpus().length} × ${cpus()[0].model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; torch ${torchVersion}.`);
  L.push('Each ttd run: `ttd run --json` in a fresh home (step cache and Inductor cache empty), on the filesystem store of');
  L.push('that home, and on S3: a `moto_server` of its own on loopback (objects over 5 MiB spill to its temporary files),');
  L.push(`\`TTD_STORE=s3://${S3_BUCKET}/${S3_PREFIX}\`. By hand (bench/by_hand_corpus.py and the deploy-side loads) ran once: no store is part of its work.`);
  L.push('Peak RSS, each its own peak: **worker**, the `ttd run` process, which hosts the control and torch workers (every');
  L.push('blob it stores or hands a stage passes through it, streamed); **torch side**, everything under it at one time (the');
  L.push('fork server, stages, sandboxed runtimes); **S3 server**, moto. The same model at CI\'s sizes ran once more on each');
  L.push("store: what the worker's peak does when the weights grow a thousandfold.");
  L.push('');
  L.push('| model | parameters | store | verdict (expected) | TorchScript | AOTInductor | ttd | by hand | ratio | peak RSS: worker | torch side | S3 server | by hand | load (5 min) |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const { model, hand, runs, load } of rows) {
    const spec = corpusSpec(model);
    for (const run of runs) {
      const v = verdict(model, run.result);
      const full = !run.sizeCheck;
      const params = countParams(model, run.reduced ? { ...spec.params, ...model.reduced } : spec.params);
      L.push(`| ${model.dir}${!run.reduced ? '' : ` (CI's sizes: ${JSON.stringify(model.reduced).replace(/"/g, '')})`} | ${(params / 1e6).toFixed(2)} M | ${storeName(run)} | ${v.ok ? '✓' : '✗'} ${v.text}${v.ok ? '' : ` (expected ${v.expected})`} | ${mb(run.sizes.torchscript)} | ${mb(run.sizes.aoti)} | ${s(run.ms)} | ${full && !hand.failed ? s(hand.ms) : '—'} | ${full && hand.ms ? `${(run.ms / hand.ms).toFixed(2)}×` : '—'} | ${Math.round(run.peaks.workerMb)} MiB | ${Math.round(run.peaks.torchMb)} MiB | ${run.peaks.storeServerMb ? `${Math.round(run.peaks.storeServerMb)} MiB` : '—'} | ${full && hand.peakMb ? `${Math.round(hand.peakMb)} MiB` : '—'} | ${load.toFixed(1)} |`);
    }
  }
  for (const { model, runs } of rows) {
    for (const run of runs.filter((r) => !r.sizeCheck)) {
      const small = runs.find((r) => r.sizeCheck && r.store === run.store);
      if (!small) continue;
      const grew = run.peaks.workerMb - small.peaks.workerMb;
      const weights = ((run.sizes.torchscript ?? 0) - (small.sizes.torchscript ?? 0)) / 2 ** 20;
      L.push('', `${model.dir} on ${storeName(run)}: the worker's peak RSS ${Math.round(run.peaks.workerMb)} MiB, against ${Math.round(small.peaks.workerMb)} MiB at CI's sizes: ${grew >= 0 ? '+' : ''}${Math.round(grew)} MiB for ${Math.round(weights)} MiB more weights (${(grew / weights).toFixed(2)} MiB per MiB).`);
    }
  }
  for (const { model, hand, runs } of rows) {
    const full = runs.filter((run) => !run.sizeCheck);
    L.push('', `### ${model.dir}, per stage`, '');
    if (hand.failed) L.push(`By hand failed: ${hand.failed}`, '');
    for (const run of full) {
      const failed = run.result.gates?.find((g) => !g.passed);
      if (failed) L.push(`ttd on ${storeName(run)}: ${failed.gate} ${failed.code}: ${failed.message}`, '');
      if (run.result.error) L.push(`ttd on ${storeName(run)}: ${run.result.error.code}: ${run.result.error.message}`, '');
    }
    L.push(`| stage | ${full.map((run) => `ttd, ${storeName(run)}`).join(' | ')} | by hand | ${full.map((run) => `ratio, ${storeName(run)}`).join(' | ')} |`);
    L.push(`|---|${full.map(() => '---|').join('')}---|${full.map(() => '---|').join('')}`);
    for (const [name, mine, theirs] of PAIRS) {
      const a = full.map((run) => sum(run.result.timings, mine));
      const b = theirs.length ? sum(hand.stages, theirs) : undefined;
      if (a.every((x) => x === undefined) && b === undefined) continue;
      L.push(`| ${name} | ${a.map(s).join(' | ')} | ${s(b)} | ${a.map((x) => (x !== undefined && b ? `${(x / b).toFixed(2)}×` : '—')).join(' | ')} |`);
    }
    const outside = full.map((run) => run.ms - Object.values(run.result.timings ?? {}).reduce((x, y) => x + y, 0));
    L.push(`| outside the stages (start, server, workers) | ${outside.map(s).join(' | ')} | — | ${full.map(() => '—').join(' | ')} |`);
  }
  return L.join('\n') + '\n';
}

// The report from the measurements, written or printed; exit 1 when a run did not end as expected. The corpus table and
// the large-model section are each rewritten only by a run that measured them; the file keeps the other as it was.
function finish(rows) {
  const large = rows.filter((r) => r.model.needs === 'streaming');
  const rest = rows.filter((r) => r.model.needs !== 'streaming');
  const out = opts.out ?? (opts.reduced ? undefined : join(root, 'docs', 'real-models.md'));
  const before = out && existsSync(out) ? readFileSync(out, 'utf8') : '';
  const at = before.indexOf(LARGE_MARK);
  const corpusPart = rest.length ? report(rest) : at < 0 ? before : before.slice(0, at);
  const largePart = large.length ? largeReport(large) : at < 0 ? '' : before.slice(at);
  const text = [corpusPart, largePart].filter((t) => t.trim()).map((t) => t.trimEnd()).join('\n\n') + '\n';
  if (out) {
    writeFileSync(out, text);
    console.error(`wrote ${relative(root, out)}`);
  } else process.stdout.write(text);
  if (rows.some(({ model, ttd, runs = [ttd] }) => runs.some((run) => !verdict(model, run.result).ok))) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
