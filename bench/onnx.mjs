// Benchmark (not a test): ttd's onnx stage against the same export and check done by hand (bench/by_hand_onnx.py), on
// the seed and on real architectures of the corpus, interleaved; medians and ratios. ttd's side is the stage as the
// run's result times it (`timings.onnx`: fetching the weights, the torch op in the fork server, storing the model and
// references); by hand, the same export and checks (cases, probes, example-shaped chunks, a repeat) in a plain script,
// its own work after `import torch` (a worker has torch imported), on the weights ttd
// trained. Each run is `ttd run --no-cache` of `formats: [onnx]` at the corpus' full sizes.
// Usage: node bench/onnx.mjs [RUNS] [MODELS]   (default 3, seed,resnet18,vit-small,lstm-varlen; `make bench` runs it).
// With BENCH_ONNX_RAW=FILE the measurements are also written to FILE.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { median, root, seedSpec, sh, startServer, ttdBin, ttdEnv } from './common.mjs';
import { corpusDir, corpusModels, writeCorpusSpec } from './corpus-lib.mjs';

const runs = Number(process.argv[2] ?? 3);
const names = (process.argv[3] ?? 'seed,resnet18,vit-small,lstm-varlen').split(',');
const python = join(root, '.torch', 'torch-2.13', 'bin', 'python');
const scratch = (name) => mkdtempSync(join(tmpdir(), `ttd-bench-onnx-${name}-`));
const remove = (...dirs) => dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));

// The model's spec (formats: [onnx]) in `dir`, and what the by-hand script needs of it.
function specFor(name, dir) {
  const path =
    name === 'seed'
      ? seedSpec(dir, ['environment: torch-2.13', 'formats: [onnx]'])
      : writeCorpusSpec(
          corpusModels().find((m) => m.dir === name),
          dir,
          { formats: ['onnx'] },
        );
  const spec = parse(readFileSync(path, 'utf8'));
  const model = name === 'seed' ? join(root, 'examples', 'seed-mlp', 'model.py') : join(corpusDir, name, 'model.py');
  return {
    path,
    model,
    params: spec.params ?? {},
    sizes: spec.trace?.batch_sizes ?? [1, 7],
    atol: spec.parity?.atol ?? 1e-5,
    rtol: spec.parity?.rtol ?? 1e-4,
  };
}

// `ttd run` of the spec; the onnx stage's time and the trained weights' blob in the home's store.
function viaTtd(address, spec, home) {
  const env = ttdEnv(address, home);
  const result = JSON.parse(sh(process.execPath, [ttdBin, 'run', spec.path, '--json', '--no-cache'], { env }).stdout);
  if (result.status !== 'promoted') throw new Error(`ttd run ended ${result.status}: ${JSON.stringify(result.gates.at(-1))}`);
  const shown = JSON.parse(sh(process.execPath, [ttdBin, 'show', `${result.model}@production`, '--json'], { env }).stdout);
  const weights = join(home, 'store', 'blobs', 'sha256', shown.files.weights.replace('sha256:', ''));
  return { stageMs: result.timings.onnx, torchMs: result.torchTimings?.onnx, exportMs: shown.stages.onnx.export_ms, weights };
}

// The by-hand script on those weights.
function byHand(spec, weights) {
  const out = scratch('hand');
  try {
    const args = [
      join(root, 'bench', 'by_hand_onnx.py'),
      spec.model,
      weights,
      out,
      JSON.stringify(spec.params),
      JSON.stringify(spec.sizes),
      String(spec.atol),
      String(spec.rtol),
    ];
    const r = JSON.parse(sh(python, args).stdout.trim().split('\n').pop());
    return { workMs: r.work_ms, exportMs: r.export_ms };
  } finally {
    remove(out);
  }
}

async function main() {
  const server = await startServer();
  const m = {};
  try {
    for (const name of names) {
      const dir = scratch('spec');
      const spec = specFor(name, dir);
      m[name] = [];
      for (let i = 0; i < runs; i++) {
        const home = scratch('home');
        const ttd = viaTtd(server.address, spec, home);
        m[name].push({ ttd, hand: byHand(spec, ttd.weights) });
        remove(home);
      }
      remove(dir);
    }
  } finally {
    server.stop();
  }
  if (process.env.BENCH_ONNX_RAW) writeFileSync(process.env.BENCH_ONNX_RAW, JSON.stringify(m));
  const torchVersion = sh(python, [
    '-c',
    'import torch, onnx, onnxruntime; print(torch.__version__, onnx.__version__, onnxruntime.__version__)',
  ]).stdout.trim();
  const lines = [
    `machine: ${cpus().length} × ${cpus()[0].model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; torch, onnx, onnxruntime ${torchVersion}; ${runs} runs each, interleaved`,
    '',
    '| model | by hand (work after import torch) | ttd `timings.onnx` | ratio | by hand: torch.export, translation, save, checker | ttd `export_ms`: translation, save, checker |',
    '|---|---|---|---|---|---|',
  ];
  for (const [name, xs] of Object.entries(m)) {
    const hand = median(xs.map((x) => x.hand.workMs));
    const ttd = median(xs.map((x) => x.ttd.stageMs));
    lines.push(
      `| ${name} | ${(hand / 1000).toFixed(2)} s | ${(ttd / 1000).toFixed(2)} s | **${(ttd / hand).toFixed(2)}×** | ${(median(xs.map((x) => x.hand.exportMs)) / 1000).toFixed(2)} s | ${(median(xs.map((x) => x.ttd.exportMs)) / 1000).toFixed(2)} s |`,
    );
  }
  console.log(lines.join('\n'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
