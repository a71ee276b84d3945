// Environments declared with the spec (issue 22 item 3), with real uv against the real index: a transformers model
// declared through environment.requirements is promoted with Python and libtorch parity in both formats, sharing the
// base's torch; the same requirements from a file reuse the built environment; hashes are enforced; a requirement that
// needs another torch and an unreachable index are refused before training with their codes, leaving nothing built;
// a TTD_PYTHON whose libtorch runner has another torch is refused before anything starts.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { declaredDigest } from '../../lib/environments/declared-environments';
import type { RunResult } from '../../lib/contract/results';
import { startWorker } from '../hosts';
import { freePort, quickSeedSpec, repoRoot, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

const BERT_MODEL = join(repoRoot, 'test', 'fixtures', 'environments', 'tiny-bert.py');
const TRANSFORMERS = 'transformers==5.25.0';
const SIX_SHA256 = '4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274'; // six-1.17.0-py2.py3-none-any.whl

// The BERT classifier's spec: cross-entropy over two labels; parity tolerances for a 16-wide transformer.
const bertSpec = (name: string, requirements: string[] | string, formats = ['torchscript', 'aoti']) => ({
  name,
  formats,
  environment: { base: 'torch-2.13', requirements },
  train: { epochs: 1, batch_size: 16, optimizer: 'adam', lr: 0.001, loss: 'cross_entropy', seed: 0 },
  trace: { batch_sizes: [1, 5] },
  parity: { runtimes: ['python', 'libtorch'], atol: 1e-4, rtol: 1e-3 },
});

interface Shown {
  environment?: { base: string; digest: string; torch_version: string; resolved: string[]; installed: string[] };
  spec: { environment?: { base: string; requirements: unknown; resolved?: string[] } };
}

describe('environments declared with the spec', () => {
  const home = tempDir();
  // One cache for the file: the first run builds with uv, later ones reuse (TTD_ENV_CACHE, shared by a host's workers).
  const envCache = join(home, 'envs');
  const env = (extra: Record<string, string> = {}) => ({ ...testEnv(home, inject('temporalAddress')), TTD_ENV_CACHE: envCache, ...extra });
  const builds = () => readdirSync(envCache).filter((d) => !d.startsWith('.uv'));
  const hexOf = (requirements: string[]) => declaredDigest({ base: 'torch-2.13', requirements }).slice('sha256:'.length);
  let bert: RunResult;
  let shown: Shown;

  beforeAll(async () => {
    const dir = tempDir();
    const run = await runTtd(['run', writeSpec(dir, bertSpec('tiny-bert', [TRANSFORMERS]), BERT_MODEL), '--json'], env());
    expect(run.stdout, run.stderr).toContain('"status"');
    bert = JSON.parse(run.stdout) as RunResult;
    const show = await runTtd(['show', 'tiny-bert@production', '--json'], env());
    shown = show.code === 0 ? (JSON.parse(show.stdout) as Shown) : { spec: {} };
  }, 600_000);

  it('a transformers model declared through environment.requirements is promoted with Python and libtorch parity in both formats', () => {
    expect(bert.status, JSON.stringify(bert.gates)).toBe('promoted');
    expect(bert.gates[0]).toMatchObject({ gate: 'environment', passed: true });
    expect(bert.gates[0].message).toMatch(
      /^built environment sha256:[0-9a-f]{12}: \d+ packages installed beside \d+ of the base \(torch 2\.13\.0\+cpu of torch-2\.13, shared\)$/,
    );
    // The environment stage runs before training, after the signing key's check.
    expect(Object.keys(bert.timings).slice(0, 3)).toEqual(['signing_key', 'environment', 'train']);
    const label = `torch-2.13+${hexOf([TRANSFORMERS]).slice(0, 12)}`;
    const rows = (bert.parity ?? [])
      .filter((p) => !p.flags.fuser)
      .map((p) => [p.format ?? 'torchscript', p.runtime, p.environment, p.passed]);
    expect(rows.sort()).toEqual([
      ['aoti', 'libtorch', label, true],
      ['aoti', 'python', label, true],
      ['torchscript', 'libtorch', label, true],
      ['torchscript', 'python', label, true],
    ]);
    // Both runtimes ran the base's torch: the Python one imports it through the environment, the runner links it.
    for (const p of bert.parity ?? []) expect(p.torch_version, `${p.format} ${p.runtime}`).toMatch(/^2\.13\.0/);
  });

  it("the version's manifest and stored spec name every resolved package; torch is the base's, not installed again", () => {
    expect(shown.environment?.base).toBe('torch-2.13');
    expect(shown.environment?.digest).toBe(`sha256:${hexOf([TRANSFORMERS])}`);
    expect(shown.environment?.resolved).toContain(TRANSFORMERS);
    expect(shown.environment?.resolved.some((r) => /^tokenizers==/.test(r))).toBe(true);
    expect(shown.environment?.torch_version).toBe('2.13.0+cpu');
    expect(shown.environment?.installed).toContain(TRANSFORMERS);
    expect(shown.environment?.installed.some((r) => r.startsWith('torch=='))).toBe(false);
    expect(shown.spec.environment).toEqual({ base: 'torch-2.13', requirements: [TRANSFORMERS], resolved: shown.environment?.resolved });
    const site = join(envCache, hexOf([TRANSFORMERS]), 'venv', 'lib', 'python3.11', 'site-packages');
    expect(existsSync(join(site, 'transformers'))).toBe(true);
    expect(existsSync(join(site, 'torch'))).toBe(false);
    expect(builds()).toEqual([hexOf([TRANSFORMERS])]); // built in a temporary directory, renamed: nothing half-made
  });

  it('the same requirements from a requirements file beside the spec reuse the built environment at once', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'requirements.txt'), `# the classifier's one dependency beside torch\n${TRANSFORMERS}\n`);
    const spec = writeSpec(dir, bertSpec('tiny-bert-file', 'requirements.txt', ['torchscript']), BERT_MODEL);
    const run = await runTtd(['run', spec, '--json'], env());
    const result = JSON.parse(run.stdout) as RunResult;
    expect(result.status, JSON.stringify(result.gates)).toBe('promoted');
    expect(result.gates[0].message).toMatch(/^environment sha256:[0-9a-f]{12} already built: \d+ packages/);
    expect(result.cached).toContain('environment');
    expect(result.timings.environment).toBeLessThan(5_000);
    expect(builds()).toEqual([hexOf([TRANSFORMERS])]);
  });

  it('hashes in a requirements file are enforced: the right one builds, a wrong one is environment_invalid before training', async () => {
    const good = `six==1.17.0 --hash=sha256:${SIX_SHA256}`;
    const dir = tempDir();
    writeFileSync(join(dir, 'requirements.txt'), `six==1.17.0 \\\n    --hash=sha256:${SIX_SHA256}\n`);
    const spec = writeSpec(
      dir,
      quickSeedSpec('six-hashed', {
        environment: { base: 'torch-2.13', requirements: 'requirements.txt' },
        parity: { runtimes: ['python'] },
      }),
      join(seedDir, 'model.py'),
    );
    const ok = JSON.parse((await runTtd(['run', spec, '--json'], env())).stdout) as RunResult;
    expect(ok.status, JSON.stringify(ok.gates)).toBe('promoted');
    expect(existsSync(join(envCache, hexOf([good]), 'venv', 'lib', 'python3.11', 'site-packages', 'six.py'))).toBe(true);

    const bad = tempDir();
    writeFileSync(join(bad, 'requirements.txt'), `six==1.17.0 --hash=sha256:${'0'.repeat(64)}\n`);
    const badSpec = writeSpec(
      bad,
      quickSeedSpec('six-wrong-hash', {
        environment: { base: 'torch-2.13', requirements: 'requirements.txt' },
        parity: { runtimes: ['python'] },
      }),
      join(seedDir, 'model.py'),
    );
    const run = await runTtd(['run', badSpec, '--json'], env());
    const refused = JSON.parse(run.stdout) as RunResult;
    expect(run.code).toBe(2);
    expect(refused.gates.map((g) => [g.gate, g.code])).toEqual([['environment', 'environment_invalid']]);
    expect(refused.gates[0].message).toMatch(/cannot be installed on environment.base 'torch-2.13'.*hash/i);
    expect(refused.timings.train).toBeUndefined();
    expect(builds()).not.toContain(hexOf([`six==1.17.0 --hash=sha256:${'0'.repeat(64)}`]));
  });

  it.each([
    ['torchvision==0.29.1', 'torchvision', 'torch>=2.14'],
    ['torch>=2.14', 'torch', 'torch>=2.14'],
  ])(
    'a requirement that would replace the base torch (%s) is environment_invalid naming %s, before training',
    async (requirement, pkg, wants) => {
      const dir = tempDir();
      const spec = writeSpec(dir, bertSpec(`upgrade-${pkg}`, [TRANSFORMERS, requirement], ['torchscript']), BERT_MODEL);
      const run = await runTtd(['run', spec, '--json'], env());
      const result = JSON.parse(run.stdout) as RunResult;
      expect(run.code).toBe(2);
      expect(result.status).toBe('failed');
      expect(result.gates.map((g) => [g.gate, g.code])).toEqual([['environment', 'environment_invalid']]);
      expect(result.gates[0].message).toContain(`'${pkg}' needs ${wants}`);
      expect(result.gates[0].message).toContain("environment.base 'torch-2.13' has torch 2.13.0+cpu");
      expect(result.timings.train).toBeUndefined();
      expect(builds()).not.toContain(hexOf([TRANSFORMERS, requirement]));
      expect(readdirSync(envCache).some((d) => d.startsWith('.build-'))).toBe(false);
    },
  );

  it('an index that cannot be reached is index_unreachable naming its address, before training, leaving nothing built', async () => {
    const port = await freePort(); // nothing listens there: connections are refused
    const dir = tempDir();
    const spec = writeSpec(dir, bertSpec('no-index', ['transformers==5.24.0'], ['torchscript']), BERT_MODEL);
    // uv's own retries (three, over about ten seconds) change nothing against a closed port.
    const run = await runTtd(['run', spec, '--json'], env({ TTD_INDEX_URL: `http://127.0.0.1:${port}/simple`, UV_HTTP_RETRIES: '0' }));
    const result = JSON.parse(run.stdout) as RunResult;
    expect(run.code).toBe(2);
    expect(result.gates.map((g) => [g.gate, g.code])).toEqual([['environment', 'index_unreachable']]);
    expect(result.gates[0].message).toContain(`the package index (http://127.0.0.1:${port}/simple/transformers/) cannot be reached`);
    expect(result.timings.train).toBeUndefined();
    expect(builds()).not.toContain(hexOf(['transformers==5.24.0']));
    expect(readdirSync(envCache).some((d) => d.startsWith('.build-'))).toBe(false);
  });

  it('a TTD_PYTHON whose libtorch runner was built against another torch is runtime_mismatch naming both, and nothing starts', async () => {
    const dir = tempDir();
    const spec = writeSpec(dir, quickSeedSpec('mismatch'), join(seedDir, 'model.py'));
    const python = join(repoRoot, '.torch', 'torch-2.13', 'bin', 'python');
    // The default runner of `custom` is torch-1.13's (build/libtorch).
    const run = await runTtd(['run', spec, '--json'], env({ TTD_PYTHON: python }));
    expect(run.code).toBe(2);
    const out = JSON.parse(run.stdout) as { status: string; error: { code: string; message: string } };
    expect(out.error.code).toBe('runtime_mismatch');
    expect(out.error.message).toContain('was built against libtorch 1.13.0');
    expect(out.error.message).toContain(`its python '${python}' (TTD_PYTHON) has torch 2.13.0+cpu`);
    expect(out.error.message).toContain('TTD_LIBTORCH_RUNNER');
    expect(run.stderr).not.toContain('run mismatch-'); // no workflow was started

    // With the runner built against its torch, the same TTD_PYTHON is promoted with libtorch parity.
    const runner = join(repoRoot, 'build', 'libtorch-2.13', 'ttd-libtorch-runner');
    const matched = await runTtd(['run', spec, '--json'], env({ TTD_PYTHON: python, TTD_LIBTORCH_RUNNER: runner }));
    const result = JSON.parse(matched.stdout) as RunResult;
    expect(result.status, JSON.stringify(result.gates)).toBe('promoted');
    expect(result.parity?.filter((p) => p.runtime === 'libtorch').every((p) => p.torch_version === '2.13.0')).toBe(true);
  });

  it('a worker whose TTD_PYTHON runner has another torch refuses the parity stage with runtime_mismatch, loading nothing', async () => {
    const dir = tempDir();
    const spec = writeSpec(dir, quickSeedSpec('mismatch-worker'), join(seedDir, 'model.py'));
    const python = join(repoRoot, '.torch', 'torch-2.13', 'bin', 'python');
    const runner = join(repoRoot, 'build', 'libtorch-2.13', 'ttd-libtorch-runner');
    // The client's runner matches (so ttd run starts the run); the worker's is torch-1.13's default.
    const worker = await startWorker(env({ TTD_PYTHON: python }));
    try {
      const started = await runTtd(['run', spec, '--detach', '--json'], env({ TTD_PYTHON: python, TTD_LIBTORCH_RUNNER: runner }));
      expect(started.code, started.stderr).toBe(0);
      const { runId } = JSON.parse(started.stdout) as { runId: string };
      const waited = await runTtd(['wait', runId, '--json'], env());
      const result = JSON.parse(waited.stdout) as RunResult;
      expect(result.status).toBe('failed');
      expect(result.gates.at(-1)).toMatchObject({ gate: 'parity', passed: false, code: 'runtime_mismatch' });
      expect(result.gates.at(-1)!.message).toContain('was built against libtorch 1.13.0');
      expect(result.gates.at(-1)!.message).toContain('has torch 2.13.0+cpu');
      expect(result.parity ?? []).toEqual([]); // no runtime ran the artifact
    } finally {
      await worker.stop();
    }
  });
});
