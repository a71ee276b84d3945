// Crashes, proven by killing things: a torch worker SIGKILLed mid-training, a control worker SIGKILLed mid-store, and
// the server restarted mid-run.
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { checkpointBlobs, fixtureModels, freePort, quickSeedSpec, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';
import { startWorker, type WorkerProcess } from '../hosts';
import { startMoto, type Moto } from '../moto';
import { pollStatus, startOps, type Ops } from '../operations';
import { startProxy, type Proxy } from '../tcp-proxy';

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

describe('a control host killed mid-store', () => {
  let moto: Moto | undefined;
  let proxy: Proxy | undefined;
  const workers: WorkerProcess[] = [];
  afterEach(async () => {
    for (const w of workers.splice(0)) await w.stop();
    await proxy?.down();
    await moto?.stop();
  });

  it('costs its run at most about 30 s: the store retry starts on another control worker within 45 s, and the run promotes', async () => {
    moto = await startMoto();
    await moto.createBucket('models');
    const env = { ...testEnv(tempDir(), inject('temporalAddress')), ...moto.env, TTD_STORE: 's3://models/killed-store' };
    // Host A reaches the store through a proxy that the test stalls: its store activity hangs, alive, until A is killed.
    proxy = await startProxy(moto.port);
    workers.push(await startWorker(env, ['--queue', 'torch']));
    const doomed = await startWorker({ ...env, AWS_ENDPOINT_URL: `http://127.0.0.1:${proxy.port}` }, ['--queue', 'control']);
    workers.push(doomed);
    proxy.stall(); // A has started (its store checks are done); store is the first control activity of a run
    const spec = writeSpec(tempDir(), quickSeedSpec('killed-store', { parity: { runtimes: ['python'] } }), join(seedDir, 'model.py'));
    const started = await runTtd(['run', spec, '--detach', '--json'], env);
    expect(started.code, started.stderr).toBe(0);
    const { runId } = JSON.parse(started.stdout);
    const ttd = (args: string[]) => runTtd(args, env);
    await pollStatus({ ttd } as Ops, runId, (v) => v.stage === 'store');
    // Host B serves the same queue before A dies, so the retry waits only for the heartbeat timeout.
    workers.push(await startWorker(env, ['--queue', 'control']));
    const killedAt = Date.now();
    await doomed.killHost();
    const waited = await ttd(['wait', runId, '--json']);
    expect(waited.code, waited.stderr).toBe(0);
    expect((JSON.parse(waited.stdout) as RunResult).status).toBe('promoted');
    // The store activity's started event is its last attempt's: the second, begun within the bound the issue states.
    const started2 = await storeAttempt(runId);
    expect(started2.attempt).toBe(2);
    expect(started2.at - killedAt).toBeLessThan(45_000);
  }, 240_000);
});

/** The attempt number and start time (ms) of the store activity of run `runId`, from its history. */
async function storeAttempt(runId: string): Promise<{ attempt: number; at: number }> {
  const connection = await Connection.connect({ address: inject('temporalAddress') });
  try {
    const history = await new Client({ connection }).workflow.getHandle(runId).fetchHistory();
    const events = history.events ?? [];
    const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'storeArtifact');
    const startedEvent = events.find(
      (e) => e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() === scheduled?.eventId?.toString(),
    );
    if (!startedEvent) throw new Error(`run ${runId} has no started store activity in its history`);
    const t = startedEvent.eventTime!;
    return {
      attempt: startedEvent.activityTaskStartedEventAttributes!.attempt ?? 0,
      at: Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6),
    };
  } finally {
    await connection.close();
  }
}
