// torch.export and AOTInductor beside TorchScript: the seed promoted in both formats, each checked in the Python and the
// libtorch runtime of torch 2.13; the package pulled and run in a bare Python; export's gate on a data-dependent branch.
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { fixtureModels, mustRun, quickSeedSpec, repoRoot, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

const python213 = join(repoRoot, '.torch', 'torch-2.13', 'bin', 'python');

interface Shown {
  formats: Record<string, { digest: string }>;
  stages: {
    export?: { dynamic_dims: unknown[]; passed: boolean };
    compile?: { kernel_count: number; compile_ms: number; cache_hit: boolean };
  };
}

describe('AOTInductor packages beside TorchScript (torch-2.13)', () => {
  const home = tempDir();
  const env = () => testEnv(home, inject('temporalAddress'));
  let both: RunResult;
  let shown: Shown;

  beforeAll(async () => {
    const spec = writeSpec(
      home,
      quickSeedSpec('aoti-seed', { environment: 'torch-2.13', formats: ['torchscript', 'aoti'] }),
      join(seedDir, 'model.py'),
    );
    const run = await runTtd(['run', spec, '--json'], env());
    both = JSON.parse(run.stdout);
    const show = await runTtd(['show', 'aoti-seed@production', '--json'], env());
    shown = show.code === 0 ? JSON.parse(show.stdout) : { formats: {}, stages: {} };
  }, 600_000);

  it('promotes the seed as TorchScript and as an AOTInductor package, through the export and compile gates', () => {
    expect(both.status, JSON.stringify(both.gates)).toBe('promoted');
    const gates = both.gates.map((g) => g.gate);
    expect(gates).toEqual(expect.arrayContaining(['trace', 'optimize', 'fusion', 'export', 'compile', 'parity', 'promotion']));
    expect(Object.keys(both.timings)).toEqual(expect.arrayContaining(['export', 'compile', 'parity', 'parity_aoti']));
  });

  it('checks each format in the python and the libtorch runtime of torch 2.13, as their servers run it (no LLVM: no fused run)', () => {
    const lines = (both.parity ?? []).map((p) => `${p.format} ${p.runtime} ${p.flags.mode} ${p.environment}`);
    expect(lines.sort()).toEqual([
      'aoti libtorch serving torch-2.13',
      'aoti python serving torch-2.13',
      'torchscript libtorch serving torch-2.13',
      'torchscript python serving torch-2.13',
    ]);
    for (const p of both.parity ?? []) {
      expect(p.passed, p.message).toBe(true);
      expect(p.torch_version).toMatch(/^2\.13\./);
    }
  });

  it('shows one artifact per format, and what export and compile found', () => {
    expect(Object.keys(shown.formats).sort()).toEqual(['aoti', 'torchscript']);
    expect(shown.formats.torchscript.digest).toBe(both.digest);
    expect(shown.formats.aoti.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(shown.formats.aoti.digest).not.toBe(both.digest);
    expect(shown.stages.export?.dynamic_dims.length).toBeGreaterThan(0);
    expect(shown.stages.compile?.kernel_count).toBeGreaterThan(0);
  });

  it('pulls the package, which a bare python -I of torch 2.13 runs without ttd or the model file', async () => {
    const out = join(tempDir(), 'model.pt2');
    const pull = await runTtd(['pull', 'aoti-seed@production', '--format', 'aoti', '-o', out, '--json'], env());
    expect(pull.code, pull.stderr).toBe(0);
    expect(JSON.parse(pull.stdout)).toMatchObject({ format: 'aoti', digest: shown.formats.aoti.digest });
    const script = `import torch, torch._inductor as i; m = i.aoti_load_package(${JSON.stringify(out)}); print(float(m(torch.ones(2, 3))[0][0]))`;
    const answer = Number(
      (await mustRun(python213, ['-I', '-c', script], { cwd: tempDir(), env: { PATH: '/usr/bin:/bin' } }))
        .trim()
        .split('\n')
        .pop(),
    );
    expect(Number.isFinite(answer)).toBe(true);
    expect(answer).toBeGreaterThan(-5);
    expect(answer).toBeLessThan(5);
  });

  it('refuses aoti on torch 1.13 before anything runs, naming the environment to use', async () => {
    const spec = writeSpec(
      tempDir(),
      quickSeedSpec('aoti-old', { environment: 'torch-1.13', formats: ['aoti'] }),
      join(seedDir, 'model.py'),
    );
    const run = await runTtd(['run', spec, '--json'], env());
    expect(run.code).toBe(2);
    const { error } = JSON.parse(run.stdout);
    expect(error.code).toBe('spec_invalid');
    expect(error.message).toContain(
      "formats: aoti needs torch 2.x (torch.export and AOTInductor), but environment 'torch-1.13' has torch 1.13",
    );
  });

  it('rejects a data-dependent branch at the export gate, naming the line and torch.cond', async () => {
    const model = join(fixtureModels, 'control_flow_divergence-if-sum.py');
    const spec = writeSpec(tempDir(), quickSeedSpec('aoti-branch', { environment: 'torch-2.13', formats: ['aoti'] }), model);
    const run = await runTtd(['run', spec, '--json'], env());
    const result = JSON.parse(run.stdout) as RunResult;
    expect(result.status, JSON.stringify(result.gates)).toBe('rejected');
    const last = result.gates[result.gates.length - 1];
    expect(last).toMatchObject({ gate: 'export', code: 'data_dependent_control_flow' });
    expect(last.message).toMatch(/control_flow_divergence-if-sum\.py:\d+/);
    expect(last.message).toContain('torch.cond');
  });
});
