// Builds the workers of both task queues with their activities; used by `ttd run` and the worker entry points.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { WorkerDeploymentVersion } from '@temporalio/common';
import { type NativeConnection, Worker } from '@temporalio/worker';
import { createControlActivities, createTorchActivities } from '../activities';
import { stopForkServers } from '../activities/torch-process';
import { prestartTorch } from '../activities/step-cache';
import type { TemporalConfig } from '../temporal/config';
import type { ObjectStore } from '../lib/store/store';
import { buildId, codeDigest } from '../temporal/versioning';
import { flushTelemetry, tracedWorkflows, workerTelemetryOptions } from './telemetry';

/** The queues a process can serve. */
export const QueueKind = { control: 'control', torch: 'torch' } as const;
export type QueueKind = (typeof QueueKind)[keyof typeof QueueKind];

/** The prebuilt bundle from `make setup` when it is there (saves a webpack run per process), else the sources; with
 * tracing on, the bundle built with the OpenTelemetry workflow interceptors. */
function workflowCode(): { workflowBundle: { codePath: string } } | { workflowsPath: string } {
  const bundle = join(__dirname, '..', tracedWorkflows() ? 'workflow-bundle-otel.js' : 'workflow-bundle.js');
  const entry = require.resolve('../workflows');
  // Only a bundle at least as new as every compiled file it was made from (a plain `tsc` does not rebuild it).
  const sources = [dirname(entry), join(__dirname, '..', 'lib')].flatMap((dir) =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.js'))
      .map((f) => statSync(join(dir, f)).mtimeMs),
  );
  if (existsSync(bundle) && statSync(bundle).mtimeMs >= Math.max(...sources)) return { workflowBundle: { codePath: bundle } };
  return { workflowsPath: entry };
}

/** This code's build id (temporal/versioning.ts): TTD_BUILD_ID, else the package version and the digest of the workflow
 * code and everything it imports (the sources of workflows/ and lib/ in the checkout), the same on every host of one
 * build and whether ttd runs compiled or from its sources. */
export function codeBuildId(config: { repoRoot: string; buildId: string | undefined }): string {
  return buildId(packageVersion(config.repoRoot), () => codeDigest(config.repoRoot, ['workflows', 'lib'], '.ts'), config.buildId);
}

/** ttd's version, from its package.json. */
function packageVersion(repoRoot: string): string {
  return (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Creates one worker per given queue on an open connection. */
export async function createWorkers(opts: {
  connection: NativeConnection;
  config: TemporalConfig;
  store: ObjectStore;
  /** The queues to serve (temporal/queues.ts): the store's control queue, one pool's torch queue (`config` is then that
   * pool's environment), or both. */
  queues: Partial<Record<QueueKind, string>>;
  /** Whether AOTInductor packages may reach this torch worker's parity (prestartTorch); a long-lived worker: yes. */
  aoti?: boolean;
  /** The Worker Deployment version these workers join (docs/deploy-upgrades.md); runs they start are pinned to it. */
  version: WorkerDeploymentVersion;
}): Promise<Worker[]> {
  const { connection, config, store } = opts;
  // PINNED: a run stays on the build that first ran it, unless an operator moves it (docs/deploy-upgrades.md).
  const workerDeploymentOptions = { version: opts.version, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' } as const;
  const workers: Worker[] = [];
  if (opts.queues.control) {
    const code = workflowCode();
    workers.push(
      await Worker.create({
        connection,
        namespace: config.temporalNamespace,
        taskQueue: opts.queues.control,
        workerDeploymentOptions,
        ...code,
        ...workerTelemetryOptions({ bundled: 'workflowBundle' in code }),
        activities: createControlActivities({
          store,
          keysDir: config.keysDir,
          signingKey: config.signingKey,
          builder: { deployment: opts.version.deploymentName, buildId: opts.version.buildId, ttdVersion: packageVersion(config.repoRoot) },
        }),
      }),
    );
  }
  if (opts.queues.torch) {
    prestartTorch(config, { aoti: opts.aoti ?? true });
    workers.push(
      await Worker.create({
        connection,
        namespace: config.temporalNamespace,
        taskQueue: opts.queues.torch,
        workerDeploymentOptions,
        activities: createTorchActivities({ config, store }),
        ...workerTelemetryOptions({ bundled: true }),
        maxConcurrentActivityTaskExecutions: config.concurrency, // lib/limits/capacity.ts
        // Progress (epoch, loss) must reach the server quickly enough for `ttd run` to show it.
        defaultHeartbeatThrottleInterval: '1 second',
        maxHeartbeatThrottleInterval: '1 second',
      }),
    );
  }
  return workers;
}

/** Runs workers until `until` settles, then shuts them down; returns what `until` resolved to. */
export async function runWorkersUntil<T>(workers: Worker[], until: Promise<T>): Promise<T> {
  if (workers.length === 0) return until;
  const [first, ...rest] = workers;
  // runUntil on the first worker drives shutdown of all of them once the promise settles.
  const others = rest.map((w) => w.run());
  try {
    return await first.runUntil(until);
  } finally {
    for (const w of rest) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.allSettled(others);
    await stopForkServers();
    await flushTelemetry();
  }
}
