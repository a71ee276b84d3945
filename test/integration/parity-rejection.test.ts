// An honest parity rejection: a model whose custom operator exists only in the training process.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { fixtureModels, quickSeedSpec, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

describe('parity', () => {
  const home = tempDir();
  const env = testEnv(home, inject('temporalAddress'));

  it('rejects a model no fresh runtime can load, promotes nothing and leaves the alias where it was', async () => {
    const good = await runTtd(['run', writeSpec(tempDir(), quickSeedSpec('scaler'), join(seedDir, 'model.py')), '--json'], env);
    expect(good.code, good.stderr).toBe(0);
    const first: RunResult = JSON.parse(good.stdout);
    expect(first).toMatchObject({ status: 'promoted', version: 1 });

    const spec = writeSpec(tempDir(), { ...quickSeedSpec('scaler'), trace: { batch_sizes: [1, 3] } }, join(fixtureModels, 'custom-op.py'));
    const run = await runTtd(['run', spec, '--json'], env);
    expect(run.code, run.stderr).toBe(1);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.status).toBe('rejected');
    expect(result.version).toBeNull();
    // Every in-process gate passed: only a fresh runtime can find this.
    expect(result.gates.map((g) => [g.gate, g.passed])).toEqual([
      ['training', true],
      ['trace', true],
      ['optimize', true],
      ['fusion', true],
      ['parity', false],
    ]);
    const parity = result.gates[4];
    expect(parity.code).toBe('runtime_load_failed');
    expect(parity.message).toMatch(/python of torch-[\d.]+ could not load or run the torchscript artifact/);
    expect(parity.message).toContain('ttdfixture::scale');
    expect(result.parity?.map((p) => [p.runtime, p.passed, p.code])).toEqual([
      ['python', false, 'runtime_load_failed'],
      ['libtorch', false, 'runtime_load_failed'],
    ]);

    const shown = await runTtd(['show', 'scaler@production', '--json'], env);
    const view = JSON.parse(shown.stdout);
    expect(view.version).toBe(1);
    expect(view.digest).toBe(first.digest);
    expect(view.versions).toHaveLength(1);
    expect(readdirSync(join(home, 'store', 'audit', 'scaler'))).toEqual(['00000001.json']);
  });

  it('pull refuses an artifact whose stored bytes no longer match their digest, naming both, and writes nothing', async () => {
    const shown = JSON.parse((await runTtd(['show', 'scaler@production', '--json'], env)).stdout);
    const hex = String(shown.digest).slice('sha256:'.length);
    writeFileSync(join(home, 'store', 'blobs', 'sha256', hex), 'tampered');
    const out = join(tempDir(), 'model.pt');
    const pulled = await runTtd(['pull', 'scaler@production', '-o', out], env);
    expect(pulled.code).toBe(2);
    expect(pulled.stderr).toContain(`expected digest ${shown.digest} but the bytes hash to sha256:`);
    expect(pulled.stderr).toContain('[digest_mismatch]');
    expect(existsSync(out)).toBe(false);
  });

  it('rejects a model whose fresh runtimes disagree beyond tolerance, naming the runtime, the output and the numbers', async () => {
    const spec = writeSpec(
      tempDir(),
      { name: 'flush', train: { epochs: 2, batch_size: 16 } },
      join(fixtureModels, 'parity-flush-denormal.py'),
    );
    const run = await runTtd(['run', spec, '--json'], env);
    expect(run.code, run.stderr).toBe(1);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.gates.map((g) => [g.gate, g.passed])).toEqual([
      ['training', true],
      ['trace', true],
      ['optimize', true],
      ['fusion', true],
      ['parity', false],
    ]);
    const parity = result.gates[4];
    expect(parity.code).toBe('tolerance_exceeded');
    expect(parity.message).toMatch(
      /^python: output '[a-z0-9_]+\/output\/0' differs by up to \d\.\d{3}e-\d \(relative \d\.\d{3}e[-+]\d+\), allowed atol 0\.00001 \+ rtol 0\.0001·\|reference\|$/,
    );
    for (const r of result.parity ?? []) {
      expect(r).toMatchObject({ passed: false, code: 'tolerance_exceeded', threads: 1 });
      expect(r.max_abs_error).toBeGreaterThan(1e-3);
    }
    // As their servers run it: a build without LLVM gets no fused run.
    expect(result.parity?.map((r) => `${r.runtime}/${r.flags.mode}`)).toEqual(['python/serving', 'libtorch/serving']);
    expect(existsSync(join(home, 'store', 'registry', 'flush.json'))).toBe(false);
  });

  it('a runtime past its limit is runtime_timeout, naming the limit and what it derives from, not a load failure', async () => {
    // No load allowance: the limit is then about 50 times the eager time of the seed's cases (milliseconds), which no
    // Python runner that imports torch meets. A real host keeps the default 120 s (docs/fusion.md, "Time limits").
    const spec = writeSpec(tempDir(), quickSeedSpec('slowrt', { parity: { runtimes: ['python'] } }), join(seedDir, 'model.py'));
    // A home of its own: an earlier test here tampers with the seed's stored archive, which this run would reuse.
    const own = testEnv(tempDir(), inject('temporalAddress'));
    const run = await runTtd(['run', spec, '--json'], { ...own, TTD_RUNTIME_LOAD_ALLOWANCE_S: '0' });
    expect(run.code, run.stderr).toBe(1);
    const result: RunResult = JSON.parse(run.stdout);
    const parity = result.gates.find((g) => g.gate === 'parity')!;
    expect(parity.code).toBe('runtime_timeout');
    expect(parity.message).toMatch(
      /^python of torch-2\.13 did not finish the torchscript artifact within its limit of \d+(\.\d)? s \(0\.0 s to load \+ 50 × the \d+\.\d s the reference cases took eagerly\); expected it to load and run every reference case within it: raise time_limits\.scale in the spec if this runtime really needs longer$/,
    );
    expect(result.parity?.map((p) => [p.runtime, p.code])).toEqual([['python', 'runtime_timeout']]);
  });
});
