// Many `ttd run` in one TTD_HOME with the embedded dev server, started at once: all finish. The embedded server belongs
// to no single run (each holds a lease on it), so none fails with SQLITE_BUSY or loses its server to another run's end,
// and the last run to end stops it.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { listening } from '../../temporal/dev-server';
import { freePort, quickSeedSpec, runTtd, seedDir, tempDir, writeSpec } from '../helpers';

describe('many runs, one home', () => {
  it('three runs started together share one embedded server, all finish, and the last one stops it', async () => {
    const home = tempDir();
    const port = await freePort();
    const env = { TTD_HOME: home, TEMPORAL_ADDRESS: undefined, TTD_TEMPORAL_PORT: String(port), TTD_QUEUE_PREFIX: 'ttd-one-home' };
    const spec = writeSpec(
      tempDir(),
      quickSeedSpec('one-home', { train: { epochs: 1, batch_size: 32, lr: 0.01, seed: 0 } }),
      join(seedDir, 'model.py'),
    );
    // Three distinct runs (three commits), so none attaches to another's workflow.
    const runs = await Promise.all(
      ['a1', 'b2', 'c3'].map((commit) => runTtd(['run', spec, '--trigger', 'ci', '--commit', commit, '--json'], env)),
    );
    for (const run of runs) {
      expect(run.code, run.stderr).toBe(0);
      const result = JSON.parse(run.stdout) as RunResult;
      expect(['promoted', 'kept']).toContain(result.status);
    }
    // Exactly one of them started the server; the others used it.
    expect(runs.filter((r) => r.stderr.includes('started the embedded Temporal dev server'))).toHaveLength(1);
    expect(await listening(port)).toBe(false);
    expect(readdirSync(join(home, 'server-leases'))).toEqual([]);
    expect(existsSync(join(home, 'server.embedded'))).toBe(false);
    expect(existsSync(join(home, 'server.pid'))).toBe(false);
  }, 600_000);
});
