// Task queue names: one control queue per store and one torch queue per store, torch environment and device (a
// pool), so that a worker serves only runs of its own store, and a run's torch stages reach only workers of its pool.
import { hasCuda, pythonError, pythonProblem, pythonRefusal, SETUP_HINT, type TorchEnv } from '../lib/environments/environments';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import type { ObjectStore } from '../lib/store/store';
import { storeIdentity } from '../lib/store/store-identity';

/** The devices a pool can have. */
export const Device = { cpu: 'cpu', cuda: 'cuda' } as const;
export type Device = (typeof Device)[keyof typeof Device];

/** The workers a run's torch stages need: its torch environment on its device. */
export interface Pool {
  environment: string;
  device: Device;
}

/** How queues are named: after the store's identity (`ttd-<id>-…`), or by TTD_QUEUE_PREFIX exactly as before pools
 * existed (`<prefix>-control`, `<prefix>-torch`: one torch queue for every environment and device). */
export type QueueNaming = { kind: 'store'; storeId: string } | { kind: 'prefix'; prefix: string };

/** The queues of one run, or of one worker process. */
export interface RunQueues {
  control: string;
  torch: string;
}

/** The naming in force: TTD_QUEUE_PREFIX when set, else the store's identity (created on first use). */
export async function queueNaming(queuePrefix: string | undefined, store: ObjectStore): Promise<QueueNaming> {
  if (queuePrefix !== undefined) return { kind: 'prefix', prefix: queuePrefix };
  return { kind: 'store', storeId: (await storeIdentity(store)).id };
}

/** The control queue: workflows and store activities. */
export function controlQueue(naming: QueueNaming): string {
  return naming.kind === 'prefix' ? `${naming.prefix}-control` : `ttd-${naming.storeId}-control`;
}

/** The torch queue of a pool (with a prefix, the one torch queue). */
export function torchQueue(naming: QueueNaming, pool: Pool): string {
  return naming.kind === 'prefix' ? `${naming.prefix}-torch` : `ttd-${naming.storeId}-torch-${pool.environment}-${pool.device}`;
}

/** Both queues a run of this pool uses. */
export function runQueues(naming: QueueNaming, pool: Pool): RunQueues {
  return { control: controlQueue(naming), torch: torchQueue(naming, pool) };
}

/** Whether pools have queues of their own under this naming (not with TTD_QUEUE_PREFIX). */
export function poolsRouted(naming: QueueNaming): boolean {
  return naming.kind === 'store';
}

/** The queues of a run of `environment` on `device` (cpu when absent) in this store, or under TTD_QUEUE_PREFIX. */
export async function queuesForRun(
  queuePrefix: string | undefined,
  store: ObjectStore,
  environment: string,
  device: Device | undefined,
): Promise<RunQueues> {
  return runQueues(await queueNaming(queuePrefix, store), { environment, device: device ?? Device.cpu });
}

/** The environments a `ttd worker` serves on `device`: the one `--env` names, else every installed one (whose
 * Python has torch); with cuda, only those whose torch sees a CUDA device. Throws a TtdError naming what is missing. */
export async function workerEnvironments(envs: TorchEnv[], name: string | undefined, device: Device): Promise<TorchEnv[]> {
  const names = envs.map((e) => e.name).join(', ');
  let chosen: TorchEnv[];
  if (name !== undefined) {
    const e = envs.find((x) => x.name === name);
    if (!e)
      throw new TtdError(
        ErrorCode.argumentInvalid,
        `--env '${name}' is not a torch environment of this checkout; expected one of ${names} (ttd env list)`,
      );
    const refused = await pythonRefusal(e, `--env '${name}': `);
    if (refused) throw refused;
    chosen = [e];
  } else {
    // Every installed one. None: with one environment (TTD_PYTHON), the refusal `ttd run` gives; with several, each
    // one's problem, under the code of the newest (the one `ttd run` would have used).
    const problems = await Promise.all(envs.map((e) => pythonProblem(e)));
    chosen = envs.filter((_, i) => problems[i] === null);
    if (!chosen.length) {
      if (envs.length === 1) throw pythonError(envs[0], problems[0]!);
      throw new TtdError(
        problems[0]!.code,
        `none of this checkout's torch environments can serve torch stages (${problems.map((p) => p!.message.replace(/; expected .*$/, '')).join('; ')}); expected at least one Python interpreter with torch; ${SETUP_HINT}`,
      );
    }
  }
  if (device === Device.cpu) return chosen;
  const withCuda = (await Promise.all(chosen.map(async (e) => ((await hasCuda(e)) ? e : undefined)))).filter((e): e is TorchEnv => !!e);
  if (!withCuda.length) {
    throw new TtdError(
      ErrorCode.deviceUnavailable,
      `--device cuda, but torch of ${chosen.map((e) => `'${e.name}'`).join(', ')} sees no CUDA device on this host; serve the cpu pool here (--device cpu), and the cuda pool on a host with a GPU`,
    );
  }
  return withCuda;
}

/** Under TTD_QUEUE_PREFIX, the one environment a worker's torch queue serves (the configured one, as before pools:
 * undefined, which forEnvironment reads as the configuration itself), once its Python is known to have torch. */
export async function prefixEnvironment(envs: TorchEnv[], configured: string): Promise<undefined> {
  const e = envs.find((x) => x.name === configured);
  const refused = e && (await pythonRefusal(e));
  if (refused) throw refused;
  return undefined;
}
