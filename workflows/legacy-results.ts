// Torch stage results as workers before the stage contract returned them (camelCase, digests as `*Digest`, no
// envelope). A run started before an upgrade has such results in its history: replaying it, and finishing it on
// upgraded workers, needs them read as today's StageRun. Deterministic and pure; remove once no such run can be open.
import type { StageRun } from '../activities';
import type { Spec } from '../lib/spec/spec';

type Legacy = Record<string, unknown>;

/** Whether a torch activity's result is today's envelope. */
function isStageRun(raw: unknown): raw is StageRun<unknown> {
  return !!raw && typeof raw === 'object' && 'output' in raw && 'cached' in raw;
}

const files = (entries: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(entries).filter((e): e is [string, string] => typeof e[1] === 'string'));

const verdict = (r: Legacy) => ({ passed: r.passed, code: r.code ?? null, message: r.message });
const checks = (r: Legacy) => ({
  cases: r.cases ?? [],
  train_mode_ops: r.trainModeOps ?? [],
  warnings: r.warnings ?? [],
  devices: r.devices ?? [],
  nondeterministic_nodes: r.nondeterministicNodes ?? [],
});

// One converter per stage name, from the old result to today's output.
const CONVERT: Record<string, (r: Legacy, spec: Spec) => Legacy> = {
  train: (r) =>
    r.status === 'ok'
      ? {
          status: 'ok',
          files: files({ weights: r.weightsDigest }),
          losses: r.losses,
          epochs_completed: r.epochsCompleted,
          rows: r.rows,
          resumed_from_epoch: r.resumedFromEpoch ?? 0,
          checkpoint_path: null,
          attempt: r.attempt,
        }
      : { status: 'rejected', code: r.code, message: r.message, epoch: r.epoch, step: r.step, files: {} },
  trace: (r) => ({
    files: files({ traced: r.tracedDigest }),
    example_shapes: r.exampleShapes,
    nodes: r.nodes,
    node_total: r.nodeTotal,
    warnings: r.warnings,
    captures: r.captures,
    mode: r.mode,
  }),
  verify: (r) =>
    'nodeTotal' in r
      ? {
          ...verdict(r),
          ...checks(r),
          nodes: r.nodes,
          node_total: r.nodeTotal,
          case_count: (r.cases as unknown[]).length,
          files: files({ references: r.referencesDigest }),
        }
      : { ...verdict(r), ...checks(r), example_shape_checks: { chunks: 0, failed: 0 }, files: files({ references: r.referencesDigest }) },
  optimize: (r, spec) => ({
    ...verdict(r),
    files: files({
      optimized: r.optimizedDigest,
      ir_before: r.irBeforeDigest,
      ir_after: r.irAfterDigest,
      ir_for_inference: r.irForInferenceDigest,
    }),
    method: spec.optimize.method,
    nodes_before: r.nodesBefore,
    nodes_after: r.nodesAfter,
    node_total_before: r.nodeTotalBefore,
    node_total_after: r.nodeTotalAfter,
    nodes_for_inference: r.nodesForInference ?? null,
    max_abs_error: r.maxAbsError ?? null,
    max_abs_error_for_inference: null,
  }),
  fusion: (r, spec) => ({
    ...verdict(r),
    files: files({ graph: r.graphDigest }),
    require: spec.fusion.require,
    groups: r.groups,
    unfused_pointwise: r.unfusedPointwise,
    flags: r.flags,
    torch_version: r.torchVersion,
    max_abs_error: r.maxAbsError ?? null,
  }),
  evaluate: (r) => ({
    results: Object.entries(r)
      .filter(([name]) => name !== 'cached' && name !== 'torchMs')
      .map(([name, loss]) => ({ name, validation_loss: loss, message: null })),
    rows: 0,
  }),
  parity: (r) => ({ ...verdict(r), runtimes: r.runtimes }),
};

/** A torch activity's result as today's StageRun, whether it is one or was returned before the stage contract. */
export function asStageRun<T>(stage: string, raw: StageRun<T> | Legacy, spec: Spec): StageRun<T> {
  if (isStageRun(raw)) return raw;
  const convert = CONVERT[stage];
  if (!convert) throw new Error(`no reader for an earlier result of stage '${stage}'`);
  return { output: convert(raw, spec) as T, cached: raw.cached === true, torchMs: typeof raw.torchMs === 'number' ? raw.torchMs : null };
}
