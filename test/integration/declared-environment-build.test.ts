// Building declared environments directly (lib/environments/declared-environments.ts), with real uv and the real index: a package
// that depends on torch gets the base's torch, never the index's; two builders of one environment at once end with
// one complete environment; a build that fails leaves nothing in the cache.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildEnvironment, declaredDigest, type BuildOptions } from '../../lib/environments/declared-environments';
import { repoRoot, tempDir } from '../helpers';

const basePython = join(repoRoot, '.torch', 'torch-2.13', 'bin', 'python');
const options = (cacheDir: string): BuildOptions => ({ uv: join(repoRoot, '.venv', 'bin', 'uv'), cacheDir, basePython });
const site = (cacheDir: string, digest: string) =>
  join(cacheDir, digest.slice('sha256:'.length), 'venv', 'lib', 'python3.11', 'site-packages');

describe('building declared environments', () => {
  it("a requirement that depends on torch resolves to the base's torch, which is shared and never installed", async () => {
    const cache = tempDir();
    const declared = { base: 'torch-2.13', requirements: ['accelerate==1.16.0'] };
    const built = await buildEnvironment(declared, options(cache));
    expect(built.cached).toBe(false);
    expect(built.resolved).toContain('torch==2.13.0+cpu');
    expect(built.resolved).toContain('accelerate==1.16.0');
    expect(built.installed).toContain('accelerate==1.16.0');
    expect(built.installed.some((p) => p.startsWith('torch=='))).toBe(false);
    // The base's numpy is kept, not installed again.
    expect(built.installed.some((p) => p.startsWith('numpy=='))).toBe(false);
    const packages = site(cache, built.digest);
    expect(existsSync(join(packages, 'accelerate'))).toBe(true);
    expect(existsSync(join(packages, 'torch'))).toBe(false);
    // Nor was the index's torch (a CUDA build of several hundred MB) ever fetched into uv's cache.
    const cached = readdirSync(join(cache, '.uv-cache'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .reduce((sum, e) => sum + statSync(join(e.parentPath, e.name)).size, 0);
    expect(cached).toBeLessThan(100 * 2 ** 20);
  }, 300_000);

  it('two builders of one environment at once end with one complete environment, the second taking the first', async () => {
    const cache = tempDir();
    const declared = { base: 'torch-2.13', requirements: ['six==1.17.0'] };
    const [a, b] = await Promise.all([buildEnvironment(declared, options(cache)), buildEnvironment(declared, options(cache))]);
    expect([a.cached, b.cached].sort()).toEqual([false, true]);
    expect(a.digest).toBe(declaredDigest(declared));
    expect(readdirSync(cache).filter((d) => !d.startsWith('.uv'))).toEqual([a.digest.slice('sha256:'.length)]);
    expect(existsSync(join(site(cache, a.digest), 'six.py'))).toBe(true);
    const again = await buildEnvironment(declared, options(cache));
    expect(again).toMatchObject({ cached: true, resolved: a.resolved });
  }, 300_000);

  it('a build that fails leaves nothing in the cache', async () => {
    const cache = tempDir();
    const declared = { base: 'torch-2.13', requirements: ['six==99.0.0'] };
    await expect(buildEnvironment(declared, options(cache))).rejects.toMatchObject({
      code: 'environment_invalid',
      message: expect.stringContaining('environment.requirements [six==99.0.0] cannot be resolved'),
    });
    expect(readdirSync(cache).filter((d) => !d.startsWith('.uv'))).toEqual([]);
  }, 300_000);
});
