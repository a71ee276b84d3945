// Torch environments: make setup installs torch-2.13 and torch-1.13; ttd env list reports them; a run uses the one its
// spec names, else the newest installed, and the version says which.
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { fixtureModels, quickSeedSpec, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

interface Listed {
  environments: {
    name: string;
    torch_version: string | null;
    libtorch_version: string | null;
    installed: boolean;
    device: string;
    python: string;
    cpu_fusion: boolean | null;
  }[];
  default: string | null;
}

describe('torch environments', () => {
  const home = tempDir();
  const env = () => testEnv(home, inject('temporalAddress'));
  let listed: Listed;
  const runs: Record<
    string,
    {
      result: RunResult;
      show: { stages?: Record<string, unknown>; reports: { parity: { runtimes: { runtime: string; torch_version: string | null }[] } } };
    }
  > = {};

  beforeAll(async () => {
    const list = await runTtd(['env', 'list', '--json'], env());
    expect(list.code, list.stderr).toBe(0);
    listed = JSON.parse(list.stdout);
    // A run on each environment, and one that names none.
    for (const [key, extra] of [
      ['torch-2.13', { environment: 'torch-2.13' }],
      ['torch-1.13', { environment: 'torch-1.13' }],
      ['default', {}],
    ] as const) {
      const spec = writeSpec(home, quickSeedSpec(`env-${key.replace('.', '')}`, extra), join(seedDir, 'model.py'), `${key}.yaml`);
      const run = await runTtd(['run', spec, '--json'], env());
      const result = JSON.parse(run.stdout) as RunResult;
      const show = await runTtd(['show', `${result.model}@production`, '--json'], env());
      runs[key] = { result, show: show.code === 0 ? JSON.parse(show.stdout) : { reports: { parity: { runtimes: [] } } } };
    }
  }, 300_000);

  it('ttd env list reports torch-2.13 and torch-1.13 installed, newest first, with their torch versions', () => {
    expect(listed.environments.map((e) => e.name)).toEqual(['torch-2.13', 'torch-1.13']);
    expect(listed.environments.every((e) => e.installed && e.device === 'cpu')).toBe(true);
    expect(listed.environments[0].torch_version).toMatch(/^2\.13\./);
    expect(listed.environments[1].torch_version).toMatch(/^1\.13\./);
    expect(listed.default).toBe('torch-2.13');
    // Neither the torch 2.13 CPU wheel nor Debian's 1.13 has LLVM: their CPU servers never fuse.
    expect(listed.environments.map((e) => e.cpu_fusion)).toEqual([false, false]);
  });

  it.each(['torch-2.13', 'torch-1.13'])('the seed is promoted on %s, and both parity runtimes ran that torch', (name) => {
    const { result, show } = runs[name];
    expect(result.status, JSON.stringify(result.gates)).toBe('promoted');
    const version = name === 'torch-2.13' ? /^2\.13\./ : /^1\.13\./;
    const runtimes = show.reports.parity.runtimes;
    // One serving run each: neither build fuses, so no fused run follows.
    expect(runtimes.map((r) => r.runtime).sort()).toEqual(['libtorch', 'python']);
    for (const r of runtimes) expect(r.torch_version, r.runtime).toMatch(version);
  });

  it('a spec that names no environment runs on the newest installed', () => {
    const { result, show } = runs.default;
    expect(result.status, JSON.stringify(result.gates)).toBe('promoted');
    expect(show.reports.parity.runtimes.length).toBe(2);
    expect(show.reports.parity.runtimes.every((r) => /^2\.13\./.test(r.torch_version ?? ''))).toBe(true);
  });

  // The gates and the parity check on the old torch too: [fixture, gate, code].
  it.each([
    ['control_flow_divergence-if-sum', 'trace', 'control_flow_divergence'],
    ['train_mode_ops-forced-dropout', 'trace', 'train_mode_ops'],
    ['parity-flush-denormal', 'parity', 'tolerance_exceeded'],
  ])('on torch-1.13, %s is rejected at the %s gate with %s', async (fixture, gate, code) => {
    const dir = tempDir();
    const spec = writeSpec(
      dir,
      quickSeedSpec(`old-${fixture.split('-')[0].replace(/_/g, '-')}`, { environment: 'torch-1.13' }),
      join(fixtureModels, `${fixture}.py`),
    );
    const run = await runTtd(['run', spec, '--json'], env());
    const result = JSON.parse(run.stdout) as RunResult;
    expect(result.status, JSON.stringify(result.gates)).toBe('rejected');
    expect(result.gates[result.gates.length - 1]).toMatchObject({ gate, code });
    if (gate === 'parity') for (const p of result.parity ?? []) expect(p.environment).toBe('torch-1.13');
  });
});
