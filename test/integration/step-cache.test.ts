// Step caching through `ttd run`: a stage whose inputs and torch environment match an earlier successful stage
// reuses its outputs (shown as `cached`), `--no-cache` does the work, rejections are always worked out again,
// and an entry whose files are gone from the store is not trusted.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { fixtureModels, quickSeedSpec, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

const TORCH_STAGES = ['train', 'trace', 'verify', 'optimize', 'fusion', 'parity'];

describe('step caching', () => {
  const home = tempDir();
  const env = testEnv(home, inject('temporalAddress'));
  const run = async (spec: string, args: string[] = []) => {
    const r = await runTtd(['run', spec, '--json', ...args], env);
    return { result: JSON.parse(r.stdout) as RunResult, stderr: r.stderr, code: r.code };
  };
  const seed = writeSpec(
    tempDir(),
    quickSeedSpec('cached-seed', { train: { epochs: 2, batch_size: 32, lr: 0.01, seed: 0 } }),
    join(seedDir, 'model.py'),
  );
  let first: RunResult;

  it('reuses every torch stage of an identical earlier run and says so', async () => {
    const a = await run(seed);
    expect(a.code, a.stderr).toBe(0);
    first = a.result;
    expect(first.cached).toBeUndefined();
    expect(Object.keys(first.torchTimings ?? {})).toEqual(TORCH_STAGES);

    const b = await run(seed);
    expect(b.code, b.stderr).toBe(0);
    expect(b.result.cached).toEqual(TORCH_STAGES);
    expect(b.result.torchTimings).toBeUndefined();
    expect(b.result.digest).toBe(first.digest);
    expect(b.result.version).toBe(first.version);
    expect(b.result.parity).toEqual(first.parity);
    for (const stage of TORCH_STAGES) expect(b.stderr).toMatch(new RegExp(`✓ ${stage}\\s+cached`));
    // A cached train stage trained nothing now: no epochs are shown for it (the first run showed them).
    expect(a.stderr).toMatch(/epoch 2\/2 {2}loss/);
    expect(b.stderr).not.toMatch(/epoch \d+\/2/);
    // Promotion is never cached: the run still registers, moves the alias and writes an audit record.
    expect(b.result.gates.at(-1)).toMatchObject({ gate: 'promotion', passed: true });
  });

  it('does every stage again with --no-cache, to the same bytes', async () => {
    const c = await run(seed, ['--no-cache']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.result.cached).toBeUndefined();
    expect(Object.keys(c.result.torchTimings ?? {})).toEqual(TORCH_STAGES);
    expect(c.result.digest).toBe(first.digest);
    expect(c.stderr).not.toMatch(/✓ \w+\s+cached/);
  });

  it('works out again what a changed input changes, and only that', async () => {
    const changed = writeSpec(
      tempDir(),
      quickSeedSpec('cached-seed', {
        train: { epochs: 2, batch_size: 32, lr: 0.01, seed: 0 },
        parity: { runtimes: ['python'], atol: 1e-5, rtol: 1e-4 },
      }),
      join(seedDir, 'model.py'),
    );
    const d = await run(changed);
    expect(d.code, d.stderr).toBe(0);
    expect(d.result.cached).toEqual(['train', 'trace', 'verify', 'optimize', 'fusion']);
    expect(d.result.parity!.map((p) => p.runtime)).toEqual(['python']);
  });

  it('does not trust an entry whose files are gone from the store', async () => {
    // Remove the traced archive that the trace stage's entries name: that stage must run again (and store it again);
    // it makes the same bytes, so every later stage still hits.
    const store = join(home, 'store');
    const dir = join(store, 'cache', 'trace');
    const named = readdirSync(dir).flatMap((f) => readFileSync(join(dir, f), 'utf8').match(/sha256:[0-9a-f]{64}/g) ?? []);
    expect(named.length).toBeGreaterThan(0);
    for (const digest of named) rmSync(join(store, 'blobs', 'sha256', digest.slice('sha256:'.length)), { force: true });
    const e = await run(seed);
    expect(e.code, e.stderr).toBe(0);
    expect(e.result.cached).toEqual(['train', 'verify', 'optimize', 'fusion', 'parity']);
    expect(e.result.digest).toBe(first.digest);
    for (const digest of named) expect(existsSync(join(store, 'blobs', 'sha256', digest.slice('sha256:'.length)))).toBe(true);
  });

  it('does not trust an entry a store writer rewrote without the workers’ key, and replaces it', async () => {
    // Rewrite the verify stage's entries: a changed verdict, the MAC left as it was (the writer cannot make one).
    const dir = join(home, 'store', 'cache', 'verify');
    for (const f of readdirSync(dir)) {
      const entry = JSON.parse(readFileSync(join(dir, f), 'utf8'));
      expect(entry).toMatchObject({ format: 'ttd-step-cache/3', mac: expect.stringMatching(/^[0-9a-f]{64}$/) });
      entry.output.message = 'forged by a store writer';
      writeFileSync(join(dir, f), JSON.stringify(entry));
    }
    const f = await run(seed);
    expect(f.code, f.stderr).toBe(0);
    expect(f.result.cached).toEqual(['train', 'trace', 'optimize', 'fusion', 'parity']);
    expect(f.stderr).toMatch(/step cache entry cache\/verify\/[0-9a-f]{64}\.json not trusted: its MAC does not match its content and key/);
    expect(JSON.stringify(f.result)).not.toContain('forged by a store writer');
    // The worked-out result replaced the rewritten entry: the next run trusts it again.
    const g = await run(seed);
    expect(g.result.cached).toEqual(TORCH_STAGES);
  });

  it('never caches a rejection', async () => {
    const branchy = writeSpec(
      tempDir(),
      { name: 'cached-branchy', train: { epochs: 2, batch_size: 32 } },
      join(fixtureModels, 'control_flow_divergence-if-sum.py'),
    );
    const a = await run(branchy);
    const b = await run(branchy);
    for (const r of [a, b]) {
      expect(r.result.status).toBe('rejected');
      expect(r.result.gates.find((g) => !g.passed)?.code).toBe('control_flow_divergence');
    }
    expect(b.result.cached).toEqual(['train', 'trace']);
  });
});
