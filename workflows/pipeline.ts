// The pipeline workflow: train → trace → verify → optimize → fusion → store → parity → promote, or, for a foreign
// artifact, verify → store → parity → promote. Orchestration only.
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineQuery,
  defineUpdate,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ArtifactFiles, ControlActivities, TorchActivities } from '../activities';
import { NON_RETRYABLE_TYPES } from '../lib/failures';
import type { GateResult, ParityRuntimeReport, RunResult } from '../lib/results';
import type { Spec } from '../lib/spec';

/** What a run starts with: the validated spec and the digests of its inputs, never file contents. */
export interface PipelineInput {
  /** The run's id; a scheduled run has none and uses its workflow id. */
  runId?: string;
  spec: Spec;
  specDigest: string;
  /** The model file to train (absent for a foreign artifact). */
  modelFileDigest?: string;
  /** The model file's path where the run was started, for messages only. */
  modelFilePath?: string;
  /** A foreign artifact (traced elsewhere) and its references: no training or tracing. */
  foreign?: { artifactDigest: string; referencesDigest: string; artifactPath: string };
  actor: string;
  trigger: 'manual' | 'ci' | 'schedule';
  commit: string | null;
  queues: { control: string; torch: string };
  /** `ttd run --no-cache`: every torch stage does its work even when an earlier run had the same inputs. */
  noCache?: boolean;
}

/** What `ttd run` shows while a run moves: the current stage and the finished ones with their durations. */
export interface PipelineProgress {
  /** `running`, or `awaiting_approval` while the run waits for `ttd approve`. */
  status: 'running' | 'awaiting_approval';
  stage: string | null;
  /** Finished stages; `cached` when the stage reused an earlier identical run's outputs. */
  completed: { stage: string; ms: number; cached?: boolean }[];
  epochs: number;
  losses: number[];
}

/** The progress query. */
export const progressQuery = defineQuery<PipelineProgress>('progress');

/** A person's answer to a run that waits for approval. */
export interface ApprovalDecision {
  approve: boolean;
  by: string;
  reason?: string;
}

/** The approval update: `ttd approve RUN --by NAME [--reject --reason TEXT]`. */
export const approveUpdate = defineUpdate<{ accepted: true; by: string; approve: boolean }, [ApprovalDecision]>('approve');

// Named timeout and retry profiles (see STYLE.md): torch stages heartbeat, store stages retry longer.
const torchStage = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '15 seconds', // a dead torch worker is noticed within 15 s
  retry: { maximumAttempts: 5, initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE_TYPES },
} as const;
const storeStage = {
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 10, initialInterval: '500 milliseconds', nonRetryableErrorTypes: NON_RETRYABLE_TYPES },
} as const;

/** What the stages before the store produce: the files of a version and their reports. */
interface Built {
  referencesDigest: string;
  files: ArtifactFiles;
  reports: Record<string, unknown>;
}

const fmt = (n: number | null) => (n === null ? 'not finite' : n.toPrecision(6));

/** Thrown inside the workflow to end the run with a result (rejected or failed) instead of an error. */
class RunEnded extends Error {
  constructor(readonly result: RunResult) {
    super(result.status);
  }
}

/** The pipeline: one run of one spec. Returns a RunResult whatever happens, except cancellation. */
export async function pipelineWorkflow(input: PipelineInput): Promise<RunResult> {
  const torch = proxyActivities<TorchActivities>({ ...torchStage, taskQueue: input.queues.torch });
  const control = proxyActivities<ControlActivities>({ ...storeStage, taskQueue: input.queues.control });
  const { spec } = input;
  const runId = input.runId ?? workflowInfo().workflowId;
  const progress: PipelineProgress = { status: 'running', stage: null, completed: [], epochs: spec.train.epochs, losses: [] };
  setHandler(progressQuery, () => progress);
  let decision: ApprovalDecision | undefined;
  setHandler(
    approveUpdate,
    (d) => {
      decision = d;
      return { accepted: true, by: d.by, approve: d.approve };
    },
    {
      validator: (d) => {
        if (decision) throw new Error(`run '${runId}' was already ${decision.approve ? 'approved' : 'rejected'} by ${decision.by}`);
        if (progress.status !== 'awaiting_approval') {
          throw new Error(`run '${runId}' is not waiting for approval (stage: ${progress.stage ?? 'between stages'})`);
        }
        if (!d || typeof d.by !== 'string' || !d.by.trim()) throw new Error('an approval needs --by NAME');
      },
    },
  );
  let training: RunResult['training'];

  const gates: GateResult[] = [];
  const timings: Record<string, number> = {};
  let parity: ParityRuntimeReport[] | undefined;
  const cached: string[] = [];
  const torchTimings: Record<string, number> = {};
  // Passed to every torch stage: the step cache is on unless the run asked for fresh work.
  const cache = input.noCache ? { noCache: true } : {};
  const result = (status: RunResult['status'], extra: Partial<RunResult> = {}): RunResult => ({
    status,
    runId,
    model: spec.name,
    version: null,
    digest: null,
    alias: null,
    gates,
    timings,
    trigger: input.trigger,
    commit: input.commit,
    ...(training ? { training } : {}),
    ...(parity ? { parity } : {}),
    ...(cached.length ? { cached: [...cached] } : {}),
    ...(Object.keys(torchTimings).length ? { torchTimings } : {}),
    ...extra,
  });

  // Runs one stage, timing it; an activity failure ends the run as `failed` at the given gate.
  async function stage<T>(name: string, gate: GateResult['gate'], fn: () => Promise<T>): Promise<T> {
    progress.stage = name;
    const started = Date.now();
    let reused = false;
    try {
      const out = await fn();
      reused = (out as { cached?: unknown } | null)?.cached === true;
      if (reused) cached.push(name);
      const torchMs = (out as { torchMs?: unknown } | null)?.torchMs;
      if (typeof torchMs === 'number') torchTimings[name] = torchMs;
      return out;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const cause = err instanceof ActivityFailure ? err.cause : err;
      const code = cause instanceof ApplicationFailure && cause.type ? cause.type : 'internal';
      gates.push({ gate, passed: false, code, message: `${name} failed: ${(cause as Error)?.message ?? String(err)}` });
      throw new RunEnded(result('failed'));
    } finally {
      timings[name] = Date.now() - started;
      progress.completed.push({ stage: name, ms: timings[name], ...(reused ? { cached: true } : {}) });
      progress.stage = null;
    }
  }
  const warned = (warnings: string[]) => (warnings.length ? { warnings } : {});
  const reject = (gate: GateResult): never => {
    gates.push(gate);
    throw new RunEnded(result('rejected'));
  };
  // Records a stage's verdict as its gate: rejects the run when it failed, else adds it and goes on.
  const judge = (gate: GateResult['gate'], v: { passed: boolean; code: string | null; message: string; warnings?: string[] }): void => {
    const entry: GateResult = { gate, passed: v.passed, code: v.code, message: v.message, ...warned(v.warnings ?? []) };
    if (!v.passed) reject(entry);
    gates.push(entry);
  };

  // Train, trace, verify, optimize and check fusion; every gate before anything is stored.
  async function buildFromModel(modelFileDigest: string, modelFilePath: string): Promise<Built> {
    const trained = await stage('train', 'training', () =>
      torch.train({
        ...cache,
        modelFileDigest,
        modelFilePath,
        params: spec.params,
        train: spec.train,
      }),
    );
    if (trained.status === 'rejected') reject({ gate: 'training', passed: false, code: trained.code, message: trained.message });
    if (trained.status !== 'ok') throw new Error('unreachable');
    progress.losses = trained.losses;
    training = { attempts: trained.attempt, resumedFromEpoch: trained.resumedFromEpoch };
    const finalLoss = trained.losses[trained.losses.length - 1];
    gates.push({
      gate: 'training',
      passed: true,
      code: null,
      message: `${trained.epochsCompleted} epochs on ${trained.rows} rows; final loss ${finalLoss?.toFixed(4)}`,
    });

    const traced = await stage('trace', 'trace', () =>
      torch.trace({
        ...cache,
        modelFileDigest,
        modelFilePath,
        params: spec.params,
        weightsDigest: trained.weightsDigest,
        mode: spec.trace.mode,
      }),
    );
    const verified = await stage('verify', 'trace', () =>
      torch.verify({
        ...cache,
        modelFileDigest,
        modelFilePath,
        params: spec.params,
        weightsDigest: trained.weightsDigest,
        tracedDigest: traced.tracedDigest,
        batchSizes: spec.trace.batch_sizes,
        atol: spec.parity.atol,
        rtol: spec.parity.rtol,
        captures: traced.captures,
        targetDevice: spec.trace.target_device,
      }),
    );
    judge('trace', verified);

    const optimized = await stage('optimize', 'optimize', () =>
      torch.optimize({
        ...cache,
        modelFileDigest,
        modelFilePath,
        tracedDigest: traced.tracedDigest,
        referencesDigest: verified.referencesDigest,
        atol: spec.parity.atol,
        rtol: spec.parity.rtol,
        method: spec.optimize.method,
      }),
    );
    judge('optimize', optimized);

    const fused = await stage('fusion', 'fusion', () =>
      torch.checkFusion({
        ...cache,
        modelFileDigest,
        modelFilePath,
        optimizedDigest: optimized.optimizedDigest,
        referencesDigest: verified.referencesDigest,
        atol: spec.parity.atol,
        rtol: spec.parity.rtol,
        require: spec.fusion.require,
      }),
    );
    judge('fusion', fused);

    return {
      referencesDigest: verified.referencesDigest,
      files: {
        artifact: optimized.optimizedDigest,
        traced: traced.tracedDigest,
        references: verified.referencesDigest,
        weights: trained.weightsDigest,
        modelFile: modelFileDigest,
        irBefore: optimized.irBeforeDigest,
        irAfter: optimized.irAfterDigest,
        fusedGraph: fused.graphDigest,
        ...(optimized.irForInferenceDigest ? { irForInference: optimized.irForInferenceDigest } : {}),
      },
      reports: {
        training: { losses: trained.losses, epochs: trained.epochsCompleted, rows: trained.rows },
        trace: {
          mode: traced.mode,
          nodes: traced.nodes,
          node_total: traced.nodeTotal,
          example_shapes: traced.exampleShapes,
          warnings: traced.warnings,
          captures: traced.captures,
          cases: verified.cases,
          train_mode_ops: verified.trainModeOps,
          devices: verified.devices,
          nondeterministic_nodes: verified.nondeterministicNodes,
          gate_warnings: verified.warnings,
        },
        optimize: {
          method: spec.optimize.method,
          nodes_before: optimized.nodesBefore,
          nodes_after: optimized.nodesAfter,
          node_total_before: optimized.nodeTotalBefore,
          node_total_after: optimized.nodeTotalAfter,
          nodes_for_inference: optimized.nodesForInference,
          max_abs_error: optimized.maxAbsError,
        },
        fusion: {
          require: spec.fusion.require,
          groups: fused.groups,
          unfused_pointwise: fused.unfusedPointwise,
          flags: fused.flags,
          torch_version: fused.torchVersion,
          max_abs_error: fused.maxAbsError,
        },
      },
    };
  }

  // A foreign artifact: verified against the references recorded where it was traced.
  async function verifyForeign(foreign: NonNullable<PipelineInput['foreign']>): Promise<Built> {
    const checked = await stage('verify', 'trace', () =>
      torch.verifyArtifact({
        ...cache,
        artifactDigest: foreign.artifactDigest,
        referencesDigest: foreign.referencesDigest,
        atol: spec.parity.atol,
        rtol: spec.parity.rtol,
        targetDevice: spec.trace.target_device,
      }),
    );
    judge('trace', checked);
    return {
      referencesDigest: checked.referencesDigest,
      files: { artifact: foreign.artifactDigest, references: checked.referencesDigest, sourceReferences: foreign.referencesDigest },
      reports: {
        trace: {
          mode: 'foreign',
          nodes: checked.nodes,
          node_total: checked.nodeTotal,
          cases: checked.cases,
          train_mode_ops: checked.trainModeOps,
          devices: checked.devices,
          nondeterministic_nodes: checked.nondeterministicNodes,
          gate_warnings: checked.warnings,
        },
      },
    };
  }

  try {
    let built: Built;
    if (input.foreign) built = await verifyForeign(input.foreign);
    else if (input.modelFileDigest && input.modelFilePath) built = await buildFromModel(input.modelFileDigest, input.modelFilePath);
    else
      throw ApplicationFailure.create({ type: 'bad_input', message: 'a run needs a model file or a foreign artifact', nonRetryable: true });

    const stored = await stage('store', 'promotion', () =>
      control.storeArtifact({
        model: spec.name,
        runId,
        specDigest: input.specDigest,
        spec,
        files: built.files,
        reports: built.reports,
      }),
    );

    const checked = await stage('parity', 'parity', () =>
      torch.checkParity({
        ...cache,
        artifactDigest: stored.artifactDigest,
        referencesDigest: built.referencesDigest,
        runtimes: spec.parity.runtimes,
        atol: spec.parity.atol,
        rtol: spec.parity.rtol,
      }),
    );
    parity = checked.runtimes;
    judge('parity', checked);
    // What a version record states, for a kept version and a promoted one alike.
    const versionFacts = (recorded: GateResult[]) => ({
      model: spec.name,
      artifactDigest: stored.artifactDigest,
      manifestDigest: stored.manifestDigest,
      runId,
      actor: input.actor,
      trigger: input.trigger,
      commit: input.commit,
      gates: recorded,
      parity: { runtimes: checked.runtimes, atol: spec.parity.atol, rtol: spec.parity.rtol },
      timings: { ...timings },
      ...(cached.length ? { cached: [...cached] } : {}),
    });

    if (spec.promote.compare && input.modelFileDigest) {
      const { metric, min_improvement } = spec.promote.compare;
      const current = await stage('compare', 'promotion', () => control.currentAlias({ model: spec.name, alias: spec.promote.alias }));
      if (current && current.digest !== stored.artifactDigest) {
        const evaluated = await stage('evaluate', 'promotion', () =>
          torch.evaluate({
            ...cache,
            modelFileDigest: input.modelFileDigest!,
            modelFilePath: input.modelFilePath ?? 'model.py',
            params: spec.params,
            loss: spec.train.loss,
            artifacts: [
              { name: 'candidate', digest: stored.artifactDigest },
              { name: 'production', digest: current.digest },
            ],
          }),
        );
        const candidate = evaluated.candidate;
        const production = evaluated.production;
        if (candidate === null || production === null || !(candidate < production - min_improvement)) {
          const kept = await stage('keep', 'promotion', () =>
            control.keepVersion({
              ...versionFacts(gates),
              reason: 'not_better_than_production',
            }),
          );
          reject({
            gate: 'promotion',
            passed: false,
            code: 'not_better_than_production',
            message: `candidate ${metric} ${fmt(candidate)} is not better than production (version ${current.version}) ${fmt(production)} by more than min_improvement ${min_improvement}; kept as version ${kept.version}, '${spec.promote.alias}' not moved`,
          });
        }
      }
    }

    let approval: { by: string; reason: string | null } | null = null;
    if (spec.promote.approval === 'required') {
      progress.status = 'awaiting_approval';
      progress.stage = 'approval';
      const started = Date.now();
      const timeout = spec.promote.approval_timeout;
      // condition() with an undefined timeout would not wait: wait without one when none is set.
      const answered = timeout
        ? await condition(() => decision !== undefined, timeout as `${number}${string}`)
        : (await condition(() => decision !== undefined), true);
      timings.approval = Date.now() - started;
      progress.status = 'running';
      progress.stage = null;
      if (!answered || !decision) {
        await control.recordAudit({
          action: 'approval_timeout',
          model: spec.name,
          runId,
          actor: 'ttd',
          reason: `no answer within ${spec.promote.approval_timeout}`,
        });
        reject({
          gate: 'promotion',
          passed: false,
          code: 'approval_timeout',
          message: `no approval within promote.approval_timeout ${spec.promote.approval_timeout}; nothing promoted`,
        });
      }
      const d = decision!;
      if (!d.approve) {
        await control.recordAudit({
          action: 'approval_rejected',
          model: spec.name,
          runId,
          actor: d.by,
          reason: d.reason ?? null,
          digest: stored.artifactDigest,
        });
        reject({
          gate: 'promotion',
          passed: false,
          code: 'approval_rejected',
          message: `rejected by ${d.by}${d.reason ? `: ${d.reason}` : ''}; nothing promoted`,
        });
      }
      approval = { by: d.by, reason: d.reason ?? null };
    }

    const promoted = await stage('promote', 'promotion', () =>
      control.promoteModel({
        ...versionFacts([...gates, { gate: 'promotion', passed: true, code: null, message: 'all gates passed' }]),
        alias: spec.promote.alias,
        approval,
      }),
    );
    gates.push({
      gate: 'promotion',
      passed: true,
      code: null,
      message: `version ${promoted.version} of '${spec.name}' is now '${spec.promote.alias}'${promoted.previousVersion ? ` (was version ${promoted.previousVersion})` : ''}; audit record ${promoted.auditSeq}`,
    });
    return result('promoted', { version: promoted.version, digest: stored.artifactDigest, alias: spec.promote.alias });
  } catch (err) {
    if (err instanceof RunEnded) return err.result;
    throw err;
  }
}
