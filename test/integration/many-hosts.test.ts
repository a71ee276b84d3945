// Many hosts: three worker hosts (homes and processes of their own, one keys directory) of one S3 store (moto) on the
// suite's server. Six detached runs spread across them; one host is SIGKILLed, with its fork server and stage
// processes, while it trains; every run still completes exactly once: six versions, six promotions, a chain that
// `ttd audit verify` accepts, and the interrupted training retried on another host.
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { readModel } from '../../lib/registry/registry';
import { fixtureModels, runTtd, tempDir, testEnv, writeSpec } from '../helpers';
import { startWorker, type WorkerProcess } from '../hosts';
import { startMoto, type Moto } from '../moto';

const BUCKET = 'models';
const RUNS = 6;
const { PendingActivityState } = temporal.api.enums.v1;

describe('many hosts', () => {
  let moto: Moto;
  let connection: Connection;
  let client: Client;
  const hosts: WorkerProcess[] = [];

  beforeAll(async () => {
    moto = await startMoto();
    await moto.createBucket(BUCKET);
    connection = await Connection.connect({ address: inject('temporalAddress') });
    client = new Client({ connection });
  });
  afterAll(async () => {
    await Promise.all(hosts.map((h) => h.stop()));
    await connection?.close();
    await moto?.stop();
  });

  it('six runs on three hosts, one SIGKILLed mid-run: each run completes once, nothing lost or registered twice', async () => {
    const keys = join(tempDir(), 'keys'); // one keys directory for every host of the store (docs/trust-audit.md)
    const store = `s3://${BUCKET}/fleet`;
    // Each host: its own home (so its own fork servers, caches and leases), the same store, keys and server.
    const hostEnv = () => ({
      ...testEnv(tempDir(), inject('temporalAddress')),
      ...moto.env,
      TTD_QUEUE_PREFIX: undefined,
      TTD_STORE: store,
      TTD_KEYS: keys,
    });
    const envs = [hostEnv(), hostEnv(), hostEnv()];
    for (const env of envs) hosts.push(await startWorker(env, ['--env', 'torch-2.13']));
    const queues = hosts.map((h) => h.serving.match(/serving (\S+), (\S+) of store/)!.slice(1));
    expect(new Set(queues.map((q) => q.join()))).toHaveLength(1); // one store: the same queues on every host

    // Six runs of one model, each with its own seed (no step-cache hits), started side by side from the first host.
    const dir = tempDir();
    const runIds: string[] = await Promise.all(
      Array.from({ length: RUNS }, async (_, i) => {
        const spec = writeSpec(
          dir,
          {
            name: 'fleet',
            environment: 'torch-2.13',
            params: { step_sleep: 0.05 },
            train: { epochs: 12, batch_size: 8, seed: i },
            trace: { batch_sizes: [1, 7] },
          },
          join(fixtureModels, 'slow-mlp.py'),
          `pipeline-${i}.yaml`,
        );
        const r = await runTtd(['run', spec, '--detach', '--json'], envs[0]);
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout).runId as string;
      }),
    );

    // Kill the first host while it trains a run, after that run's first epochs.
    const victim = hosts[0];
    const identity = `${victim.pid}@`;
    let interrupted: string | undefined;
    for (const deadline = Date.now() + 120_000; !interrupted && Date.now() < deadline;) {
      for (const runId of runIds) {
        const { raw } = await client.workflow.getHandle(runId).describe();
        const training = raw.pendingActivities?.find(
          (a) =>
            a.activityType?.name === 'train' &&
            a.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED &&
            a.lastWorkerIdentity?.startsWith(identity) &&
            a.heartbeatDetails,
        );
        if (training) interrupted = runId;
      }
      if (!interrupted) await new Promise((r) => setTimeout(r, 250));
    }
    expect(interrupted, 'the first host never trained a run').toBeDefined();
    await victim.killHost();

    // Every run ends promoted, each with a version of its own.
    const results: RunResult[] = [];
    for (const runId of runIds) {
      const waited = await runTtd(['wait', runId, '--json'], envs[1]);
      expect(waited.code, `${runId}: ${waited.stdout}${waited.stderr}`).toBe(0);
      results.push(JSON.parse(waited.stdout));
    }
    expect(results.map((r) => r.status)).toEqual(Array(RUNS).fill('promoted'));
    expect(new Set(results.map((r) => r.version)).size).toBe(RUNS);
    const retried = results[runIds.indexOf(interrupted!)];
    expect(retried.training?.attempts).toBe(2);

    // The registry holds one version per run, and the audit chain one promotion per run, and verifies.
    const s3 = moto.store(BUCKET, 'fleet');
    const state = (await readModel(s3, 'fleet'))!.state;
    expect(state.versions).toHaveLength(RUNS);
    expect(new Set(state.versions.map((v) => v.runId))).toEqual(new Set(runIds));
    expect(new Set(state.versions.map((v) => v.digest)).size).toBe(RUNS);
    const log = JSON.parse((await runTtd(['audit', 'log', 'fleet', '--json'], envs[2])).stdout).records as {
      action: string;
      runId: string;
    }[];
    const promotions = log.filter((r) => r.action === 'promote').map((r) => r.runId);
    expect(promotions.sort()).toEqual([...runIds].sort());
    const verified = await runTtd(['audit', 'verify', '--json'], envs[2]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);

    // Work was spread: each survivor completed activities (a history records the attempt that ended an activity, so
    // the killed host's unfinished training is not among them; it was seen training above). Each run's first stage,
    // the signing key's check on the control queue, may have ended on the first host before it was killed.
    const byHost = new Map<string, number>();
    for (const runId of runIds) {
      const events = (await client.workflow.getHandle(runId).fetchHistory()).events ?? [];
      const keyCheck = new Set(
        events
          .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'checkSigningKey')
          .map((e) => String(e.eventId)),
      );
      for (const e of events) {
        if (keyCheck.has(String(e.activityTaskStartedEventAttributes?.scheduledEventId))) continue;
        const who = e.activityTaskStartedEventAttributes?.identity?.split('@')[0];
        if (who) byHost.set(who, (byHost.get(who) ?? 0) + 1);
      }
    }
    console.log(
      `activities completed per host pid: ${JSON.stringify(Object.fromEntries(byHost))}; killed ${victim.pid} training ${interrupted}`,
    );
    expect(byHost.get(String(victim.pid))).toBeUndefined();
    for (const h of hosts.slice(1)) expect(byHost.get(String(h.pid)) ?? 0, `activities completed by host pid ${h.pid}`).toBeGreaterThan(0);
  }, 600_000);
});
