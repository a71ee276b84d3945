// The seed end to end through `ttd run` with the embedded dev server: promoted, pulled, deployed without ttd;
// once on the filesystem store and once on S3 (moto on loopback), the same code with another TTD_STORE.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { command, freePort, repoRoot, runTtd, seedDir, tempDir, type TtdRun } from '../helpers';
import { startMoto, type Moto } from '../moto';

describe.each([['file'], ['s3']])('the seed pipeline on the %s store', (backend) => {
  const home = tempDir();
  const env: Record<string, string | undefined> = {
    TTD_HOME: home,
    TEMPORAL_ADDRESS: undefined,
    TTD_QUEUE_PREFIX: `ttd-seed-${backend}`,
    // The suite's one Inductor cache (as testEnv gives), not a cold one per home: the second store's run compiles the
    // same AOTInductor package as the first's.
    TTD_INDUCTOR_CACHE: join(repoRoot, 'test-output', 'inductor-cache'),
  };
  let run: TtdRun;
  let result: RunResult;
  let moto: Moto | undefined;

  beforeAll(async () => {
    if (backend === 's3') {
      moto = await startMoto();
      await moto.createBucket('seed');
      Object.assign(env, moto.env, { TTD_STORE: 's3://seed/ttd' });
    }
    const port = await freePort();
    Object.assign(env, { TTD_TEMPORAL_PORT: String(port) });
    run = await runTtd(['run', join(seedDir, 'pipeline.yaml'), '--json'], env);
    result = JSON.parse(run.stdout);
  }, 600_000); // the seed builds both formats: an AOTInductor compile takes minutes on a machine's first
  afterAll(async () => moto?.stop());

  it('is promoted through every gate by a run that starts its own dev server', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('started the embedded Temporal dev server');
    expect(result.status).toBe('promoted');
    expect(result.model).toBe('seed-mlp');
    expect(result.version).toBe(1);
    expect(result.alias).toBe('production');
    expect(result.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.gates.map((g) => [g.gate, g.passed, g.code])).toEqual([
      ['training', true, null],
      ['trace', true, null],
      ['optimize', true, null],
      ['fusion', true, null],
      ['export', true, null],
      ['compile', true, null],
      ['parity', true, null],
      ['parity', true, null],
      ['promotion', true, null],
    ]);
    expect(Object.keys(result.timings)).toEqual([
      'train',
      'trace',
      'verify',
      'optimize',
      'fusion',
      'export',
      'compile',
      'store',
      'parity',
      'parity_aoti',
      'promote',
    ]);
  });

  it('shows epoch losses on stderr while training', () => {
    expect(run.stderr).toMatch(/epoch 1\/10 {2}loss \d+\.\d{4}/);
    expect(run.stderr).toMatch(/epoch 10\/10 {2}loss \d+\.\d{4}/);
  });

  it('pulls an artifact that a bare python -I, without ttd or the model file, answers f(1,1,1) ≈ -1.6 from', async () => {
    const deploy = mkdtempSync(join(tmpdir(), 'ttd-deploy-'));
    const pulled = await runTtd(['pull', 'seed-mlp@production', '-o', join(deploy, 'model.pt')], env);
    expect(pulled.code, pulled.stderr).toBe(0);
    const bytes = readFileSync(join(deploy, 'model.pt'));
    expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(result.digest);
    const py = await command(
      '/usr/bin/python3',
      ['-I', '-c', 'import torch; m = torch.jit.load("model.pt"); print(m(torch.tensor((1.0, 1.0, 1.0))).item())'],
      { cwd: deploy, env: { PATH: '/usr/bin:/bin' } },
    );
    expect(py.code, py.stderr).toBe(0);
    const y = Number(py.stdout.trim());
    expect(y).toBeGreaterThan(-2.1);
    expect(y).toBeLessThan(-1.1);
  });

  it('shows the version with its stage reports and a parity line per runtime and executor mode', async () => {
    const shown = await runTtd(['show', 'seed-mlp@production', '--json'], env);
    expect(shown.code, shown.stderr).toBe(0);
    const view = JSON.parse(shown.stdout);
    expect(view.digest).toBe(result.digest);
    expect(view.aliases).toEqual(['production']);
    expect(view.reports.training.losses).toHaveLength(10);
    expect(view.reports.training.losses[9]).toBeLessThan(view.reports.training.losses[0]);
    expect(view.reports.optimize.node_total_after).toBeLessThan(view.reports.optimize.node_total_before);
    expect(view.reports.optimize.nodes_before['aten::dropout']).toBe(2); // traced in eval mode: dropout is an identity…
    expect(view.reports.optimize.nodes_after['aten::dropout']).toBeUndefined(); // …that freeze removes
    // Each relu sits between two linears, so there is no pointwise chain to fuse on this model.
    expect(view.reports.fusion).toMatchObject({ require: 'none', groups: [], unfused_pointwise: ['aten::relu', 'aten::relu'] });
    const runtimes = view.reports.parity.runtimes as {
      runtime: string;
      passed: boolean;
      max_abs_error: number;
      flags: { fuser: boolean; mode: string };
      fusion: Record<string, boolean | null>;
      torch_version: string;
    }[];
    // Each runtime as its servers run it: torch 2.13's CPU wheel has no LLVM, so no fused run follows.
    expect(runtimes.map((r) => `${r.runtime}/${r.flags.mode}`)).toEqual([
      'python/serving',
      'libtorch/serving',
      'python/serving', // the AOTInductor package
      'libtorch/serving',
    ]);
    for (const r of runtimes) expect(r.fusion).toMatchObject({ llvm_enabled: false, can_fuse_on_cpu: false, te_must_use_llvm_cpu: true });
    expect(Object.keys(view.formats)).toEqual(['torchscript', 'aoti']);
    for (const r of runtimes) {
      expect(r.passed).toBe(true);
      expect(r.max_abs_error).toBeLessThanOrEqual(1e-5);
      expect(r.torch_version).toMatch(/^\d+\.\d+/);
    }
  });

  it('lists the model and keeps an intact audit chain naming the promoted digest', async () => {
    const models = await runTtd(['models', '--json'], env);
    expect(models.code, models.stderr).toBe(0);
    expect(JSON.parse(models.stdout).models).toEqual([
      expect.objectContaining({ model: 'seed-mlp', versions: 1, aliases: { production: 1 } }),
    ]);
    const verified = await runTtd(['audit', 'verify', '--json'], env);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout).models).toMatchObject([
      { model: 'seed-mlp', records: 1, problem: null, signed: 1, anchor: { seq: 1 } },
    ]);
    const log = JSON.parse((await runTtd(['audit', 'log', 'seed-mlp', '--json'], env)).stdout).records;
    expect(log).toEqual([
      expect.objectContaining({ seq: 1, prev: null, version: 1, digest: result.digest, alias: 'production', runId: result.runId }),
    ]);
  });
});
