// `ttd run SPEC [--json]`: validates the spec, starts one pipeline run and serves it with in-process workers.
import { checkSigningKey } from '../lib/registry/signing-key';
import { randomBytes } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import {
  CancelledFailure,
  TerminatedFailure,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type Client,
} from '@temporalio/client';
import type { VersioningOverride } from '@temporalio/common';
import { openStore, withConcurrency } from '../lib/config';
import { loadTemporalConfig } from '../temporal/config';
import { CliCode, ErrorCode, TtdError } from '../lib/contract/errors';
import { loadSpec, runEnvironmentId, storeRunSource, withEnvironment } from '../lib/spec/spec';
import { queueNaming, queuesForRun } from '../temporal/queues';
import { awaitVersionQueues, deploymentName, QueueType } from '../temporal/versioning';
import { assertWritable } from '../lib/store/store-identity';
import { exitCodeFor, fuserShown, type RunResult } from '../lib/contract/results';
import { installQuietRuntime } from '../workers/runtime';
import { ensureServer } from '../temporal/dev-server';
import { requireServer } from './temporal';
import { PIPELINE_WORKFLOW, progressQuery, type PipelineInput, type PipelineProgress } from '../workflows/definitions';
import type { pipelineWorkflow } from '../workflows/pipeline';
import { pipelineStartOptions } from '../workflows/start-options';
import { failWith, gateLines, paint, printJson, printJsonOr, sci, table, writeOut, writeErr } from './output';
import { preflight } from './preflight';
import { stagePhase, trainingBeat } from './progress';
import { progressView, type ProgressView } from './progress-view';
import { checkSearchAttributes, connectTemporal } from './temporal';
import { terminalLine } from '../render/terminal';

const POLL_MS = 300;
/** How long the first Ctrl-C waits before it cancels the run: a second one within it leaves the run running. */
const CANCEL_GRACE_MS = 2_000;

/** Options of `ttd run`. */
export interface RunOptions {
  json?: boolean;
  detach?: boolean;
  trigger?: string;
  commit?: string;
  force?: boolean;
  /** false with --no-cache. */
  cache?: boolean;
}

const TRIGGERS = ['manual', 'ci', 'schedule'] as const;

/** The run's workflow id: derived from model, commit and spec digest for CI (so a repeat attaches), else unique. */
export function workflowIdFor(model: string, specDigest: string, trigger: string, commit: string | undefined, force: boolean): string {
  const unique = `${timestamp()}-${randomBytes(3).toString('hex')}`;
  if (trigger !== 'ci' || !commit) return `${model}-${unique}`;
  const base = `${model}-ci-${commit.slice(0, 12)}-${specDigest.slice('sha256:'.length, 'sha256:'.length + 12)}`;
  return force ? `${base}-force-${unique}` : base;
}

/** Runs the command; exits with 0 promoted, 1 rejected, 2 failed or bad input. */
export async function runCommand(specPath: string, opts: RunOptions): Promise<void> {
  const json = Boolean(opts.json);
  const early = interruptsBeforeStart(json);
  let config, loaded, store;
  try {
    const trigger = opts.trigger ?? 'manual';
    if (!(TRIGGERS as readonly string[]).includes(trigger)) {
      throw new TtdError(ErrorCode.specInvalid, `--trigger must be one of ${TRIGGERS.join(', ')} (got '${trigger}')`);
    }
    if (trigger === 'ci' && !opts.commit)
      throw new TtdError(ErrorCode.specInvalid, '--trigger ci needs --commit SHA: the run is identified by model, commit and spec');
    if (opts.commit !== undefined && !/^[0-9a-zA-Z._-]{1,64}$/.test(opts.commit)) {
      throw new TtdError(ErrorCode.specInvalid, `--commit must be a commit id such as a git SHA (got '${opts.commit}')`);
    }
    // Its in-process workers serve this one run, whose torch stages go one after another: all the cores to each (unless
    // TTD_WORKER_CONCURRENCY says otherwise). Decided before the fork server starts: its children keep these threads.
    const base = process.env.TTD_WORKER_CONCURRENCY ? loadTemporalConfig() : withConcurrency(loadTemporalConfig(), 1);
    const read = loadSpec(specPath, base.archiveLimits);
    config = await preflight(base, read.spec, { servedHere: !opts.detach }); // the run's torch environment
    loaded = withEnvironment(read, config.environment);
    store = openStore(config);
    await store.list('ttd-probe/'); // an S3 store that is down, or has no bucket, is named now, before anything starts
    // This process signs the version it promotes: a signing key that cannot sign is named now, before anything is
    // uploaded (a detached run's workers check theirs as its first stage). Nothing is written: the key is created when
    // the run's first stage checks it, once the run has started.
    if (!opts.detach) checkSigningKey(config);
  } catch (err) {
    failWith(err, json);
  }
  const { spec } = loaded;
  const log = (line: string) => writeErr(`${line}\n`);
  const trigger = (opts.trigger ?? 'manual') as PipelineInput['trigger'];
  const runId = workflowIdFor(spec.name, loaded.specDigest, trigger, opts.commit, Boolean(opts.force));

  installQuietRuntime();
  // The workers and their activities only where this process serves the run (`ttd status` and the others that import
  // this module do not load them). Import torch while the server, the store and the workflow start. Inductor's ISA
  // probes are not made ahead here: about 12 CPU-seconds of g++ beside the first stages made ResNet-18's trace and
  // verify twice as long on 2 cores; the compile stage starts them beside its own g++, which leaves a core idle.
  const served = opts.detach ? undefined : await import('../workers/index.js');
  served?.prestartTorch(config, { aoti: false });
  let server;
  early.hold(); // from here a signal waits for the server being started, which is then stopped rather than orphaned
  try {
    // A detached run leaves the work to running workers, so it needs a server that outlives this process.
    server = opts.detach ? await requireServer(config) : await ensureServer(config);
  } catch (err) {
    failWith(err, json);
  }
  const started = server;
  await early.check(() => started.stop());
  if (server.startedHere) log(paint.dim(`started the embedded Temporal dev server on ${server.address}`));
  let temporal;
  try {
    temporal = await connectTemporal(config, server.address, { startedHere: server.startedHere });
  } catch (err) {
    await server.stop();
    failWith(err, json);
  }
  const connected = temporal;
  await early.check(async () => {
    await connected.close();
    await started.stop();
  });
  try {
    // A namespace without ttd's search attributes fails here, before anything is stored or started.
    await checkSearchAttributes(temporal.client, config);
    // Inputs go into the store only once everything else is known to work: bad input leaves nothing behind.
    // The store's control queue and the torch queue of the run's pool: only workers of this store serve them.
    const queues = await queuesForRun(config.queuePrefix, store, config.environment, spec.device);
    const source = await storeRunSource(store, loaded);
    // Every input may already be in the store: a store that refuses writes must say so before the run starts.
    await assertWritable(store);
    const input: PipelineInput = {
      runId,
      spec,
      specDigest: loaded.specDigest,
      ...source,
      actor: config.actor,
      trigger,
      commit: opts.commit ?? null,
      queues,
      environment: runEnvironmentId(loaded, config.environment),
      ...(loaded.declared ? { declaredEnvironment: loaded.declared } : {}),
      store: store.location,
      ...(opts.cache === false ? { noCache: true } : {}),
    };
    await early.check(async () => {
      await connected.close();
      await started.stop();
    });
    if (!served) {
      const { attached } = await startOrAttach(temporal.client, input);
      log(`${attached ? 'attached to' : 'run'} ${paint.bold(terminalLine(runId))}: ${spec.name} from ${terminalLine(loaded.specPath)}`);
      early.dispose(); // detached: the run goes on without this process, whatever it is sent now
      printJsonOr(json, { runId, status: 'running', attached }, `${runId} running${attached ? ' (attached to an earlier start)' : ''}`);
      return;
    }
    const { codeBuildId, createWorkers, runWorkersUntil } = served;
    // Its workers join this build's Worker Deployment version and the run is pinned to it, so that this process serves
    // its own run with no deployment step, whichever version is current (docs/deploy-upgrades.md).
    const version = {
      deploymentName: deploymentName(await queueNaming(config.queuePrefix, store), config.deploymentName),
      buildId: codeBuildId(config),
    };
    const workers = await createWorkers({ connection: temporal.native, config, store, queues, aoti: false, version });
    // A signal while the workers loaded (seconds) ends the command before the run starts.
    await early.check(async () => {
      await connected.close();
      await started.stop();
    });
    let interrupts: ReturnType<typeof followInterrupts> | undefined;
    const follow = async (): Promise<RunResult | RunEnd> => {
      // A run can be pinned only to a version whose queues the server has seen polled (about 1 s after the first poll).
      await awaitVersionQueues(temporal.client, config.temporalNamespace, version, [
        { name: queues.control, type: QueueType.workflow },
        { name: queues.control, type: QueueType.activity },
        { name: queues.torch, type: QueueType.activity },
      ]);
      const { handle, attached } = await startOrAttach(temporal.client, input, { pinnedTo: version });
      // Followed from the moment it starts: a signal that came while it was being started is handed on, and cancels it.
      interrupts = followInterrupts(handle, runId, log);
      const late = early.dispose();
      if (late) process.emit(late, late);
      log(`${attached ? 'attached to' : 'run'} ${paint.bold(terminalLine(runId))}: ${spec.name} from ${terminalLine(loaded.specPath)}`);
      return Promise.race([watch(handle).catch((err) => runEnd(err, runId)), interrupts.detached]);
    };
    let ended: RunResult | RunEnd;
    try {
      ended = await runWorkersUntil(workers, follow());
    } finally {
      interrupts?.dispose();
    }
    if ('error' in ended) {
      // Cancelled (by Ctrl-C, SIGTERM or `ttd cancel`), left running, or ended by something other than a gate.
      const interrupted = interrupts!.signal();
      const stage = interrupts!.stage();
      const out = { ...ended, ...(stage ? { stage } : {}) };
      if (json) printJson(out);
      writeErr(`ttd: ${ended.error.message}${stage ? ` (it stood at ${stage})` : ''} [${ended.error.code}]\n`);
      process.exitCode = interrupted === 'SIGINT' ? 130 : interrupted === 'SIGTERM' ? 143 : 2;
      return;
    }
    const result = ended;
    if (json) printJson(result);
    else printResult(result, spec.parity);
    process.exitCode = exitCodeFor(result.status);
  } catch (err) {
    // The store or the server failed under us: still one result, and the embedded server's lease given back.
    await temporal.close().catch(() => undefined);
    await server.stop().catch(() => undefined);
    failWith(err, json);
  } finally {
    await temporal.close();
    await server.stop();
  }
}

/** Ctrl-C and SIGTERM before the run starts. While nothing is started, the command ends at once, as an interrupted run
 * would (exit 130 or 143; with --json its one object); once it is starting the embedded server (`hold`), the signal
 * waits for the next `check`, which stops what was started first: a server started here is never left running
 * without a lease. */
function interruptsBeforeStart(json: boolean): {
  hold(): void;
  check(cleanup: () => Promise<void>): Promise<void>;
  /** Stops answering; returns the signal that came while holding and was not yet acted on. */
  dispose(): NodeJS.Signals | undefined;
} {
  let pending: NodeJS.Signals | undefined;
  let holding = false;
  const exit = (signal: NodeJS.Signals): never => {
    const message = `interrupted by ${signal} before the run started; nothing was started`;
    if (json) printJson({ status: 'cancelled', error: { code: CliCode.runCancelled, message } });
    writeErr(`ttd: ${message} [${CliCode.runCancelled}]\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (pending) return;
    pending = signal;
    if (!holding) exit(signal);
    writeErr(`\n${signal}: stopping once the Temporal server is up…\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    hold: () => void (holding = true),
    check: async (cleanup) => {
      if (!pending) return;
      await cleanup().catch(() => undefined);
      exit(pending);
    },
    dispose: () => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      return pending;
    },
  };
}

/** How a followed run ended when it reached no gate verdict: cancelled, left running (detached), or failed. */
export interface RunEnd {
  runId: string;
  status: 'cancelled' | 'running' | 'failed';
  error: { code: CliCode; message: string };
}

/** A run's workflow that closed without a RunResult: cancelled, terminated, timed out, or failed. */
function runEnd(err: unknown, runId: string): RunEnd {
  if (err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure)
    return { runId, status: 'cancelled', error: { code: CliCode.runCancelled, message: `run ${runId} was cancelled` } };
  if (err instanceof WorkflowFailedError && err.cause instanceof TerminatedFailure)
    return { runId, status: 'cancelled', error: { code: CliCode.runTerminated, message: `run ${runId} was terminated` } };
  const message = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
  return { runId, status: 'failed', error: { code: CliCode.runFailed, message: `run ${runId} ended without a result: ${message}` } };
}

/** Ctrl-C and SIGTERM while `ttd run` follows its run. Ctrl-C cancels the run after a grace period (its torch processes
 * end with their process groups) and waits for it to end cancelled; a second Ctrl-C within the grace period leaves
 * it running, detached, and one after it stops waiting. SIGTERM cancels at once. */
function followInterrupts(
  handle: WorkflowHandle,
  runId: string,
  log: (line: string) => void,
): { detached: Promise<RunEnd>; signal(): NodeJS.Signals | undefined; stage(): string | undefined; dispose(): void } {
  let first: NodeJS.Signals | undefined;
  let stage: string | undefined;
  let detach: (end: RunEnd) => void = () => undefined;
  const detached = new Promise<RunEnd>((resolve) => (detach = resolve));
  let cancelTimer: NodeJS.Timeout | undefined;
  const cancel = () => {
    cancelTimer = undefined;
    void handle
      .query(progressQuery)
      .then(
        (p) => (stage = p.stage ?? undefined),
        () => undefined,
      )
      .finally(() => handle.cancel().catch(() => undefined));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (first === undefined) {
      first = signal;
      if (signal === 'SIGTERM') {
        log(`\nSIGTERM: cancelling ${runId}`);
        cancel(); // always honoured, at once
      } else {
        log(`\nCtrl-C: cancelling ${runId} in ${CANCEL_GRACE_MS / 1000} s; press Ctrl-C again to leave it running`);
        cancelTimer = setTimeout(cancel, CANCEL_GRACE_MS);
      }
      return;
    }
    if (signal === 'SIGTERM' && cancelTimer) {
      clearTimeout(cancelTimer);
      cancel(); // a SIGTERM during the grace period cancels now
      return;
    }
    // A second Ctrl-C: within the grace period the run is left running (nothing was asked of it); after it, this
    // process stops waiting for the cancellation it asked for.
    const asked = cancelTimer === undefined;
    if (cancelTimer) clearTimeout(cancelTimer);
    detach({
      runId,
      status: 'running',
      error: {
        code: CliCode.runDetached,
        message: asked
          ? `stopped waiting for ${runId}; its cancellation was asked for and ends when a worker serves it (ttd worker); follow it with 'ttd wait ${runId}'`
          : `left ${runId} running, detached: it goes on when a worker serves it (ttd worker); follow it with 'ttd wait ${runId}', or stop it with 'ttd cancel ${runId}'`,
      },
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    detached,
    signal: () => first,
    stage: () => stage,
    dispose: () => {
      if (cancelTimer) clearTimeout(cancelTimer);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    },
  };
}

/** Starts the run, or attaches to a running or finished one with the same id (an idempotent CI trigger). */
async function startOrAttach(
  client: Client,
  input: PipelineInput,
  versioningOverride?: VersioningOverride,
): Promise<{ handle: WorkflowHandle; attached: boolean }> {
  const existing = client.workflow.getHandle(input.runId!);
  if (
    await existing.describe().then(
      () => true,
      () => false,
    )
  )
    return { handle: existing, attached: true };
  try {
    // A concurrent start of the same id between the check and here attaches too (USE_EXISTING).
    const handle = await client.workflow.start<typeof pipelineWorkflow>(PIPELINE_WORKFLOW, {
      workflowId: input.runId!,
      taskQueue: input.queues.control,
      args: [input],
      ...pipelineStartOptions(input),
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      workflowIdConflictPolicy: 'USE_EXISTING',
      ...(versioningOverride ? { versioningOverride } : {}),
    });
    return { handle, attached: false };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { handle: existing, attached: true };
    throw err;
  }
}

// Follows a run: stage starts and ends from the progress query, epoch losses from the train activity's heartbeats.
export async function watch(handle: WorkflowHandle, view: ProgressView = progressView()): Promise<RunResult> {
  const resultPromise = handle.result() as Promise<RunResult>;
  let done = false;
  resultPromise.then(
    () => (done = true),
    () => (done = true),
  );
  let shownStage: string | null = null;
  let shownCompleted = 0;
  let shownEpoch = 0;
  let shownPhase: string | undefined;
  const showEpochs = (losses: number[], epochs: number | undefined) => {
    for (const loss of losses.slice(shownEpoch)) view.epoch(++shownEpoch, epochs, loss);
  };
  const showCompleted = (progress: PipelineProgress) => {
    // A train stage served from the step cache trained nothing now: its losses are not replayed as epochs.
    if (!progress.completed.some((c) => c.stage === 'train' && c.cached)) showEpochs(progress.losses, progress.epochs);
    for (const c of progress.completed.slice(shownCompleted)) view.stageDone(c.stage, c.ms, c.cached === true, c.failed === true);
    shownCompleted = progress.completed.length;
  };
  try {
    while (!done) {
      try {
        const progress = await handle.query(progressQuery);
        showCompleted(progress);
        if (progress.stage && progress.stage !== shownStage) view.stageStarted(progress.stage, progress.epochs);
        shownStage = progress.stage;
        if (progress.stage === 'train') {
          const beat = await trainingBeat(handle);
          if (beat) showEpochs(beat.losses, beat.epochs);
        }
        if (progress.stage === 'environment' && view.phase) {
          const phase = await stagePhase(handle);
          if (phase && phase !== shownPhase) view.phase('environment', (shownPhase = phase));
        }
      } catch {
        /* the workflow may not have started on a worker yet */
      }
      await Promise.race([resultPromise.catch(() => undefined), new Promise((r) => setTimeout(r, POLL_MS))]);
    }
    // A closed workflow still answers queries while a worker runs: show the stages that finished last.
    await handle.query(progressQuery).then(showCompleted, () => undefined);
  } finally {
    view.close();
  }
  return resultPromise;
}

/** Prints a finished run for people. */
export function printResult(result: RunResult, parity?: { atol: number; rtol: number }): void {
  const out: string[] = [];
  // A result is read back from Temporal, where any client could have started a workflow of this id: every field is escaped.
  const [model, alias] = [terminalLine(result.model), terminalLine(result.alias)];
  const head =
    result.status === 'promoted'
      ? paint.green(`promoted ${model} version ${result.version} → ${alias}`)
      : paint.red(`${terminalLine(result.status)}: ${model} was not promoted`);
  out.push(head);
  if (result.digest) out.push(`  digest  ${terminalLine(result.digest)}`);
  out.push(`  run     ${terminalLine(result.runId)}`);
  out.push('gates');
  out.push(...gateLines(result.gates));
  if (result.parity?.length) {
    out.push(parity ? `parity (atol ${parity.atol}, rtol ${parity.rtol})` : 'parity');
    out.push(
      table([
        ['format', 'runtime', 'environment', 'fuser', 'max abs err', 'max rel err', 'torch', 'ms', 'result'],
        ...result.parity.map((p) => [
          p.format ?? 'torchscript',
          p.runtime,
          p.environment ?? '—',
          fuserShown(p),
          sci(p.max_abs_error),
          sci(p.max_rel_error),
          p.torch_version ?? '—',
          String(p.ms),
          p.passed ? 'agrees' : (p.code ?? 'failed'),
        ]),
      ]),
    );
  }
  out.push('timings');
  const cached = new Set(result.cached ?? []);
  out.push(
    table(
      Object.entries(result.timings).map(([stage, ms]) => [stage, `${ms} ms`, ...(cached.size ? [cached.has(stage) ? 'cached' : ''] : [])]),
    ),
  );
  writeOut(`${out.join('\n')}\n`);
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
}
