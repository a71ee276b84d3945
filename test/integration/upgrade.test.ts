// Upgrading ttd while runs are in flight by stopping and starting (docs/deploy-upgrades.md): runs started by today's
// workers, stopped mid-training, are moved to the build of a changed workflow and finished by its workers. The change
// adds a timer before training, a point every such run has passed: guarded by patched() the runs complete and are
// promoted once; unguarded, they stop on a nondeterminism error until moved to a build of the guarded code, and then
// complete.
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import {
  bundleWorkflowCode,
  DefaultLogger,
  makeTelemetryFilterString,
  NativeConnection,
  Runtime,
  Worker,
  type WorkflowBundle,
} from '@temporalio/worker';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createControlActivities } from '../../activities';
import { SEARCH_ATTRIBUTES_PATCH } from '../../workflows/search-attributes';
import { SIGNING_PATCH } from '../../workflows/definitions';
import { openStore } from '../../lib/config';
import { loadTemporalConfig } from '../../temporal/config';
import { controlQueue, queueNaming } from '../../temporal/queues';
import { awaitVersionQueues, currentBuildId, type QueueType } from '../../temporal/versioning';
import type { RunResult } from '../../lib/contract/results';
import { command, fixtureModels, freePort, repoRoot, tempDir, writeSpec } from '../helpers';
import { pollStatus, startOps, type Ops } from '../operations';
import { startWorker } from '../hosts';
import { TIMER_BEFORE_TRAIN } from '../fixtures/workflows/timer-before-train';

// The nondeterminism test makes the SDK log its failing workflow tasks: keep the suite's output readable.
beforeAll(() =>
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR', other: 'ERROR' }), forward: {} } },
  }),
);

const fixtures = join(__dirname, '..', 'fixtures', 'workflows');
const NonDeterministic = temporal.api.enums.v1.WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

// Slow training (16 epochs of about 0.4 s), so that the runs are mid-training when the workers stop.
const slowSpec = (name: string) =>
  writeSpec(tempDir(), { name, params: { step_sleep: 0.05 }, train: { epochs: 16, batch_size: 8 } }, join(fixtureModels, 'slow-mlp.py'));

// Each changed workflow is bundled once per file (webpack, a few seconds), both from the start, beside the servers and
// the runs (as replay.test.ts does): the patched change serves both tests.
type Changed = 'upgrade-patched' | 'upgrade-unpatched';
const bundles = new Map<Changed, Promise<WorkflowBundle>>();
const bundled = (workflow: Changed) => {
  if (!bundles.has(workflow)) {
    const workflowsPath = join(fixtures, `${workflow}.ts`);
    bundles.set(
      workflow,
      bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger('ERROR') }).then(({ code }) => ({ code })),
    );
  }
  return bundles.get(workflow)!;
};
beforeAll(() => {
  // Started here, awaited where a worker needs them; a failed bundle fails that test, not an unobserved promise.
  for (const workflow of ['upgrade-patched', 'upgrade-unpatched'] as const) bundled(workflow).catch(() => undefined);
});

/** A control worker of the upgraded code, in this process: the changed workflow (bundled from its source) and the
 * real control activities on the home's store, in the build named after the change (the deployment is named after the
 * queue prefix, as `ttd worker`'s). Its identity marks the workflow tasks it served in the histories. */
async function upgradedControlWorker(ops: Ops, workflow: Changed) {
  const config = loadTemporalConfig({ ...process.env, ...ops.env } as NodeJS.ProcessEnv);
  const store = openStore(config);
  const connection = await NativeConnection.connect({ address: `127.0.0.1:${ops.env.TTD_TEMPORAL_PORT}` });
  const worker = await Worker.create({
    connection,
    namespace: config.temporalNamespace,
    taskQueue: controlQueue(await queueNaming(config.queuePrefix, store)),
    workflowBundle: await bundled(workflow),
    activities: createControlActivities({ store, keysDir: config.keysDir }),
    identity: workflow,
    workerDeploymentOptions: {
      version: { deploymentName: config.queuePrefix!, buildId: workflow },
      useWorkerVersioning: true,
      defaultVersioningBehavior: 'PINNED',
    },
  });
  const running = worker.run();
  return {
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

/** The stock CLI against the operator's server. */
const stock = async (ops: Ops, args: string[]) => {
  const r = await command(join(repoRoot, '.venv', 'bin', 'temporal'), [...args, '--address', `127.0.0.1:${ops.env.TTD_TEMPORAL_PORT}`]);
  expect(r.code, `temporal ${args.join(' ')}: ${r.stderr}`).toBe(0);
};

/** The rest of the upgrade to `build` (docs/deploy-upgrades.md): a torch worker of it, the build made current, and the
 * open runs moved onto it (each was pinned to the build that started it). */
async function upgradeTo(ops: Ops, client: Client, build: Changed, runIds: string[]): Promise<void> {
  const torch = await startWorker({ ...ops.env, TTD_BUILD_ID: build }, ['--queue', 'torch']);
  torchWorkers.push(torch.stop);
  // The server refuses to make a version current before it lists every queue of the current one (a worker's first
  // poll adds its queues; under load that comes after the worker says it serves): wait for them, as ttd run does.
  const namespace = loadTemporalConfig({ ...process.env, ...ops.env } as NodeJS.ProcessEnv).temporalNamespace;
  const deploymentName = ops.env.TTD_QUEUE_PREFIX!;
  const current = await currentBuildId(client, namespace, deploymentName);
  if (current) {
    const described = await client.workflowService.describeWorkerDeploymentVersion({
      namespace,
      deploymentVersion: { deploymentName, buildId: current },
    });
    const queues = (described.workerDeploymentVersionInfo?.taskQueueInfos ?? []).map((t) => ({
      name: t.name ?? '',
      type: Number(t.type ?? 0) as QueueType,
    }));
    await awaitVersionQueues(client, namespace, { deploymentName, buildId: build }, queues);
  }
  const deployment = ['--deployment-name', deploymentName, '--build-id', build];
  await stock(ops, ['worker', 'deployment', 'set-current-version', ...deployment, '--yes']);
  for (const runId of runIds)
    await stock(ops, [
      'workflow',
      'update-options',
      '--workflow-id',
      runId,
      '--versioning-override-behavior',
      'pinned',
      ...deployment.map((a) => a.replace(/^--/, '--versioning-override-')),
    ]);
}
const torchWorkers: (() => Promise<void>)[] = [];

async function historyOf(client: Client, runId: string): Promise<HistoryEvent[]> {
  return (await client.workflow.getHandle(runId).fetchHistory()).events ?? [];
}

// The ids of the patches recorded in a history (each patch marker's details hold its id, JSON-encoded), but those of
// today's pipeline itself (which every run of it records at its start): the ones the test's upgrade added.
const patchMarkers = (events: HistoryEvent[]) =>
  events
    .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
    .map((e) =>
      Object.values(e.markerRecordedEventAttributes?.details ?? {})
        .flatMap((p) => p.payloads ?? [])
        .map((p) => Buffer.from(p.data ?? []).toString())
        .join(' '),
    )
    .filter((id) => !id.includes(SEARCH_ATTRIBUTES_PATCH) && !id.includes(SIGNING_PATCH));
const servedBy = (events: HistoryEvent[], identity: string) =>
  events.some((e) => e.workflowTaskStartedEventAttributes?.identity === identity);

describe('upgrading workers while runs are in flight', () => {
  let ops: Ops | undefined;
  let client: Client | undefined;
  let stopUpgraded: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stopUpgraded?.();
    stopUpgraded = undefined;
    await Promise.all(torchWorkers.splice(0).map((stop) => stop()));
    await client?.connection.close();
    await ops?.stopAll();
  });

  async function start(prefix: string) {
    ops = await startOps(tempDir(), await freePort(), prefix);
    client = new Client({ connection: await Connection.connect({ address: `127.0.0.1:${ops.env.TTD_TEMPORAL_PORT}` }) });
    return { ops, client };
  }

  async function startRun(o: Ops, name: string): Promise<string> {
    const r = await o.ttd(['run', slowSpec(name), '--detach', '--json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout).runId;
  }

  it('runs stopped mid-training finish on workers of a patched workflow change, each promoted once; new runs take the change', async () => {
    const { ops: o, client: c } = await start('upgrade');
    const old = await o.worker();
    const names = ['upgrade-a', 'upgrade-b', 'upgrade-c'];
    const inFlight = [];
    for (const name of names) inFlight.push(await startRun(o, name));
    // The torch worker trains two at a time: two runs are mid-training, the third waits in the queue.
    await pollStatus(o, inFlight[0], (v) => (v.progress?.epoch ?? 0) >= 2);
    await pollStatus(o, inFlight[1], (v) => (v.progress?.epoch ?? 0) >= 1);

    // The upgrade: every worker of the old code stops, the new build's workers start and it is made current, and the
    // runs in flight (pinned to the old build) are moved onto it.
    old.kill('SIGTERM');
    await new Promise((r) => old.once('exit', r));
    stopUpgraded = (await upgradedControlWorker(o, 'upgrade-patched')).stop;
    await upgradeTo(o, c, 'upgrade-patched', inFlight);
    const after = await startRun(o, 'upgrade-after');

    for (const [runId, name] of [...inFlight.map((id, i) => [id, names[i]]), [after, 'upgrade-after']]) {
      const waited = await o.ttd(['wait', runId, '--json']);
      expect(waited.code, `${name}: ${waited.stdout}${waited.stderr}`).toBe(0);
      const result: RunResult = JSON.parse(waited.stdout);
      expect(result.status).toBe('promoted');
      expect(result.training?.resumedFromEpoch ?? 0).toBeLessThan(16);
      const shown = JSON.parse((await o.ttd(['show', `${name}@production`, '--json'])).stdout);
      expect(shown.versions).toHaveLength(1);
      expect(shown.reports.training.losses).toHaveLength(16);
      const log = JSON.parse((await o.ttd(['audit', 'log', name, '--json'])).stdout).records;
      expect(log).toHaveLength(1);
    }

    // The runs in flight were finished by the upgraded worker, on the old path (no patch marker, no timer); the run
    // started after the upgrade took the new one.
    for (const runId of inFlight) {
      const events = await historyOf(c, runId);
      expect(servedBy(events, 'upgrade-patched'), runId).toBe(true);
      expect(patchMarkers(events), runId).toEqual([]);
      expect(events.some((e) => e.timerStartedEventAttributes)).toBe(false);
      expect(events.some((e) => e.workflowTaskFailedEventAttributes)).toBe(false);
    }
    const events = await historyOf(c, after);
    expect(patchMarkers(events)).toEqual([expect.stringContaining(TIMER_BEFORE_TRAIN)]);
    expect(events.some((e) => e.timerStartedEventAttributes)).toBe(true);
  }, 300_000);

  it('the same change without patched() stops a run in flight with a nondeterminism error; workers of the patched change then finish it', async () => {
    const { ops: o, client: c } = await start('upgrade-np');
    const old = await o.worker();
    const runId = await startRun(o, 'unguarded');
    await pollStatus(o, runId, (v) => (v.progress?.epoch ?? 0) >= 2);
    old.kill('SIGTERM');
    await new Promise((r) => old.once('exit', r));
    const unpatched = await upgradedControlWorker(o, 'upgrade-unpatched');
    stopUpgraded = unpatched.stop;
    await upgradeTo(o, c, 'upgrade-unpatched', [runId]);

    // Training finishes; the next workflow task replays the history through the unguarded code and fails.
    const deadline = Date.now() + 120_000;
    let failed: HistoryEvent | undefined;
    while (!failed && Date.now() < deadline) {
      failed = (await historyOf(c, runId)).find((e) => e.workflowTaskFailedEventAttributes?.cause === NonDeterministic);
      if (!failed) await new Promise((r) => setTimeout(r, 500));
    }
    expect(failed?.workflowTaskFailedEventAttributes?.failure?.message).toMatch(/[Nn]ondetermin/);
    expect(failed?.workflowTaskFailedEventAttributes?.identity).toBe('upgrade-unpatched');
    const status = JSON.parse((await o.ttd(['status', runId, '--json'])).stdout);
    expect(status.status).toBe('running'); // stuck, not lost

    // Fixing forward: a build of the guarded change replaces the unguarded one, the run is moved onto it, and it
    // completes on its old path.
    await unpatched.stop();
    stopUpgraded = (await upgradedControlWorker(o, 'upgrade-patched')).stop;
    await upgradeTo(o, c, 'upgrade-patched', [runId]);
    const waited = await o.ttd(['wait', runId, '--json']);
    expect(waited.code, waited.stderr).toBe(0);
    expect(JSON.parse(waited.stdout).status).toBe('promoted');
    const events = await historyOf(c, runId);
    expect(servedBy(events, 'upgrade-patched')).toBe(true);
    expect(patchMarkers(events)).toEqual([]);
    const log = JSON.parse((await o.ttd(['audit', 'log', 'unguarded', '--json'])).stdout).records;
    expect(log).toHaveLength(1);
  }, 300_000);
});
