// What every torch stage does around its request: a scratch dir, blobs in, heartbeats, blobs out, errors mapped.
import { constants, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { stageThreads } from '../lib/limits/capacity';
import { forEnvironment, type Config } from '../lib/config';
import { TorchOps, type OpResult, type PathKeys, type StageOutput, type TorchOpName } from '../lib/contract/ops';
import type { ModelFileInput, TorchStage, WorkerDirs } from '../lib/contract/stages';
import { DigestStream } from '../lib/store/digest';
import { getBlobToFile, putBlobFile, type ObjectStore } from '../lib/store/store';
import { torchFailure } from '../lib/contract/codes';
import { GateCode, NonRetryable } from '../lib/contract/gate-codes';
import { redact, redactDeep } from '../lib/environments/redact';
import { seconds, stageLimit, type LimitBasis, type TimeLimit } from '../lib/limits/time-limits';
import { runTorchRequest, workRoot } from './torch-process';

/** What torch activities are built with. */
export interface TorchDeps {
  config: Config;
  store: ObjectStore;
}

const HEARTBEAT_EVERY_MS = 2_000;
const SETUP_HINT = 'make setup installs torch-2.13 (.torch/torch-2.13) and torch-1.13 (Debian python3-torch for /usr/bin/python3)';

/** An environment in words: its name and its Python (and that TTD_PYTHON set it, when it did). */
export function environmentWords(config: Config): string {
  return `'${config.environment}' (python '${config.python}'${config.environment === 'custom' ? ', TTD_PYTHON' : ''})`;
}

/** The worker's configuration for the environment a stage asks for; an environment it does not know fails the stage
 * (permanently: this worker's checkout will not learn it by retrying). */
export function stageConfig(config: Config, environment: string | undefined): Config {
  const chosen = forEnvironment(config, environment);
  if (chosen) return chosen;
  throw ApplicationFailure.create({
    type: NonRetryable.environmentMissing,
    message: `this worker has no torch environment '${environment}'; it has ${config.environments.map((e) => `'${e.name}'`).join(', ')}`,
    nonRetryable: true,
  });
}

// Torch stages of this process in flight (each holds one work dir): how many share the host's cores now.
let stagesRunning = 0;

/** How many torch stages this process runs now (the caller's included, inside withWorkDir). */
export function torchStagesRunning(): number {
  return stagesRunning;
}

// Called whenever a torch stage of this process ends: a stage that sized its work by the share may widen it.
const stageEndListeners = new Set<() => void>();

/** Calls `listener` each time a torch stage of this process ends, until the returned function is called. */
export function onTorchStageEnd(listener: () => void): () => void {
  stageEndListeners.add(listener);
  return () => stageEndListeners.delete(listener);
}

/** A scratch directory for one activity attempt, removed afterwards whatever happens. */
export async function withWorkDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  stagesRunning++;
  try {
    return await inWorkDir(fn);
  } finally {
    stagesRunning--;
    for (const listener of stageEndListeners) listener();
  }
}

async function inWorkDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(workRoot(), 'ttd-stage-'));
  // Heartbeat for the whole stage, store I/O included: a store riding out an outage is alive, not dead.
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(lastBeat.get(ctx) ?? ctx.info.heartbeatDetails), HEARTBEAT_EVERY_MS);
  try {
    return await fn(dir);
  } finally {
    clearInterval(timer);
    await rm(dir, { recursive: true, force: true });
  }
}

// Time spent inside torch work per activity (the torch side's own `ms`, runner processes' wall time): a stage's
// time minus this is our overhead (dispatch, process reuse, protocol, store).
const torchWork = new WeakMap<Context, number>();

/** Adds torch work time to the current activity's total. */
export function addTorchWork(ms: number): void {
  const ctx = Context.current();
  torchWork.set(ctx, (torchWork.get(ctx) ?? 0) + ms);
}

/** The current activity's torch work so far, in ms (undefined outside an activity or before any). */
export function torchWorkMs(): number | undefined {
  try {
    return torchWork.get(Context.current());
  } catch {
    return undefined;
  }
}

// The details of each activity's last heartbeat: a heartbeat replaces them, so every beat repeats them.
const lastBeat = new WeakMap<Context, unknown>();

function beat(ctx: Context, details: unknown): void {
  lastBeat.set(ctx, details);
  ctx.heartbeat(details);
}

/** Writes the named blobs into `dir` (verified against their digests) and returns their paths. */
export async function materialize(store: ObjectStore, dir: string, files: Record<string, string>): Promise<Record<string, string>> {
  const paths: Record<string, string> = {};
  await Promise.all(
    Object.entries(files).map(async ([name, digest]) => {
      paths[name] = join(dir, name);
      await getBlobToFile(store, digest, paths[name]);
    }),
  );
  return paths;
}

/** Stores files a torch op wrote into its work dir `dir` by content (storeWorkFile) and returns their digests, keyed
 * like the input. */
export async function storeFiles(store: ObjectStore, dir: string, files: Record<string, string>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  await Promise.all(Object.entries(files).map(async ([name, path]) => (out[name] = await storeWorkFile(store, dir, path))));
  return out;
}

/** Stores one file that code in the sandbox may have written: only a regular file directly in the work dir, copied
 * first (copyWrittenFile), so a symlink planted there cannot make us upload a host file. The private copy is what the
 * store takes (a rename on the filesystem store), so a large artifact is written once more, not twice. */
export async function storeWorkFile(store: ObjectStore, dir: string, path: string): Promise<string> {
  return withWorkFile(dir, path, (copy, digest) => putBlobFile(store, copy, digest, true));
}

/** Calls `fn` with a private copy of a file the torch side wrote directly in `dir` (copied without following a link)
 * and the sha256 of the bytes copied; the copy is removed afterwards. */
export async function withWorkFile<T>(dir: string, path: string, fn: (copy: string, digest: string) => Promise<T>): Promise<T> {
  if (dirname(resolve(path)) !== resolve(dir)) throw refusedFile(path, dir, 'it lies outside that directory');
  const copyDir = await mkdtemp(join(tmpdir(), 'ttd-store-'));
  try {
    const copy = join(copyDir, basename(path));
    const digest = await copyWrittenFile(path, copy, dir);
    return await fn(copy, digest);
  } finally {
    await rm(copyDir, { recursive: true, force: true });
  }
}

/** Copies a file that code in the sandbox wrote (in `dir`) to `dest`, through a descriptor opened without following a
 * link, and returns the sha256 of the bytes copied (hashed on the way); a symlink or anything but a regular file is
 * refused (sandbox_refused). */
export async function copyWrittenFile(path: string, dest: string, dir: string): Promise<string> {
  const handle = await openWrittenFile(path, dir);
  try {
    const hash = new DigestStream();
    await pipeline(handle.createReadStream({ autoClose: false }), hash, createWriteStream(dest));
    return hash.digest();
  } finally {
    await handle.close();
  }
}

/** The bytes of a file that code in the sandbox wrote directly in `dir`, read in place with the same checks as
 * copyWrittenFile (a regular file, never through a link): for what is only read once, such as a runtime's outputs. */
export async function readWrittenFile(path: string, dir: string): Promise<Buffer> {
  const handle = await openWrittenFile(path, dir);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

async function openWrittenFile(path: string, dir: string): Promise<FileHandle> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw refusedFile(path, dir, 'it is a symbolic link');
    throw err;
  }
  if (!(await handle.stat()).isFile()) {
    await handle.close();
    throw refusedFile(path, dir, 'it is not a regular file');
  }
  return handle;
}

function refusedFile(path: string, dir: string, why: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: NonRetryable.sandboxRefused,
    message: redact(
      `the torch side named '${path}' as a file it wrote, but ${why}; ttd reads only regular files written directly in the work directory '${dir}'`,
    ),
    nonRetryable: true,
  });
}

/** A stage whose process crashes runs at most this often (issue 15: retried at most once). */
const MODEL_CRASH_ATTEMPTS = 2;

/** Runs a torch op with heartbeats and cancellation; returns its result or throws the right failure.
 * `displayPaths` maps scratch paths to what the user knows them as (their model file), for messages. */
export async function torchOp(
  deps: TorchDeps,
  op: string,
  args: Record<string, unknown>,
  displayPaths: Record<string, string> = {},
  onProgress?: (data: Record<string, unknown>) => Promise<Record<string, unknown>>,
  timeLimit?: TimeLimit,
): Promise<Record<string, unknown>> {
  const ctx = Context.current();
  // Resumed attempts start from what the last heartbeat of the previous attempt said.
  let latest: Record<string, unknown> = { ...((ctx.info.heartbeatDetails as Record<string, unknown> | undefined) ?? {}), op };
  const losses: number[] = Array.isArray(latest.losses) ? [...(latest.losses as number[])] : []; // so a watcher that polls misses no epoch
  let pending: Promise<void> = Promise.resolve(); // progress hooks run in order, one at a time
  // A hook that throws (its store write refused, say) stops the request and fails the stage with its error; left in
  // `pending` unobserved, the rejection would end the whole worker process.
  let hookFailed: { error: unknown } | undefined;
  const stopRequest = new AbortController();
  const timer = setInterval(() => beat(ctx, latest), HEARTBEAT_EVERY_MS);
  beat(ctx, latest);
  let timedOut = false;
  const deadline = timeLimit
    ? setTimeout(() => {
        timedOut = true;
        stopRequest.abort();
      }, timeLimit.ms)
    : undefined;
  const started = performance.now();
  try {
    const request = runTorchRequest(deps.config, op, args, {
      threads: stageThreads(deps.config, availableParallelism(), torchStagesRunning()),
      signal: AbortSignal.any([ctx.cancellationSignal, stopRequest.signal]),
      onEvent: (event, data) => {
        if (typeof data.loss === 'number') losses.push(data.loss);
        const base = { ...latest, op, event, ...data, losses: [...losses] };
        if (!onProgress) {
          latest = base;
          beat(ctx, latest);
          return;
        }
        pending = pending.then(async () => {
          if (hookFailed) return;
          try {
            latest = { ...base, ...(await onProgress(data)) };
            beat(ctx, latest);
          } catch (error) {
            hookFailed = { error };
            stopRequest.abort();
          }
        });
      },
    });
    const outcome = await request.catch((err) => {
      if (hookFailed || timedOut) return undefined;
      throw err;
    });
    await pending;
    if (timedOut && timeLimit) {
      // The same input takes as long again: not retried; the spec's time_limits.scale raises the limit.
      throw ApplicationFailure.create({
        type: NonRetryable.stageTimeout,
        message: `the torch stage '${op}' ran ${((performance.now() - started) / 1000).toFixed(0)} s, past its limit of ${seconds(timeLimit.ms)} (${timeLimit.basis}); expected it to finish within it: raise time_limits.scale in the spec if this model really needs longer`,
        nonRetryable: true,
      });
    }
    if (hookFailed) throw hookFailed.error;
    if (!outcome) throw new Error(`the torch request '${op}' ended without an outcome`);
    // Whatever the torch side says leaves this stage without the worker's secrets (lib/environments/redact.ts).
    if (outcome.kind === 'ok') {
      if (outcome.ms !== undefined) addTorchWork(outcome.ms);
      return redactDeep(outcome.result);
    }
    if (outcome.kind === GateCode.sandboxUnavailable) {
      throw ApplicationFailure.create({
        type: NonRetryable.sandboxUnavailable,
        message: `cannot run '${op}' in the sandbox: ${outcome.reason}; set TTD_SANDBOX=off to run model code without it (only for code you trust)`,
        nonRetryable: true,
      });
    }
    if (outcome.kind === 'error') {
      const shown = (text: string) => Object.entries(displayPaths).reduce((t, [from, to]) => t.split(from).join(to), text);
      // The catalog says which failure type each torch error code becomes, and whether it is retried.
      const failure = torchFailure(outcome.code);
      throw ApplicationFailure.create({
        type: failure.type,
        message: redact(shown(`${outcome.message}${outcome.traceback ? `\n${outcome.traceback}` : ''}`)),
        nonRetryable: !failure.retryable,
      });
    }
    // In the sandbox a Python that cannot start is bwrap's complaint: `bwrap: execvp PYTHON: No such file or directory`.
    const spawnError = outcome.spawnError ?? /^bwrap: execvp (.*)$/m.exec(outcome.stderrTail)?.[1];
    if (spawnError) {
      throw ApplicationFailure.create({
        type: NonRetryable.environmentMissing,
        message: `cannot start the torch environment ${environmentWords(deps.config)}: ${spawnError}; ${SETUP_HINT}`,
        nonRetryable: true,
      });
    }
    if (/No module named 'torch'/.test(outcome.stderrTail)) {
      throw ApplicationFailure.create({
        type: NonRetryable.environmentMissing,
        message: `the torch environment ${environmentWords(deps.config)} has no torch; ${SETUP_HINT}, or point TTD_PYTHON at an interpreter with torch`,
        nonRetryable: true,
      });
    }
    if (outcome.memoryExceeded) {
      // The same input grows the same way again: not retried.
      const { rssMb, capMb } = outcome.memoryExceeded;
      throw ApplicationFailure.create({
        type: NonRetryable.memoryLimit,
        message: `the torch stage '${op}' was killed at ${rssMb} MiB of resident memory, past its cap of ${capMb} MiB (TTD_TORCH_STAGE_MAX_RSS_MB); expected it to stay below the cap (smaller batches or model, or a higher cap)`,
        nonRetryable: true,
      });
    }
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
    // The process running the model ended without answering: the model's own code (os._exit, a segfault in an
    // extension, an uncaught KeyboardInterrupt) or the host (the OOM killer). Retried once, in case it was the host.
    const attempt = ctx.info.attempt;
    const how =
      outcome.signal !== null
        ? `was killed by ${outcome.signal}`
        : outcome.exitCode !== null
          ? `exited with status ${outcome.exitCode}`
          : 'ended (its exit status is unknown)';
    throw ApplicationFailure.create({
      type: GateCode.modelCrashed,
      message: redact(
        `the torch process running '${op}' ${how} without answering (attempt ${attempt}; ${attempt >= MODEL_CRASH_ATTEMPTS ? 'not retried again' : 'retried once'}); stderr:\n${outcome.stderrTail}`,
      ),
      nonRetryable: attempt >= MODEL_CRASH_ATTEMPTS,
      details: [{ exitCode: outcome.exitCode, signal: outcome.signal }],
    });
  } finally {
    clearInterval(timer);
    clearTimeout(deadline);
  }
}

/** The activity of a declared torch stage: fetch its blobs, call its op, check the result against the contract, store
 * its files, and show the user's own model path in every message. */
export function runTorchStage<K extends TorchOpName, I, S extends PathKeys<OpResult<K>> = never>(
  deps: TorchDeps,
  stage: TorchStage<K, I, S>,
  /** Progress events: what to add to the activity's heartbeat for each (the train stage names checkpoints); `dir` is
   * the stage's work dir. */
  onProgress?: (data: Record<string, unknown>, dir: string) => Promise<Record<string, unknown>>,
): (input: I) => Promise<StageOutput<K, S>> {
  return (input) =>
    withWorkDir(async (dir) => {
      const { modelFilePath, modelFileDigest, environment, limits } = input as Partial<ModelFileInput> & {
        environment?: string;
        limits?: LimitBasis;
      };
      const env = { ...deps, config: stageConfig(deps.config, environment) };
      // The scratch copy keeps the user's file name, so messages that quote file:line read as theirs.
      const modelFile = modelFilePath && modelFileDigest ? basename(modelFilePath) : undefined;
      const fetched = await materialize(deps.store, dir, {
        ...(modelFile ? { [modelFile]: modelFileDigest! } : {}),
        ...(stage.fetch?.(input) ?? {}),
      });
      const display: Record<string, string> = modelFile ? { [fetched[modelFile]]: modelFilePath! } : {};
      const files = modelFile ? { ...fetched, model: fetched[modelFile] } : fetched;
      const raw = await torchOp(
        env,
        stage.op,
        stage.args(input, files, dir, await workerDirs(env.config)) as Record<string, unknown>,
        display,
        onProgress && ((data) => onProgress(data, dir)),
        stageLimit(limits),
      );
      const parsed = TorchOps[stage.op].result.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw ApplicationFailure.create({
          type: GateCode.internal,
          message: `the torch op '${stage.op}' broke its contract (lib/contract/ops.ts): result.${issue?.path.join('.')}: ${issue?.message}`,
          nonRetryable: true,
        });
      }
      const result = shownPaths(parsed.data, display) as Record<string, unknown>;
      const toStore: Record<string, string> = {};
      for (const field of stage.store ?? []) {
        const path = result[field as string];
        if (typeof path === 'string') toStore[(field as string).slice(0, -'_path'.length)] = path;
      }
      const stored = await storeFiles(deps.store, dir, toStore);
      const out: Record<string, unknown> = { files: stored };
      for (const [key, value] of Object.entries(result)) if (!key.endsWith('_path')) out[key] = value;
      return out as StageOutput<K, S>;
    });
}

/** The worker's own directories for an environment, under TTD_HOME (created on first use). */
async function workerDirs(config: Config): Promise<WorkerDirs> {
  const inductorCache = join(config.inductorCache, config.environment);
  await mkdir(inductorCache, { recursive: true });
  return { inductorCache };
}

/** `value` with every scratch path in its strings replaced by what the user knows it as. */
function shownPaths(value: unknown, display: Record<string, string>): unknown {
  if (!Object.keys(display).length) return value;
  if (typeof value === 'string') return Object.entries(display).reduce((t, [from, to]) => t.split(from).join(to), value);
  if (Array.isArray(value)) return value.map((v) => shownPaths(v, display));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shownPaths(v, display)]));
  return value;
}
