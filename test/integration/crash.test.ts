// Crashes, proven by killing things: a torch worker SIGKILLed mid-training, and the server restarted mid-run.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { checkpointBlobs, fixtureModels, freePort, tempDir, writeSpec } from '../helpers';
import { pollStatus, startOps, type Ops } from '../operations';

const slowSpec = (name: string) =>
  writeSpec(tempDir(), { name, params: { step_sleep: 0.05 }, train: { epochs: 16, batch_size: 8 } }, join(fixtureModels, 'slow-mlp.py'));

describe('crash safety', () => {
  let ops: Ops | undefined;
  afterEach(async () => ops?.stopAll());

  it('a torch worker SIGKILLed mid-training is replaced, and the retry resumes from its checkpoint; promoted once', async () => {
    const home = tempDir();
    ops = await startOps(home, await freePort(), 'kill');
    await ops.worker('control');
    const doomed = await ops.worker('torch');
    const started = JSON.parse((await ops.ttd(['run', slowSpec('killed'), '--detach', '--json'])).stdout);
    await pollStatus(ops, started.runId, (v) => (v.progress?.epoch ?? 0) >= 3);
    doomed.kill('SIGKILL');
    await ops.worker('torch');
    const waited = await ops.ttd(['wait', started.runId, '--json']);
    expect(waited.code, waited.stderr).toBe(0);
    const result: RunResult = JSON.parse(waited.stdout);
    expect(result.status).toBe('promoted');
    expect(result.training?.attempts).toBe(2);
    expect(result.training?.resumedFromEpoch).toBeGreaterThanOrEqual(3);
    const shown = JSON.parse((await ops.ttd(['show', 'killed@production', '--json'])).stdout);
    expect(shown.versions).toHaveLength(1);
    expect(shown.reports.training.losses).toHaveLength(16);
    const log = JSON.parse((await ops.ttd(['audit', 'log', 'killed', '--json'])).stdout).records;
    expect(log).toHaveLength(1);
    // Retention (TTD_CHECKPOINTS_KEPT, default 3) kept the checkpoint the retry resumed from, and no more than 3.
    expect(checkpointBlobs(home)).toHaveLength(3);
  }, 240_000);

  it('a run survives the dev server stopping and starting again on the same SQLite file', async () => {
    ops = await startOps(tempDir(), await freePort(), 'restart');
    await ops.worker();
    const started = JSON.parse((await ops.ttd(['run', slowSpec('restarted'), '--detach', '--json'])).stdout);
    await pollStatus(ops, started.runId, (v) => (v.progress?.epoch ?? 0) >= 2);
    expect((await ops.ttd(['server', 'stop'])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1000));
    const again = await ops.ttd(['server', 'start']);
    expect(again.code, again.stderr).toBe(0);
    const waited = await ops.ttd(['wait', started.runId, '--json']);
    expect(waited.code, waited.stderr).toBe(0);
    expect(JSON.parse(waited.stdout).status).toBe('promoted');
  }, 240_000);
});
