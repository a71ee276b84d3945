// The seed end to end through `ttd run` with the embedded dev server: promoted, pulled, deployed without ttd;
// once on the filesystem store and once on S3 (moto on loopback), the same code with another TTD_STORE.
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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
      'signing_key',
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
      'sign',
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

  // What an auditor does with tools that are not ttd's: the stock OpenSSF model_signing CLI, and securesystemslib
  // (in-toto's library) for the provenance's DSSE envelope, both from make setup's .verify virtualenv.
  describe('signed for tools that are not ttd’s', () => {
    const auditor = tempDir();
    const pulled = join(auditor, 'pulled');
    const publicKey = join(auditor, 'ttd-signing.pub');
    const modelSigning = (dir: string) =>
      command(join(repoRoot, '.verify', 'bin', 'model_signing'), [
        'verify',
        'key',
        '--signature',
        join(dir, 'model.sig'),
        '--public_key',
        publicKey,
        dir,
      ]);

    beforeAll(async () => {
      const key = await runTtd(['signing-key'], env);
      expect(key.code, key.stderr).toBe(0);
      writeFileSync(publicKey, key.stdout); // the public key alone: the auditor has no keys directory
    });

    it('pulls every format and its OpenSSF signature into an empty directory, which model_signing verify key accepts', async () => {
      const pull = await runTtd(['pull', 'seed-mlp@production', '--signature', '-o', pulled, '--json'], env);
      expect(pull.code, pull.stderr).toBe(0);
      const out = JSON.parse(pull.stdout);
      expect(readdirSync(pulled).sort()).toEqual(['model.pt', 'model.pt2', 'model.sig']);
      expect(out.files.map((f: { name: string; format: string }) => [f.name, f.format])).toEqual([
        ['model.pt', 'torchscript'],
        ['model.pt2', 'aoti'],
      ]);
      expect(out.signature.verified).toBe(true);
      const shown = JSON.parse((await runTtd(['show', 'seed-mlp@production', '--json'], env)).stdout);
      expect(shown.signed).toEqual({
        signature: out.signature.digest,
        provenance: expect.stringMatching(/^sha256:/),
        keyId: out.signature.keyId,
      });
      expect(
        `sha256:${createHash('sha256')
          .update(readFileSync(join(pulled, 'model.pt')))
          .digest('hex')}`,
      ).toBe(result.digest);
      const verified = await modelSigning(pulled);
      expect(verified.code, verified.stderr).toBe(0);
      expect(verified.stdout).toContain('Verification succeeded');
    });

    it('model_signing verify refuses the directory after one byte of any artifact changes, one is appended, or a file is added', async () => {
      const tampered: [string, (dir: string) => void][] = [
        ...['model.pt', 'model.pt2'].map(
          (name) =>
            [
              `a flipped byte in ${name}`,
              (dir: string) => {
                const bytes = readFileSync(join(dir, name));
                bytes[bytes.length >> 1] ^= 0x01;
                writeFileSync(join(dir, name), bytes);
              },
            ] as [string, (dir: string) => void],
        ),
        ['a byte appended to model.pt2', (dir) => appendFileSync(join(dir, 'model.pt2'), Buffer.from([0]))],
        ['a file added', (dir) => writeFileSync(join(dir, 'extra.py'), 'import os\n')],
      ];
      for (const [what, tamper] of tampered) {
        const copy = join(tempDir(), 'pulled');
        cpSync(pulled, copy, { recursive: true });
        tamper(copy);
        const refused = await modelSigning(copy);
        expect(refused.code, what).toBe(1);
        expect(refused.stderr, what).toMatch(/Verification failed.*(Hash mismatch|Extra files)/);
      }
    });

    it('prints SLSA provenance whose DSSE signature and subjects verify with securesystemslib, and fail once a field changes', async () => {
      const envelopeFile = join(auditor, 'provenance.json');
      const printed = await runTtd(['provenance', 'seed-mlp@production', '-o', envelopeFile], env);
      expect(printed.code, printed.stderr).toBe(0);
      const audit = (file: string) =>
        command(join(repoRoot, '.verify', 'bin', 'python'), [
          join(repoRoot, 'test', 'fixtures', 'verify', 'verify_provenance.py'),
          file,
          publicKey,
          pulled,
        ]);
      const ok = await audit(envelopeFile);
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout).predicateType).toBe('https://slsa.dev/provenance/v1');

      const envelope = JSON.parse(readFileSync(envelopeFile, 'utf8'));
      const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8'));
      const { buildDefinition, runDetails } = statement.predicate;
      expect(buildDefinition.externalParameters).toMatchObject({ model: 'seed-mlp', trigger: 'manual', commit: null });
      expect(buildDefinition.externalParameters.spec.digest).toMatch(/^sha256:/);
      expect(buildDefinition.externalParameters.modelFile.digest).toMatch(/^sha256:/);
      expect(buildDefinition.internalParameters.environment.torchVersion).toMatch(/^2\.13\.0/);
      // Every package of the environment that trained it, as resolved dependencies too.
      expect(buildDefinition.internalParameters.environment.packages).toMatchObject({
        torch: expect.stringMatching(/^2\.13\.0/),
        numpy: expect.any(String),
      });
      expect(buildDefinition.resolvedDependencies.map((d: { uri?: string }) => d.uri)).toContain(
        `pkg:pypi/numpy@${buildDefinition.internalParameters.environment.packages.numpy}`,
      );
      // Every gate's verdict up to signing, as the run recorded it (promotion comes after).
      expect(buildDefinition.internalParameters.gates.map((g: { gate: string }) => g.gate)).toEqual(
        result.gates.filter((g) => g.gate !== 'promotion').map((g) => g.gate),
      );
      expect(runDetails.metadata.invocationId).toBe(result.runId);
      expect(runDetails.builder.id).toMatch(/^urn:ttd:worker:\d+@/);

      // A changed field (the commit a CI job would forge), the envelope re-encoded with the old signature: refused.
      statement.predicate.buildDefinition.externalParameters.commit = 'deadbeef';
      const forged = join(auditor, 'forged.json');
      writeFileSync(forged, JSON.stringify({ ...envelope, payload: Buffer.from(JSON.stringify(statement)).toString('base64') }));
      const refused = await audit(forged);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('VerificationError');
    });
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
