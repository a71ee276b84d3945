// One run's state inside the workflow: its activities, progress, gates and timings, and the few ways a stage ends.
import {
  ActivityFailure,
  ApplicationFailure,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities, StageRun, TorchActivities } from '../activities';
import { failureCode, GateCode, NonRetryable, type Gate } from '../lib/contract/gate-codes';
import type { DeclaredEnvironment } from '../lib/environments/declared-environments';
import type { GateResult, ParityRuntimeReport, RunResult } from '../lib/contract/results';
import type { Divergence } from '../lib/contract/ops';
import { storeStage, torchStage, type PipelineInput, type PipelineProgress } from './definitions';
import { asStageRun } from './legacy-results';
import { gateRecorded, runFinished, stageEnded } from './metrics';
import { digestAttribute, identityAttributes, outcomeAttributes, SEARCH_ATTRIBUTES_PATCH } from './search-attributes';
import { runPriority } from './start-options';

/** A stage's verdict as the torch side and the parity stage report it. */
export interface Verdict {
  passed: boolean;
  code: GateCode | null;
  message: string;
  warnings?: string[];
  divergence?: Divergence | null;
}

/** Thrown inside the workflow to end the run with a result (rejected or failed) instead of an error. */
export class RunEnded extends Error {
  constructor(readonly result: RunResult) {
    super(result.status);
  }
}

/** The run in progress: what it calls, what it has found, and how it ends. */
export class Run {
  readonly spec: PipelineInput['spec'];
  readonly runId: string;
  readonly torch: ReturnType<typeof proxyActivities<TorchActivities>>;
  readonly control: ReturnType<typeof proxyActivities<ControlActivities>>;
  readonly progress: PipelineProgress;
  readonly gates: GateResult[] = [];
  readonly timings: Record<string, number> = {};
  readonly cached: string[] = [];
  readonly torchTimings: Record<string, number> = {};
  training?: RunResult['training'];
  parity?: ParityRuntimeReport[];
  /** Passed to every torch stage: the run's torch environment, and the step cache unless the run asked for fresh work. */
  readonly torchOptions: { noCache?: boolean; environment?: string; declared?: DeclaredEnvironment };
  /** The stored artifact's digest (the first format's), once the store stage has it. */
  digest: string | null = null;
  /** Whether this run upserts its search attributes (false for a run started before they existed, replayed). */
  private readonly searchable: boolean;

  constructor(readonly input: PipelineInput) {
    this.spec = input.spec;
    this.runId = input.runId ?? workflowInfo().workflowId;
    // Every activity carries a one-line summary (stage, model, digest once stored) that the Temporal UI shows, and the
    // run's priority (its trigger's, fair by model), also when the run was started without one.
    const priority = runPriority(input);
    this.torch = summarized(proxyActivities<TorchActivities>({ ...torchStage, taskQueue: input.queues.torch, priority }), () =>
      this.summary(),
    );
    this.control = summarized(proxyActivities<ControlActivities>({ ...storeStage, taskQueue: input.queues.control, priority }), () =>
      this.summary(),
    );
    this.progress = { status: 'running', stage: null, completed: [], epochs: input.spec.train.epochs, losses: [] };
    this.torchOptions = {
      ...(input.noCache ? { noCache: true } : {}),
      ...(input.environment ? { environment: input.environment } : {}),
      ...(input.declaredEnvironment ? { declared: input.declaredEnvironment } : {}),
    };
    this.searchable = patched(SEARCH_ATTRIBUTES_PATCH);
    if (this.searchable) upsertSearchAttributes(identityAttributes(input));
    this.showDetails();
  }

  /** The artifact is stored: its digest is searchable and named in the summaries that follow. */
  stored(digest: string): void {
    this.digest = digest;
    if (this.searchable) upsertSearchAttributes(digestAttribute(digest));
    this.showDetails();
  }

  /** The run ends with this result: its outcome is searchable, its metrics counted. */
  finish(result: RunResult): RunResult {
    if (this.searchable) upsertSearchAttributes(outcomeAttributes({ ...result, digest: result.digest ?? this.digest }));
    this.showDetails(result);
    return runFinished(result);
  }

  /** The run was cancelled: says so where it can be searched, before the cancellation ends it. */
  cancelled(): void {
    if (this.searchable) upsertSearchAttributes(outcomeAttributes('cancelled'));
    this.showDetails('cancelled');
  }

  /** The current activity's one-line summary. */
  private summary(): string {
    const stage = this.progress.stage ?? 'stage';
    return `${stage} · ${this.spec.name}${this.digest ? ` · ${this.digest.slice(0, 19)}…` : ''}`;
  }

  /** The run's current details in the Temporal UI (Markdown): what it is, its gates so far, and how it ended. */
  private showDetails(end?: RunResult | 'cancelled'): void {
    setCurrentDetails(runDetails(this, end));
  }

  /** The run's result with the given status, as `ttd run --json` prints it. */
  result(status: RunResult['status'], extra: Partial<RunResult> = {}): RunResult {
    return {
      status,
      runId: this.runId,
      model: this.spec.name,
      version: null,
      digest: null,
      alias: null,
      gates: this.gates,
      timings: this.timings,
      trigger: this.input.trigger,
      commit: this.input.commit,
      ...(this.training ? { training: this.training } : {}),
      ...(this.parity ? { parity: this.parity } : {}),
      ...(this.cached.length ? { cached: [...this.cached] } : {}),
      ...(Object.keys(this.torchTimings).length ? { torchTimings: this.torchTimings } : {}),
      ...extra,
    };
  }

  /** Runs a control stage, timing it; an activity failure ends the run as `failed` at the given gate. */
  stage<T>(name: string, gate: Gate, fn: () => Promise<T>): Promise<T> {
    return this.timed(name, gate, fn, () => false);
  }

  /** Runs a torch stage: as `stage`, and records whether it was served from the step cache and its torch time. */
  async torchStage<T>(name: string, gate: Gate, fn: () => Promise<StageRun<T>>): Promise<T> {
    const run = asStageRun(name, await this.timed(name, gate, fn, (r) => asStageRun(name, r, this.spec).cached), this.spec);
    if (run.cached) this.cached.push(name);
    if (run.torchMs !== null) this.torchTimings[name] = run.torchMs;
    return run.output;
  }

  private async timed<T>(name: string, gate: Gate, fn: () => Promise<T>, wasCached: (out: T) => boolean): Promise<T> {
    this.progress.stage = name;
    const started = Date.now();
    let reused = false;
    let failed = false;
    try {
      const out = await fn();
      reused = wasCached(out);
      return out;
    } catch (err) {
      failed = true;
      if (isCancellation(err)) throw err;
      const cause = err instanceof ActivityFailure ? err.cause : err;
      const code = failureCode(cause instanceof ApplicationFailure ? cause.type : null);
      // The sandbox refusing what the model code tried is a finding about that code: the run is rejected, not failed.
      const refused = code === GateCode.sandboxRefused;
      this.addGate({
        gate,
        passed: false,
        code,
        message: `${name} ${refused ? 'rejected' : 'failed'}: ${(cause as Error)?.message ?? String(err)}`,
      });
      throw new RunEnded(this.result(refused ? 'rejected' : 'failed'));
    } finally {
      this.timings[name] = Date.now() - started;
      this.progress.completed.push({
        stage: name,
        ms: this.timings[name],
        ...(reused ? { cached: true } : {}),
        ...(failed ? { failed: true } : {}),
      });
      this.progress.stage = null;
      stageEnded(name, this.timings[name], failed ? 'failed' : reused ? 'cached' : 'ok');
    }
  }

  /** Ends the run as rejected by this gate. */
  reject(gate: GateResult): never {
    this.addGate(gate);
    throw new RunEnded(this.result('rejected'));
  }

  /** Records a stage's verdict as its gate: rejects the run when it failed, else adds it and goes on. */
  judge(gate: Gate, v: Verdict): void {
    const entry: GateResult = {
      gate,
      passed: v.passed,
      code: v.code,
      message: v.message,
      ...(v.warnings?.length ? { warnings: v.warnings } : {}),
      ...(v.divergence ? { divergence: v.divergence } : {}),
    };
    if (!v.passed) this.reject(entry);
    this.addGate(entry);
  }

  /** A gate that passed with a message. */
  pass(gate: Gate, message: string): void {
    this.addGate({ gate, passed: true, code: null, message });
  }

  // Every gate entry goes through here, so that each is counted once in the gate metrics.
  private addGate(entry: GateResult): void {
    this.gates.push(entry);
    gateRecorded(entry);
    this.showDetails();
  }
}

/** An activity proxy whose every call carries the summary `summary()` gives at the time of the call. */
function summarized<T extends object>(proxy: T, summary: () => string): T {
  return new Proxy(proxy, {
    get(target, prop, receiver) {
      const fn = Reflect.get(target, prop, receiver) as { executeWithOptions?: (o: { summary: string }, args: unknown[]) => unknown };
      if (typeof fn?.executeWithOptions !== 'function') return fn;
      const call = fn.executeWithOptions.bind(fn);
      return (...args: unknown[]) => call({ summary: summary() }, args);
    },
  });
}

const DETAIL_MESSAGE = 240;

/** A run's details as Markdown: the facts `ttd status` and the report show first, and one line per gate. */
export function runDetails(run: Run, end?: RunResult | 'cancelled'): string {
  const { input } = run;
  const one = (s: string) => s.replace(/\s+/g, ' ').replace(/[|`]/g, "'").slice(0, DETAIL_MESSAGE);
  const verdict =
    end === undefined
      ? run.progress.stage
        ? `running: ${run.progress.stage}`
        : 'running'
      : end === 'cancelled'
        ? 'cancelled'
        : end.status;
  const facts: [string, string][] = [
    ['model', input.spec.name],
    ['verdict', verdict],
    ...(end !== undefined && end !== 'cancelled' && end.version !== null ? [['version', String(end.version)] as [string, string]] : []),
    ...(run.digest ? [['digest', run.digest] as [string, string]] : []),
    ['trigger', `${input.trigger}${input.commit ? ` (commit ${input.commit})` : ''}`],
    ...(input.environment ? [['environment', input.environment] as [string, string]] : []),
    // A run recorded before `formats` has none: it built a TorchScript archive.
    ['formats', (input.spec.formats ?? ['torchscript']).join(', ')],
  ];
  const lines = [
    `**${one(input.spec.name)}**: ${one(verdict)}`,
    '',
    '| | |',
    '|---|---|',
    ...facts.map(([k, v]) => `| ${k} | ${one(v)} |`),
  ];
  if (run.gates.length) {
    lines.push('', '| gate | passed | code | message |', '|---|---|---|---|');
    for (const g of run.gates) lines.push(`| ${g.gate} | ${g.passed ? 'yes' : 'no'} | ${g.code ?? ''} | ${one(g.message)} |`);
  }
  return lines.join('\n');
}

/** A failure for a run that has neither a model file nor a foreign artifact. */
export const noSource = () =>
  ApplicationFailure.create({ type: NonRetryable.badInput, message: 'a run needs a model file or a foreign artifact', nonRetryable: true });
