// ONNX beside the torch formats: the seed promoted as an ONNX model checked in ONNX Runtime's Python (no torch there) and
// in onnxruntime-node, graph optimisations off and all on; the model pulled and run where no torch exists; the ONNX
// gate's rejections (an operator without a translation, a translation that computes something else, train-mode ops).
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { fixtureModels, mustRun, quickSeedSpec, repoRoot, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

const onnxPython = join(repoRoot, '.onnxruntime', 'bin', 'python');

interface Shown {
  formats: Record<string, { digest: string }>;
  stages: { onnx?: { opset: number; node_total: number; passed: boolean; onnxruntime_version: string } };
}

describe('ONNX models (torch-2.13 exports, ONNX Runtime checks)', () => {
  const home = tempDir();
  const env = () => testEnv(home, inject('temporalAddress'));
  let promoted: RunResult;
  let shown: Shown;

  // One run of `model` with formats [onnx] in a fresh directory; its JSON result.
  const runOnnx = async (name: string, model: string, formats = ['onnx']): Promise<RunResult> => {
    const spec = writeSpec(tempDir(), quickSeedSpec(name, { environment: 'torch-2.13', formats }), model);
    return JSON.parse((await runTtd(['run', spec, '--json'], env())).stdout) as RunResult;
  };

  beforeAll(async () => {
    const spec = writeSpec(home, quickSeedSpec('onnx-seed', { environment: 'torch-2.13', formats: ['onnx'] }), join(seedDir, 'model.py'));
    promoted = JSON.parse((await runTtd(['run', spec, '--json'], env())).stdout);
    const show = await runTtd(['show', 'onnx-seed@production', '--json'], env());
    shown = show.code === 0 ? JSON.parse(show.stdout) : { formats: {}, stages: {} };
  }, 600_000);

  it('promotes the seed as an ONNX model through the onnx gate', () => {
    expect(promoted.status, JSON.stringify(promoted.gates)).toBe('promoted');
    const onnx = promoted.gates.find((g) => g.gate === 'onnx');
    expect(onnx?.passed).toBe(true);
    expect(onnx?.message).toContain('the ONNX model in ONNX Runtime and eager agree on');
    expect(promoted.gates.map((g) => g.gate)).not.toContain('trace');
  });

  it('checks the ONNX model in ONNX Runtime without torch and in onnxruntime-node, graph optimisations off and on', () => {
    const lines = (promoted.parity ?? []).map((p) => `${p.format} ${p.runtime} ${p.flags.graph_optimization}`);
    expect(lines.sort()).toEqual([
      'onnx onnxruntime all',
      'onnx onnxruntime disabled',
      'onnx onnxruntime-node all',
      'onnx onnxruntime-node disabled',
    ]);
    for (const p of promoted.parity ?? []) {
      expect(p.passed, p.message).toBe(true);
      expect(p.torch_version).toBeNull();
      expect(p.onnxruntime_version).toMatch(/^1\.\d+\./);
      expect(p.execution_provider).toBe('CPUExecutionProvider');
    }
  });

  it('shows the ONNX artifact and what the onnx stage found', () => {
    expect(Object.keys(shown.formats)).toEqual(['onnx']);
    expect(shown.formats.onnx.digest).toBe(promoted.digest);
    expect(shown.stages.onnx?.opset).toBeGreaterThanOrEqual(18);
    expect(shown.stages.onnx?.node_total).toBeGreaterThan(0);
  });

  it('pulls the ONNX model, which a Python without torch runs', async () => {
    const out = join(tempDir(), 'model.onnx');
    const pull = await runTtd(['pull', 'onnx-seed@production', '--format', 'onnx', '-o', out, '--json'], env());
    expect(pull.code, pull.stderr).toBe(0);
    expect(JSON.parse(pull.stdout)).toMatchObject({ format: 'onnx', digest: shown.formats.onnx.digest });
    const script = [
      'import importlib.util, numpy, onnxruntime as ort',
      'assert importlib.util.find_spec("torch") is None',
      `s = ort.InferenceSession(${JSON.stringify(out)}, providers=["CPUExecutionProvider"])`,
      'x = numpy.ones((5, 3), dtype=numpy.float32)',
      'y = s.run(None, {s.get_inputs()[0].name: x})[0]',
      'print(y.shape[0], float(y[0][0]))',
    ].join('\n');
    const [rows, first] = (await mustRun(onnxPython, ['-I', '-c', script], { cwd: tempDir(), env: { PATH: '/usr/bin:/bin' } }))
      .trim()
      .split('\n')
      .pop()!
      .split(' ')
      .map(Number);
    expect(rows).toBe(5); // the batch dimension is dynamic
    expect(Math.abs(first)).toBeLessThan(5);
  });

  it('rejects an operator without an ONNX translation with onnx_export_failed, naming it and its line', async () => {
    const result = await runOnnx('onnx-zeta', join(fixtureModels, 'onnx_export_failed-special-zeta.py'));
    expect(result.status, JSON.stringify(result.gates)).toBe('rejected');
    const last = result.gates[result.gates.length - 1];
    expect(last).toMatchObject({ gate: 'onnx', code: 'onnx_export_failed' });
    expect(last.message).toContain('zeta');
    expect(last.message).toMatch(/onnx_export_failed-special-zeta\.py:20/);
  });

  it('rejects an ONNX translation that computes something else with onnx_divergence, naming its first diverging node', async () => {
    const result = await runOnnx('onnx-atan2', join(fixtureModels, 'onnx_divergence-atan2-negative-zero.py'));
    expect(result.status, JSON.stringify(result.gates)).toBe('rejected');
    const last = result.gates[result.gates.length - 1];
    expect(last).toMatchObject({ gate: 'onnx', code: 'onnx_divergence' });
    expect(last.divergence?.op).toContain('aten.atan2');
    expect(last.divergence?.location).toMatch(/onnx_divergence-atan2-negative-zero\.py:22$/);
    expect(last.divergence?.compared).toBeGreaterThan(0);
    expect(last.message).toContain('the first operator out of tolerance is');
  });

  it('rejects a forward that hard-wires batch norm in training mode as train_mode_ops on the onnx and export paths', async () => {
    const model = join(fixtureModels, 'train_mode_ops-batchnorm-one-row.py');
    for (const [format, gate] of [
      ['onnx', 'onnx'],
      ['aoti', 'export'],
    ]) {
      const result = await runOnnx(`onnx-train-${format}`, model, [format]);
      const last = result.gates[result.gates.length - 1];
      expect(last, JSON.stringify(result.gates)).toMatchObject({ gate, code: 'train_mode_ops' });
      expect(last.message).toContain('aten.batch_norm.default');
    }
  });

  it('refuses onnx on torch 1.13 before anything runs, naming the environment to use', async () => {
    const spec = writeSpec(
      tempDir(),
      quickSeedSpec('onnx-old', { environment: 'torch-1.13', formats: ['onnx'] }),
      join(seedDir, 'model.py'),
    );
    const run = await runTtd(['run', spec, '--json'], env());
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).error.message).toContain("formats: onnx needs torch 2.x (torch.export and torch.onnx's dynamo exporter)");
  });
});
