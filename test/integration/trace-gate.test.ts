// The trace, optimize and fusion gates through `ttd run`: every pitfall fixture is rejected with its code and a
// fix, every healthy model is promoted. A false rejection is as serious a defect as a missed pitfall.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { fixtureModels, runTtd, tempDir, testEnv, writeSpec } from '../helpers';

const quick = { train: { epochs: 2, batch_size: 32 } };

/** Runs a fixture through `ttd run --json` with a spec built from `extra`. */
async function runFixture(
  home: string,
  fixture: string,
  extra: Record<string, unknown> = {},
): Promise<{ code: number | null; result: RunResult; stderr: string }> {
  const name = fixture.toLowerCase().replace(/_/g, '-');
  const spec = writeSpec(tempDir(), { name, ...quick, ...extra }, join(fixtureModels, `${fixture}.py`));
  const run = await runTtd(['run', spec, '--json'], testEnv(home, inject('temporalAddress')));
  return { code: run.code, result: JSON.parse(run.stdout), stderr: run.stderr };
}

// [fixture, spec additions, gate, code, what the message must tell the user]
const pitfalls: [string, Record<string, unknown>, string, string, RegExp][] = [
  [
    'control_flow_divergence-if-sum',
    {},
    'trace',
    'control_flow_divergence',
    /control_flow_divergence-if-sum\.py:\d+ \(Python boolean\).*trace\.mode: script/,
  ],
  [
    'control_flow_divergence-submodule-mean',
    {},
    'trace',
    'control_flow_divergence',
    /differ on inputs that take other paths.*trace\.mode: script/,
  ],
  [
    'control_flow_divergence-while-norm',
    {},
    'trace',
    'control_flow_divergence',
    /control_flow_divergence-while-norm\.py:\d+.*trace\.mode: script/,
  ],
  [
    'python_value_capture-float-scale',
    {},
    'trace',
    'python_value_capture',
    /turned a tensor into a Python number at python_value_capture-float-scale\.py:\d+.*keep it a tensor/,
  ],
  ['python_value_capture-item-offset', {}, 'trace', 'python_value_capture', /Python number at python_value_capture-item-offset\.py:\d+/],
  [
    'python_value_capture-outlier-guard',
    {},
    'trace',
    'python_value_capture',
    /outlier-guard\.py:21 \(Python boolean\): a Python if on a tensor, computed from the inputs; no probe took another path.*torch\.where.*trace\.accept_captures/,
  ],
  ['shape_specialization-row-loop', {}, 'trace', 'shape_specialization', /fails or disagrees at another batch size \(case batch_\d+/],
  [
    'shape_specialization-len-mean',
    {},
    'trace',
    'shape_specialization',
    /len\(\) of a tensor was captured at shape_specialization-len-mean\.py:\d+/,
  ],
  ['shape_specialization-int-size-view', {}, 'trace', 'shape_specialization', /another batch size.*x\.shape\[0\]/],
  ['train_mode_ops-forced-dropout', {}, 'trace', 'train_mode_ops', /keeps aten::dropout in training mode.*training=self\.training/],
  ['train_mode_ops-functional-batchnorm', {}, 'trace', 'train_mode_ops', /keeps aten::batch_norm in training mode/],
  [
    'train_mode_ops-batchnorm-one-row',
    {},
    'trace',
    'train_mode_ops',
    /keeps aten::batch_norm in training mode.*eager model itself raised on case batch_1 \(.*Expected more than 1 value per channel/,
  ],
  [
    'nondeterministic-randn-noise',
    {},
    'trace',
    'nondeterministic',
    /two runs of the traced module on case validation differ.*aten::randn_like/,
  ],
  ['nondeterministic-bernoulli-mask', {}, 'trace', 'nondeterministic', /two runs of the traced module.*aten::bernoulli/],
  ['nondeterministic-rand-jitter', {}, 'trace', 'nondeterministic', /two runs of the traced module/],
  [
    'device_constant-zeros-cpu',
    { trace: { target_device: 'cuda' } },
    'trace',
    'device_constant',
    /bakes device cpu .* but target_device is cuda/,
  ],
  [
    'device_constant-to-cpu',
    { trace: { target_device: 'cuda' } },
    'trace',
    'device_constant',
    /bakes device cpu .* but target_device is cuda/,
  ],
];

describe('pitfalls', () => {
  const home = tempDir();

  it.each(pitfalls)(
    '%s is rejected with its gate, code and a message saying what to change',
    async (fixture, extra, gate, code, message) => {
      const { code: exit, result, stderr } = await runFixture(home, fixture, extra);
      expect(exit, stderr).toBe(1);
      expect(result.status).toBe('rejected');
      expect(result.version).toBeNull();
      const failed = result.gates.filter((g) => !g.passed);
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ gate, code });
      expect(failed[0].message).toMatch(message);
      expect(result.gates[result.gates.length - 1]).toBe(failed[0]); // nothing ran past the failed gate
    },
  );

  it('registered nothing for any rejected run', () => {
    expect(existsSync(join(home, 'store', 'registry'))).toBe(false);
    expect(existsSync(join(home, 'store', 'audit'))).toBe(false);
  });
});

describe('healthy models', () => {
  const home = tempDir();
  const env = () => testEnv(home, inject('temporalAddress'));

  it.each([['healthy-convnet'], ['healthy-gru'], ['healthy-transformer']])('%s passes every gate and is promoted', async (fixture) => {
    const { code, result, stderr } = await runFixture(home, fixture, { optimize: { method: 'optimize_for_inference' } });
    expect(code, stderr).toBe(0);
    expect(result.gates.map((g) => [g.gate, g.passed])).toEqual([
      ['training', true],
      ['trace', true],
      ['optimize', true],
      ['fusion', true],
      ['parity', true],
      ['promotion', true],
    ]);
  });

  it('a GRU passes although torch itself raises TracerWarnings from rnn.py while tracing it', async () => {
    const shown = JSON.parse((await runTtd(['show', 'healthy-gru@production', '--json'], env())).stdout);
    expect(shown.reports.trace.warnings.some((w: { filename: string }) => w.filename.includes('rnn.py'))).toBe(true);
    expect(shown.reports.trace.captures).toEqual([]);
  });

  it('a capture that changes no output is promoted with a warning naming it', async () => {
    const { code, result } = await runFixture(home, 'python_value_capture-harmless-monitor');
    expect(code).toBe(0);
    const trace = result.gates.find((g) => g.gate === 'trace')!;
    expect(trace.passed).toBe(true);
    expect(trace.warnings?.join('\n')).toMatch(/python_value_capture-harmless-monitor\.py:\d+/);
  });

  it('a capture listed in trace.accept_captures is promoted with a warning saying it was accepted', async () => {
    const { code, result, stderr } = await runFixture(home, 'python_value_capture-outlier-guard', {
      trace: { accept_captures: ['python_value_capture-outlier-guard.py:21'] },
    });
    expect(code, stderr).toBe(0);
    const trace = result.gates.find((g) => g.gate === 'trace')!;
    expect(trace.warnings?.join('\n')).toMatch(/outlier-guard\.py:21 .*accepted by trace\.accept_captures/);
  });

  it("torch's TracerWarnings from the user's file reach the run's gate warnings and show's reports.trace", async () => {
    const { code, result } = await runFixture(home, 'shape_specialization-len-mean', { trace: { batch_sizes: [] } });
    expect(code).toBe(0);
    const trace = result.gates.find((g) => g.gate === 'trace')!;
    expect(trace.warnings?.join('\n')).toMatch(/torch warned while tracing at shape_specialization-len-mean\.py:19: Using len/);
    const shown = JSON.parse((await runTtd(['show', 'shape-specialization-len-mean@production', '--json'], env())).stdout);
    expect(shown.reports.trace.tracer_warnings).toEqual([
      expect.objectContaining({ lineno: 19, message: expect.stringMatching(/^Using len/) }),
    ]);
    const out = join(tempDir(), 'report.html');
    const report = await runTtd(['report', result.runId, '-o', out], env());
    expect(report.code, report.stderr).toBe(0);
    expect(readFileSync(out, 'utf8')).toContain('torch warned while tracing at shape_specialization-len-mean.py:19: Using len');
  });

  it('a device constant that matches the target device is a warning, not a rejection', async () => {
    const { code, result } = await runFixture(home, 'device_constant-zeros-cpu');
    expect(code).toBe(0);
    expect(result.gates.find((g) => g.gate === 'trace')!.warnings?.join('\n')).toContain('it matches target_device cpu');
  });

  it('trace.mode: script compiles the control flow the trace would lose, and the same checks pass', async () => {
    const { code, result, stderr } = await runFixture(home, 'control_flow_divergence-if-sum', { trace: { mode: 'script' } });
    expect(code, stderr).toBe(0);
    expect(result.status).toBe('promoted');
    const shown = JSON.parse((await runTtd(['show', 'control-flow-divergence-if-sum@production', '--json'], env())).stdout);
    expect(shown.reports.trace.mode).toBe('script');
  });

  it("the seed's f example forms one TensorExpr group of mul, add and relu, and show reports it as unfused on this build", async () => {
    // fusion.require would be refused here (no LLVM: fusion_unavailable); the groups are shown all the same.
    const { code, stderr } = await runFixture(home, 'fusion-seed-f', { fusion: { require: 'none' } });
    expect(code, stderr).toBe(0);
    const shown = JSON.parse((await runTtd(['show', 'fusion-seed-f@production', '--json'], env())).stdout);
    expect(shown.reports.fusion.groups).toEqual([{ kind: 'prim::TensorExprGroup', ops: ['aten::mul', 'aten::add', 'aten::relu'] }]);
    expect(shown.reports.fusion.unfused_pointwise).toEqual([]);
    expect(shown.reports.fusion.torch_version).toMatch(/^\d+\.\d+/);
    expect(shown.reports.fusion.flags).toBeTypeOf('object');
    expect(shown.reports.fusion).toMatchObject({ fuses: false, compared: false, build: { llvm_enabled: false } });
    expect(shown.reports.optimize.node_total_after).toBeLessThan(shown.reports.optimize.node_total_before);
    expect(shown.files.fusedGraph).toMatch(/^sha256:/);
  });
});
