// A damaged store is named, not hung on (issue 15): a truncated registry state (rebuilt from the audit chain by the
// next promotion, issue 25), a garbage audit record and a truncated
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

  it('a truncated registry state is rebuilt from the audit chain by the next run; where the chain cannot, the run fails at once with registry_damaged', async () => {
    const registry = join(store, 'registry', 'damaged.json');
    const saved = readFileSync(registry);
    truncateSync(registry, Math.floor(saved.length / 2));
    const cut = readFileSync(registry);
    const dir = join(store, 'audit', 'damaged');
    const last = readdirSync(dir).sort().at(-1)!;
    const record = readFileSync(join(dir, last));
    try {
      const show = await runTtd(['show', 'damaged', '--json'], env);
      expect(show.code).toBe(2);
      expect(JSON.parse(show.stdout).error).toMatchObject({
        code: 'store_damaged',
        message: expect.stringContaining(
          'the next promotion of the model (a run, ttd promote or ttd rollback) rebuilds it from the audit trail',
        ),
      });

      // A garbage audit record too: the chain cannot back a rebuild, and the run says so at once.
      writeFileSync(join(dir, last), '{"seq": 1, "garbage');
      const started = Date.now();
      const refused = await runTtd(['run', spec, '--json'], env); // every torch stage cached: it goes straight to promote
      const seconds = (Date.now() - started) / 1000;
      expect(refused.code, refused.stderr).toBe(2);
      const result: RunResult = JSON.parse(refused.stdout);
      expect(result.status).toBe('failed');
      const gate = result.gates.at(-1)!;
      expect(gate).toMatchObject({ gate: 'promotion', passed: false, code: 'registry_damaged' });
      expect(gate.message).toContain(
        `the registry state of model 'damaged' (registry/damaged.json in file://${store}) is damaged: not JSON`,
      );
      expect(gate.message).toContain(
        `it cannot be rebuilt from the audit trail: the chain does not verify at audit/damaged/${last} (unreadable or malformed record) [audit_broken]; repair the chain first (ttd audit verify damaged), or restore registry/damaged.json from a backup`,
      );
      expect(seconds).toBeLessThan(60);
      expect(readFileSync(registry)).toEqual(cut); // left as it was

      // The chain intact again: the next run rebuilds the state as it was, and promotes.
      writeFileSync(join(dir, last), record);
      const repaired = await runTtd(['run', spec, '--json'], env);
      expect(repaired.code, repaired.stderr).toBe(0);
      expect(JSON.parse(repaired.stdout)).toMatchObject({ status: 'promoted', version: 1 });
      expect(JSON.parse(readFileSync(registry, 'utf8'))).toEqual(JSON.parse(saved.toString('utf8')));
      expect((await runTtd(['audit', 'verify', 'damaged', '--json'], env)).code).toBe(0);
    } finally {
      writeFileSync(registry, saved);
      writeFileSync(join(dir, last), record);
    }
  }, 300_000);
});
