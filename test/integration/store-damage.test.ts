// A damaged store is named, not hung on (issue 15): a truncated registry state, a garbage audit record and a truncated
// artifact blob, each met through the real bin/ttd on the suite's Temporal server with the filesystem store. The
// damaged object is named with what is wrong and what to do; nothing retries ten times over the same bytes; a re-run
// that produces the same bytes repairs a truncated blob.
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { quickSeedSpec, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

describe('a damaged store', () => {
  const home = tempDir();
  const store = join(home, 'store');
  const env = testEnv(home, inject('temporalAddress'));
  const spec = writeSpec(
    tempDir(),
    quickSeedSpec('damaged', { parity: { runtimes: ['python'], atol: 1e-5, rtol: 1e-4 } }),
    join(seedDir, 'model.py'),
  );
  let first: RunResult;

  beforeAll(async () => {
    const run = await runTtd(['run', spec, '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    first = JSON.parse(run.stdout);
  }, 300_000);

  it('a truncated artifact blob is refused by pull, and a re-run that makes the same bytes repairs it', async () => {
    const blob = join(store, 'blobs', 'sha256', first.digest!.slice('sha256:'.length));
    const size = readFileSync(blob).length;
    truncateSync(blob, Math.floor(size / 2));
    const out = join(tempDir(), 'model.pt');
    const refused = await runTtd(['pull', 'damaged@production', '-o', out, '--json'], env);
    expect(refused.code).toBe(2);
    expect(JSON.parse(refused.stdout).error.code).toBe('digest_mismatch');
    expect(readdirSync(join(out, '..'))).toEqual([]); // nothing written

    const rerun = await runTtd(['run', spec, '--json', '--no-cache'], env);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout).digest).toBe(first.digest); // the same bytes: training and tracing are seeded
    expect(readFileSync(blob).length).toBe(size);
    // The identical re-run moved nothing, and records no "promote 1→1": the one record is the first run's.
    const log = JSON.parse((await runTtd(['audit', 'log', 'damaged', '--json'], env)).stdout);
    expect(
      log.records.map((r: { action: string; version: number; previousVersion: number | null }) => [r.action, r.version, r.previousVersion]),
    ).toEqual([['promote', 1, null]]);
    const pulled = await runTtd(['pull', 'damaged@production', '-o', out, '--json'], env);
    expect(pulled.code, pulled.stderr).toBe(0);
  }, 300_000);

  it('a garbage audit record makes audit log fail at once, naming the record and what to do', async () => {
    const dir = join(store, 'audit', 'damaged');
    const last = readdirSync(dir).sort().at(-1)!;
    const saved = readFileSync(join(dir, last));
    writeFileSync(join(dir, last), '{"seq": 1, "garbage');
    try {
      const log = await runTtd(['audit', 'log', 'damaged', '--json'], env);
      expect(log.code).toBe(2);
      const error = JSON.parse(log.stdout).error;
      expect(error.code).toBe('store_damaged');
      expect(error.message).toContain(`audit record audit/damaged/${last} in file://${store} is damaged: not JSON`);
      expect(error.message).toContain("'ttd audit verify'");
    } finally {
      writeFileSync(join(dir, last), saved);
    }
  });

  it('a truncated registry state fails the promotion at once as store_damaged, naming the file, not after 164 s', async () => {
    const registry = join(store, 'registry', 'damaged.json');
    const saved = readFileSync(registry);
    truncateSync(registry, Math.floor(saved.length / 2));
    try {
      const show = await runTtd(['show', 'damaged', '--json'], env);
      expect(show.code).toBe(2);
      expect(JSON.parse(show.stdout).error).toMatchObject({ code: 'store_damaged' });

      const started = Date.now();
      const run = await runTtd(['run', spec, '--json'], env); // every torch stage cached: it goes straight to promote
      const seconds = (Date.now() - started) / 1000;
      expect(run.code, run.stderr).toBe(2);
      const result: RunResult = JSON.parse(run.stdout);
      expect(result.status).toBe('failed');
      const gate = result.gates.at(-1)!;
      expect(gate).toMatchObject({ gate: 'promotion', passed: false, code: 'store_damaged' });
      expect(gate.message).toContain(
        `the registry state of model 'damaged' (registry/damaged.json in file://${store}) is damaged: not JSON`,
      );
      expect(seconds).toBeLessThan(60);
    } finally {
      writeFileSync(registry, saved);
    }
  }, 300_000);
});
