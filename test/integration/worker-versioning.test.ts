// Worker Versioning (docs/deploy-upgrades.md), rehearsed: two builds of `ttd worker` serve one store's queues at once;
// a run started on the old build and waiting for approval finishes there after the new build is made current, while
// a run started after it takes the new build; neither fails. The operator's steps are the stock Temporal CLI's.
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { command, quickSeedSpec, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';
import { startWorker, type WorkerProcess } from '../hosts';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const temporalBin = join(__dirname, '..', '..', '.venv', 'bin', 'temporal');

describe('worker versioning', () => {
  const address = inject('temporalAddress');
  const env = testEnv(tempDir(), address);
  const deployment = env.TTD_QUEUE_PREFIX!; // named after the queues (temporal/versioning.ts)
  const workers: WorkerProcess[] = [];
  let connection: Connection | undefined;
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await connection?.close();
  });

  const ttd = async (args: string[]) => {
    const r = await runTtd(args, env);
    expect(r.code, `ttd ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const detach = async (name: string, extra: Record<string, unknown> = {}) =>
    (
      JSON.parse(await ttd(['run', writeSpec(tempDir(), quickSeedSpec(name, extra), join(seedDir, 'model.py')), '--detach', '--json'])) as {
        runId: string;
      }
    ).runId;
  const until = async <T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  const worker = async (buildId: string, says: RegExp) => {
    const w = await startWorker({ ...env, TTD_BUILD_ID: buildId });
    workers.push(w);
    await until(`build ${buildId} saying ${says}`, () => (says.test(w.log()) ? true : undefined));
    expect(w.log()).toContain(`worker deployment ${deployment}, build ${buildId}`);
    return w;
  };
  const stock = (args: string[]) => command(temporalBin, [...args, '--address', address]);

  it('a run started on the old build finishes on it while a new run takes the new build, and neither fails', async () => {
    connection = await Connection.connect({ address });
    const client = new Client({ connection });
    // A run started before any versioned worker is unversioned; the first versioned worker of a deployment on a
    // cluster makes its build current (there is none yet), and the run moves to it and is pinned there.
    const waiting = await detach('pinned-old', { promote: { approval: 'required' } });
    const old = await worker('build-1', /made build build-1 current/);
    await until('the old run waiting for approval', async () => {
      const view = JSON.parse(await ttd(['status', waiting, '--json'])) as { status: string };
      return view.status === 'awaiting_approval' ? true : undefined;
    });

    // The new build joins beside it and is not current until the operator says so (docs/deploy-upgrades.md).
    const next = await worker('build-2', /build build-2 is not current \(build build-1 is\)/);
    const set = await stock([
      'worker',
      'deployment',
      'set-current-version',
      '--deployment-name',
      deployment,
      '--build-id',
      'build-2',
      '--yes',
    ]);
    expect(set.code, set.stderr).toBe(0);
    const fresh = await detach('pinned-new');

    // Draining: the old build still has one open run, found the way the runbook says.
    const draining = await stock([
      'workflow',
      'list',
      '--query',
      `TemporalWorkerDeploymentVersion="${deployment}:build-1" AND ExecutionStatus="Running"`,
      '--output',
      'json',
    ]);
    expect(draining.code, draining.stderr).toBe(0);
    expect((JSON.parse(draining.stdout) as { execution: { workflowId: string } }[]).map((w) => w.execution.workflowId)).toEqual([waiting]);

    await ttd(['approve', waiting, '--by', 'alice']);
    for (const runId of [waiting, fresh]) {
      const result = JSON.parse((await runTtd(['wait', runId, '--json'], env)).stdout) as { status: string };
      expect(result.status, runId).toBe('promoted');
    }

    // Every workflow task of each run completed on its build, and every activity ran in that build's worker process.
    const served = async (runId: string) => {
      const events: HistoryEvent[] = (await client.workflow.getHandle(runId).fetchHistory()).events ?? [];
      expect(events.filter((e) => e.workflowTaskFailedEventAttributes || e.activityTaskFailedEventAttributes)).toEqual([]);
      const builds = events.flatMap((e) => {
        const done = e.workflowTaskCompletedEventAttributes;
        return done ? [done.deploymentVersion?.buildId] : [];
      });
      const pids = events.flatMap((e) => {
        const started = e.activityTaskStartedEventAttributes;
        return started ? [Number(/^(\d+)@/.exec(started.identity ?? '')?.[1])] : [];
      });
      return { builds: [...new Set(builds)], pids: [...new Set(pids)], info: (await client.workflow.getHandle(runId).describe()).raw };
    };
    const a = await served(waiting);
    const b = await served(fresh);
    expect(a.builds).toEqual(['build-1']);
    expect(a.pids).toEqual([old.pid]);
    expect(b.builds).toEqual(['build-2']);
    expect(b.pids).toEqual([next.pid]);
    expect(b.info.workflowExecutionInfo?.versioningInfo?.behavior).toBe(temporalPinned);
  });
});

// VERSIONING_BEHAVIOR_PINNED in the API's enum.
const temporalPinned = 1;
