// Worker Versioning (docs/deploy-upgrades.md): every ttd worker joins the Worker Deployment of its store's queues with
// the build id of its code; a pipeline run is pinned to the build that first runs it.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Client } from '@temporalio/client';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import type { QueueNaming } from './queues';

/** A Worker Deployment version: the deployment and the build id (the SDK's WorkerDeploymentVersion). */
export interface WorkerDeploymentVersion {
  readonly deploymentName: string;
  readonly buildId: string;
}

/** How long a worker's queues may take to appear in its deployment version (about 1 s on the dev server). */
const JOIN_TIMEOUT_MS = 30_000;
const JOIN_POLL_MS = 200;
/** The current version of a deployment that has none: runs go to unversioned workers. */
const UNVERSIONED = '__unversioned__';
/** The task queue types of DescribeWorkerDeploymentVersion: 1 workflow, 2 activity. */
export const QueueType = { workflow: 1, activity: 2 } as const;
export type QueueType = (typeof QueueType)[keyof typeof QueueType];

const DEPLOYMENT_NAME = /^[A-Za-z0-9_-]{1,200}$/;
const BUILD_ID = /^[A-Za-z0-9_-][A-Za-z0-9._+-]{0,199}$/;

/** TTD_DEPLOYMENT_NAME as given, checked: Temporal writes a version as `<deployment>.<build id>`, so no '.'. */
export function checkedDeploymentName(set: string | undefined): string | undefined {
  if (set !== undefined && !DEPLOYMENT_NAME.test(set))
    throw new TtdError(
      ErrorCode.configInvalid,
      `TTD_DEPLOYMENT_NAME='${set}' is not a deployment name; expected 1 to 200 letters, digits, '-' or '_' (no '.': Temporal writes a version as <deployment>.<build id>)`,
    );
  return set;
}

/** TTD_BUILD_ID as given, checked. */
export function checkedBuildId(set: string | undefined): string | undefined {
  if (set !== undefined && !BUILD_ID.test(set))
    throw new TtdError(
      ErrorCode.configInvalid,
      `TTD_BUILD_ID='${set}' is not a build id; expected 1 to 200 letters, digits, '.', '+', '-' or '_' (not first), such as a git SHA or an image tag`,
    );
  return set;
}

/** The deployment name: TTD_DEPLOYMENT_NAME (`set`), else what the queues are named after (the store's identity, or
 * TTD_QUEUE_PREFIX), so that every worker of one store's queues, control and torch pools, is in one deployment. */
export function deploymentName(naming: QueueNaming, set: string | undefined): string {
  if (set !== undefined) return set;
  const base = naming.kind === 'prefix' ? naming.prefix : `ttd-${naming.storeId}`;
  return base.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 200);
}

/** The build id: TTD_BUILD_ID (`set`), else `<package version>-<12 hex of the code's digest>` (`digest` from workers/). */
export function buildId(packageVersion: string, digest: () => string, set: string | undefined): string {
  return set ?? `${packageVersion}-${digest().slice(0, 12)}`;
}

/** The sha256 of the files under `dirs` whose names end in `ext`, by path relative to `root` and content: the same code
 * gives the same digest on every host, wherever its checkout is. */
export function codeDigest(root: string, dirs: string[], ext: string): string {
  const hash = createHash('sha256');
  for (const dir of dirs.map((d) => join(root, d)).filter((d) => existsSync(d))) {
    const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith(ext))
      .sort();
    for (const f of files) {
      hash.update(`${relative(root, join(dir, f))}\0`);
      hash.update(readFileSync(join(dir, f)));
      hash.update('\0');
    }
  }
  return hash.digest('hex');
}

/** How Temporal's tools write a version (`temporal worker deployment describe-version`, the
 * TemporalWorkerDeploymentVersion search attribute). */
export function versionText(version: WorkerDeploymentVersion): string {
  return `${version.deploymentName}:${version.buildId}`;
}

/** Waits until the server lists each of `queues` in `version` (a worker's first poll adds its queues), so that a run
 * pinned to it, and its activities, reach this version's workers. */
export async function awaitVersionQueues(
  client: Client,
  namespace: string,
  version: WorkerDeploymentVersion,
  queues: { name: string; type: QueueType }[],
  timeoutMs = JOIN_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const listed = await versionQueues(client, namespace, version);
    const missing = queues.filter((q) => !listed.some((l) => l.name === q.name && l.type === q.type));
    if (missing.length === 0) return;
    if (Date.now() > deadline)
      throw new TtdError(
        ErrorCode.workerVersioningUnavailable,
        `worker deployment version '${versionText(version)}' does not list ${missing.map((q) => `'${q.name}'`).join(', ')} ${timeoutMs / 1000} s after its workers started polling; expected the server to add each polled queue to the version (does this namespace have Worker Versioning enabled?)`,
      );
    await new Promise((r) => setTimeout(r, JOIN_POLL_MS));
  }
}

/** The queues the server has seen polled in `version` (none when it does not know the version yet). */
async function versionQueues(
  client: Client,
  namespace: string,
  version: WorkerDeploymentVersion,
): Promise<{ name: string; type: number }[]> {
  try {
    const res = await client.workflowService.describeWorkerDeploymentVersion({ namespace, deploymentVersion: version });
    return (res.workerDeploymentVersionInfo?.taskQueueInfos ?? []).map((t) => ({ name: t.name ?? '', type: Number(t.type ?? 0) }));
  } catch (err) {
    if ((err as { code?: number }).code === GRPC_NOT_FOUND) return [];
    throw err;
  }
}

const GRPC_NOT_FOUND = 5;

/** The build id of the deployment's current version, or undefined while it has none (runs go to unversioned workers). */
export async function currentBuildId(client: Client, namespace: string, deployment: string): Promise<string | undefined> {
  try {
    const res = await client.workflowService.describeWorkerDeployment({ namespace, deploymentName: deployment });
    const routing = res.workerDeploymentInfo?.routingConfig;
    const current = routing?.currentDeploymentVersion?.buildId ?? undefined;
    if (current) return current;
    const legacy = routing?.currentVersion ?? undefined; // `<deployment>.<build id>`, or __unversioned__
    return legacy && legacy !== UNVERSIONED ? legacy.slice(deployment.length + 1) : undefined;
  } catch (err) {
    if ((err as { code?: number }).code === GRPC_NOT_FOUND) return undefined;
    throw err;
  }
}

/** Makes `version` the current one of its deployment: new runs (and schedules' runs) go to its workers, and
 * unversioned open runs move to it at their next workflow task. Its queues must have been polled (awaitVersionQueues). */
export async function makeCurrent(client: Client, namespace: string, version: WorkerDeploymentVersion, identity: string): Promise<void> {
  await client.workflowService.setWorkerDeploymentCurrentVersion({
    namespace,
    deploymentName: version.deploymentName,
    buildId: version.buildId,
    identity,
    // The other queues of this build (torch pools on other hosts) join as their workers start.
    ignoreMissingTaskQueues: true,
  });
}

/** What a worker's joining did to its deployment: its version was already current, was made current, or was left
 * beside the current one (`previous`). */
export interface Joined {
  outcome: 'current' | 'made-current' | 'not-current';
  previous?: string;
}

/** Once the control queue is in `version`: makes it current on the embedded server (the latest worker started serves
 * new runs, as a stop-and-start upgrade did, with no deployment step), and elsewhere only while the deployment has no
 * current version (its first versioned worker); a cluster's operator ramps and sets it (docs/deploy-upgrades.md). */
export async function joinDeployment(
  client: Client,
  namespace: string,
  version: WorkerDeploymentVersion,
  control: string,
  opts: { embedded: boolean; identity: string },
): Promise<Joined> {
  await awaitVersionQueues(client, namespace, version, [{ name: control, type: QueueType.workflow }]);
  const current = await currentBuildId(client, namespace, version.deploymentName);
  if (current === version.buildId) return { outcome: 'current' };
  if (!opts.embedded && current !== undefined) return { outcome: 'not-current', previous: current };
  await makeCurrent(client, namespace, version, opts.identity);
  return { outcome: 'made-current', ...(current ? { previous: current } : {}) };
}
