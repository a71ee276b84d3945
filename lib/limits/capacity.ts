// How much torch work one worker process takes on at once, and how many threads each torch stage gets, from the
// host's cores: enough stages to keep every core busy while others wait on I/O, never more threads than cores.
import { ErrorCode, TtdError } from '../contract/errors';

/** Concurrent torch activities per core by default. Measured with 20 seed pipelines at once on 2 cores
 * (bench/capacity.mjs; docs/benchmarks.md): one per core came within 1.07-1.11x of the CPU-bound limit, two per core
 * 1.15-1.25x (more processes at once cost more CPU for the same work, and memory), three on 2 cores 1.13-1.16x. */
export const STAGES_PER_CORE = 1;
/** The most concurrent torch activities (and threads per stage) a worker takes, from any source. */
export const MAX_CONCURRENCY = 1024;

/** A worker's capacity: torch activities at once, and threads per torch stage. */
export interface Capacity {
  concurrency: number;
  torchThreads: number;
}

/** Torch activities at once on a host with `cores` cores, unless told otherwise. */
export function defaultConcurrency(cores: number): number {
  return Math.max(1, Math.floor(cores)) * STAGES_PER_CORE;
}

/** Threads per torch stage when `concurrency` stages share `cores` cores: an equal share, at least one. */
export function threadsPerStage(cores: number, concurrency: number): number {
  return Math.max(1, Math.floor(cores / concurrency));
}

/** The capacity from `TTD_WORKER_CONCURRENCY` and `TTD_TORCH_THREADS` (each derived from `cores` when unset), with
 * `concurrency` (the `--concurrency` flag, already checked) taking the place of the variable when given. */
export function capacityFrom(env: NodeJS.ProcessEnv, cores: number, concurrency?: number): Capacity {
  const n = concurrency ?? count(env, 'TTD_WORKER_CONCURRENCY', MAX_CONCURRENCY) ?? defaultConcurrency(cores);
  return { concurrency: n, torchThreads: count(env, 'TTD_TORCH_THREADS', MAX_CONCURRENCY) ?? threadsPerStage(cores, n) };
}

/** Whether `TTD_TORCH_THREADS` fixes the threads of every torch stage (else a stage takes its share of the cores left
 * by the stages running beside it: `stageThreads`). */
export function torchThreadsFixed(env: NodeJS.ProcessEnv): boolean {
  return count(env, 'TTD_TORCH_THREADS', MAX_CONCURRENCY) !== undefined;
}

/** Threads for a torch stage starting now, with `running` torch stages of this worker in flight (itself included): the
 * configured count when fixed, else an equal share of the host's cores among those running, and never fewer than the
 * configured share. A stage alone on an idle worker gets every core, as the same work by hand would; under full load
 * each gets `cores / concurrency`, as before. */
export function stageThreads(capacity: Capacity & { torchThreadsFixed?: boolean }, cores: number, running: number): number {
  return capacity.torchThreadsFixed ? capacity.torchThreads : coreShare(capacity, cores, running);
}

/** The cores `running` torch stages of this worker (the caller's included) leave each one, never fewer than the
 * configured threads per stage: a stage's threads, and how many one-thread parity runtimes a parity stage runs at once. */
export function coreShare(capacity: Capacity, cores: number, running: number): number {
  return Math.min(MAX_CONCURRENCY, Math.max(capacity.torchThreads, Math.floor(cores / Math.max(1, running))));
}

/** `--concurrency N`: a whole number from 1 to MAX_CONCURRENCY. */
export function concurrencyArgument(value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= 1 && n <= MAX_CONCURRENCY)) {
    throw new TtdError(
      ErrorCode.argumentInvalid,
      `--concurrency '${value}' is not a whole number from 1 to ${MAX_CONCURRENCY}; expected the torch activities this worker runs at once, e.g. --concurrency 4`,
      { flag: '--concurrency', value },
    );
  }
  return n;
}

// A whole-number variable from 1 to max; undefined when unset.
function count(env: NodeJS.ProcessEnv, name: string, max: number): number | undefined {
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= 1 && n <= max)) throw new TtdError(ErrorCode.configInvalid, `${name}='${value}'; expected a whole number from 1 to ${max}`);
  return n;
}
