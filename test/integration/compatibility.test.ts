// The verified compatibility matrix: producing environment × format × runtime × runtime version, on the seed MLP and a
// conv net, every cell run for real. It writes docs/compatibility.md (CI regenerates it on every run).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { ParityRuntimeReport, RunResult } from '../../lib/contract/results';
import { fixtureModels, quickSeedSpec, repoRoot, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

const ENVS = ['torch-2.13', 'torch-1.13'] as const;
const MODELS = { 'seed MLP': join(seedDir, 'model.py'), 'conv net': join(fixtureModels, 'healthy-convnet.py') } as const;
const FORMATS = ['torchscript', 'aoti', 'onnx'] as const;
const ONNX_RUNTIMES = ['onnxruntime', 'onnxruntime-node'] as const;

/** One cell: what ran, the verdict and the largest error (or why it cannot run). */
interface Cell {
  model: string;
  producer: string;
  format: string;
  runtime: string;
  target: string;
  verdict: string;
  error: number | null;
  note: string;
}

describe('the compatibility matrix', () => {
  const home = tempDir();
  const env = () => testEnv(home, inject('temporalAddress'));
  const cells: Cell[] = [];

  beforeAll(async () => {
    for (const [model, file] of Object.entries(MODELS)) {
      for (const producer of ENVS) {
        for (const format of FORMATS) {
          const base = { model, producer, format };
          if (format === 'onnx' && producer === 'torch-1.13') {
            for (const runtime of ONNX_RUNTIMES)
              cells.push({
                ...base,
                runtime,
                target: 'onnxruntime',
                verdict: 'cannot work',
                error: null,
                note: 'torch.export and torch.onnx need torch 2.x',
              });
            continue;
          }
          if (format === 'aoti' && producer === 'torch-1.13') {
            for (const runtime of ['python', 'libtorch'])
              for (const target of ENVS)
                cells.push({
                  ...base,
                  runtime,
                  target,
                  verdict: 'cannot work',
                  error: null,
                  note: 'torch.export and AOTInductor need torch 2.x',
                });
            continue;
          }
          const other = ENVS.find((e) => e !== producer)!;
          const spec = quickSeedSpec(`matrix-${cells.length}`, {
            environment: producer,
            formats: [format],
            parity: { runtimes: ['python', 'libtorch', `python@${other}`, `libtorch@${other}`], atol: 1e-5, rtol: 1e-4 },
          });
          const run = await runTtd(['run', writeSpec(home, spec, file, `matrix-${cells.length}.yaml`), '--json'], env());
          const result = JSON.parse(run.stdout) as RunResult;
          const lines: ParityRuntimeReport[] = (result.parity ?? []).filter((p) => !p.flags.fuser);
          if (!lines.length) throw new Error(`${model} ${producer} ${format}: no parity lines (${JSON.stringify(result.gates)})`);
          for (const p of lines) {
            // An ONNX runtime has no torch environment: its line names ONNX Runtime's version and optimisation level.
            const level = p.flags.graph_optimization;
            cells.push({
              ...base,
              runtime: level ? `${p.runtime} (graph opt ${level})` : p.runtime,
              target: level ? `onnxruntime ${p.onnxruntime_version}` : (p.environment ?? producer),
              verdict: p.passed ? 'agrees' : (p.code ?? 'failed'),
              error: p.max_abs_error,
              note: p.passed ? '' : p.message.replace(/\s+/g, ' ').slice(0, 160),
            });
          }
        }
      }
    }
    writeFileSync(join(repoRoot, 'docs', 'compatibility.md'), render(cells));
  }, 900_000);

  it('has every cell: 2 models × 2 producing environments × (2 torch formats × 2 runtimes × 2 runtime versions + ONNX in 2 runtimes × 2 levels)', () => {
    expect(cells.length).toBe(44);
  });

  it('an ONNX model made with torch 2.13 agrees in ONNX Runtime for Python and for Node, graph optimisations off and on', () => {
    const onnx = cells.filter((c) => c.format === 'onnx' && c.producer === 'torch-2.13');
    expect(onnx.map((c) => `${c.model} ${c.runtime}`).sort()).toEqual(
      Object.keys(MODELS)
        .flatMap((m) => ONNX_RUNTIMES.flatMap((r) => [`${m} ${r} (graph opt all)`, `${m} ${r} (graph opt disabled)`]))
        .sort(),
    );
    for (const c of onnx) expect(c.verdict, `${c.model} ${c.runtime}: ${c.note}`).toBe('agrees');
  });

  it('every artifact agrees in both runtimes of the environment that made it', () => {
    const own = cells.filter((c) => c.target === c.producer && c.verdict !== 'cannot work');
    expect(own.length).toBe(12);
    for (const c of own) expect(c.verdict, `${c.model} ${c.producer} ${c.format} ${c.runtime}: ${c.note}`).toBe('agrees');
  });

  it('an AOTInductor package does not load in torch 1.13, and says why', () => {
    const old = cells.filter((c) => c.format === 'aoti' && c.producer === 'torch-2.13' && c.target === 'torch-1.13');
    expect(old.length).toBe(4);
    for (const c of old) expect(c.verdict).toBe('runtime_load_failed');
  });
});

function render(cells: Cell[]): string {
  const rows = cells.map((c) =>
    [
      c.model,
      c.producer,
      c.format,
      c.runtime,
      c.target,
      c.verdict,
      c.error === null ? '—' : c.error.toExponential(1),
      c.note.replace(/\|/g, '\\|'),
    ].join(' | '),
  );
  return [
    '# Compatibility: which artifact runs where',
    '',
    'Generated by `test/integration/compatibility.test.ts` on every `make test`: each cell is a real run of ttd on this',
    'machine (CPU), where an artifact made in one torch environment is checked by the parity runtimes of the same or',
    'the other environment (`parity.runtimes: [python, libtorch, python@OTHER, libtorch@OTHER]`), against the eager',
    'references of the environment that made it. `error` is the largest absolute difference (fuser off). An ONNX model',
    'is checked in ONNX Runtime in a Python without torch and in onnxruntime-node, with graph optimisations off and all',
    "on (its runtime version is ONNX Runtime's). Do not edit by hand. CUDA cells need a GPU worker; none was lent to",
    'the session that wrote this test.',
    '',
    '| model | made with | format | runtime | runtime version | verdict | error | note |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r} |`),
    '',
  ].join('\n');
}
