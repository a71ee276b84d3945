// The torch ops' contract, defined once: each op's arguments and result (snake_case, the torch side's own words).
// The TypeScript side parses every result with these schemas; the torch side checks the same schemas, generated
// as JSON Schema into runtimes/python/ttd_torch/contract.json (infra/gen-contract.js, at build time).
import { z } from 'zod';
import { protocolJsonSchema } from './protocol';
import { GATE_CODES } from './gate-codes';

// Paths are absolute scratch paths on the worker; the torch side checks that they exist.
const path = z.string().min(1);
const count = z.number().int().min(0);
const nodeCounts = z.record(z.string(), count);
const params = z.record(z.string(), z.unknown());
const tolerance = z.number().min(0);
const error = z.number().min(0).nullable(); // null when not finite (JSON has no NaN) or not measured
const gateCode = z.enum(GATE_CODES);

/** A gate's verdict, as every gated op reports it. */
const verdict = { passed: z.boolean(), code: gateCode.nullable(), message: z.string() };

/** The losses the train op knows (runtimes/python/ttd_torch/train.py), for the spec, the ops and the stages. */
export const LOSSES = ['mse', 'cross_entropy'] as const;
export const Loss = z.enum(LOSSES);
export type Loss = z.infer<typeof Loss>;

/** The spec's train section as the train op takes it. */
export const TrainSection = z.strictObject({
  epochs: z.number().int().positive(),
  batch_size: z.number().int().positive(),
  optimizer: z.enum(['adam', 'sgd']),
  lr: z.number().positive(),
  loss: Loss,
  seed: z.number().int().min(0),
});

/** What turned a tensor into a Python value (runtimes/python/ttd_torch/captures.py CONSTRUCTS). */
export const CAPTURE_CONSTRUCTS = [
  'if',
  'while',
  'assert',
  'bool',
  'float',
  'int',
  'item',
  'tolist',
  'numpy',
  'data',
  'tensor',
  'index',
  'len',
  'iter',
  'unknown',
] as const;

/** A tensor turned into a Python bool or number in the user's own file while tracing. The optional fields come from
 * the value-dependence analysis (absent in records written before it): the construct, what the tensor was computed
 * from, and for numbers from the inputs whether changing the value changed the example's outputs. */
export const Capture = z.strictObject({
  kind: z.enum(['bool', 'number']),
  message: z.string(),
  filename: z.string(),
  lineno: z.number().int(),
  construct: z.enum(CAPTURE_CONSTRUCTS).optional(),
  source: z.enum(['input', 'parameter', 'constant', 'shape', 'unknown']).optional(),
  affects_outputs: z.boolean().nullable().optional(),
});
export type Capture = z.infer<typeof Capture>;

/** A TracerWarning torch raised from the user's own files while tracing. */
export const TracerWarning = z.strictObject({ message: z.string(), filename: z.string(), lineno: z.number().int() });
export type TracerWarning = z.infer<typeof TracerWarning>;

/** One reference case compared: eager (or recorded) outputs against the graph's. */
export const CaseReport = z.strictObject({
  name: z.string(),
  max_abs_error: error,
  max_rel_error: error,
  passed: z.boolean(),
  error: z.string().nullable(),
});
export type CaseReport = z.infer<typeof CaseReport>;

/** The first operator whose output leaves the tolerance, when a graph and eager disagree on numbers: where the
 * artifact's graph keeps it, and a few of both sides' values at its worst element (null where it was not found). */
export const Divergence = z.strictObject({
  /** The case whose inputs showed it. */
  case: z.string(),
  /** The graph's name for the operator's output: an FX node (`linear_1`), a TorchScript value (`input.5`), an ONNX node. */
  node: z.string(),
  /** Its operator: `aten.linear.default`, `aten::linear`, `Gemm`. */
  op: z.string(),
  /** The module it belongs to, as a path from the model (`layer1.0.bn1`); '' for the model itself; null when unknown. */
  module: z.string().nullable(),
  /** The user's FILE:LINE where the graph keeps it; null when the graph keeps none in the user's files. */
  location: z.string().nullable(),
  max_abs_error: error,
  /** Up to 8 values around the worst element, flattened: eager's, and the artifact's (null: not finite). */
  eager: z.array(z.number().nullable()).max(8),
  artifact: z.array(z.number().nullable()).max(8),
  /** Operators compared before it that agreed. */
  compared: count,
});
export type Divergence = z.infer<typeof Divergence>;

/** A fusion group found in the fused graph and the ops inside it. */
export const FusionGroup = z.strictObject({ kind: z.string(), ops: z.array(z.string()) });
export type FusionGroup = z.infer<typeof FusionGroup>;

/** An input dimension that an exported program keeps dynamic, and the range it serves (max null: unbounded). */
export const DynamicDim = z.strictObject({ input: count, dim: count, min: count, max: count.nullable() });
export type DynamicDim = z.infer<typeof DynamicDim>;

/** A kernel AOTInductor generated (`cpp_fused_relu_addmm_0`) and the ops its name says it fused. */
export const Kernel = z.strictObject({ name: z.string(), ops: z.array(z.string()) });
export type Kernel = z.infer<typeof Kernel>;

const TraceMode = z.enum(['trace', 'script']);
export type TraceMode = z.infer<typeof TraceMode>;
const OptimizeMethod = z.enum(['freeze', 'optimize_for_inference']);
export type OptimizeMethod = z.infer<typeof OptimizeMethod>;
const FusionRequire = z.enum(['none', 'any', 'pointwise-chains']);
export type FusionRequire = z.infer<typeof FusionRequire>;
/** When fused runs are checked: auto (only where the build really fuses), always (also through NNC's interpreter), never. */
export const FUSED_RUNS = ['auto', 'always', 'never'] as const;
const FusedRuns = z.enum(FUSED_RUNS);
export type FusedRuns = z.infer<typeof FusedRuns>;
/** A torch build's own fuser configuration (read before any flag changes); null where the build lacks the flag. */
export const FusionBuild = z.record(z.string(), z.boolean().nullable());
export type FusionBuild = z.infer<typeof FusionBuild>;

/** The arguments of the ops that torch.export the trained model (export, onnx). */
const exportArgs = z.strictObject({
  model_path: path,
  params,
  weights_path: path,
  // trace.batch_sizes: with sizes and a batched example the batch dimension is exported dynamic; [] exports the
  // example's shapes only.
  batch_sizes: z.array(z.number().int().positive()),
  atol: tolerance,
  rtol: tolerance,
  out_dir: path,
});

/** Each torch op: its arguments, its result and (for long ops) its progress events. */
export const TorchOps = {
  hello: {
    args: z.strictObject({}),
    result: z.strictObject({
      protocol: z.number().int(),
      torch_version: z.string(),
      python_version: z.string(),
      /** Versions of the exporters' packages installed beside torch (onnx, onnxscript, onnxruntime); absent from older servers. */
      packages: z.record(z.string(), z.string()).optional(),
    }),
  },
  train: {
    args: z.strictObject({ model_path: path, params, train: TrainSection, out_dir: path, resume_path: path.optional() }),
    result: z.discriminatedUnion('status', [
      z.strictObject({
        status: z.literal('ok'),
        weights_path: path,
        losses: z.array(z.number()),
        epochs_completed: count,
        rows: count,
        resumed_from_epoch: count,
        checkpoint_path: path.nullable(),
        /** Every package installed in the torch environment that trained it, by name (the provenance's environment);
         * absent from results cached before it was reported. */
        packages: z.record(z.string(), z.string()).optional(),
      }),
      z.strictObject({ status: z.literal('rejected'), code: gateCode, message: z.string(), epoch: count, step: count }),
    ]),
  },
  trace: {
    args: z.strictObject({ model_path: path, params, weights_path: path, mode: TraceMode.default('trace'), out_dir: path }),
    result: z.strictObject({
      traced_path: path,
      example_shapes: z.array(z.array(count)),
      nodes: nodeCounts,
      node_total: count,
      warnings: z.array(z.strictObject({ category: z.string(), message: z.string(), filename: z.string(), lineno: z.number().int() })),
      captures: z.array(Capture),
      mode: TraceMode,
      // Absent in records written before it existed.
      tracer_warnings: z.array(TracerWarning).optional(),
    }),
  },
  verify: {
    args: z.strictObject({
      model_path: path,
      params,
      weights_path: path,
      traced_path: path,
      // Sizes of dim 0 the graph must serve; [] when the example has no batch dimension (only its own shape).
      batch_sizes: z.array(z.number().int().positive()),
      atol: tolerance,
      rtol: tolerance,
      captures: z.array(Capture).default([]),
      // The spec's trace.accept_captures: FILE:LINE of captures known to be safe.
      accept_captures: z.array(z.string()).default([]),
      tracer_warnings: z.array(TracerWarning).default([]),
      target_device: z.string().default('cpu'),
      out_dir: path,
    }),
    result: z.strictObject({
      ...verdict,
      cases: z.array(CaseReport),
      train_mode_ops: z.array(z.string()),
      references_path: path,
      warnings: z.array(z.string()),
      devices: z.array(z.string()),
      nondeterministic_nodes: z.array(z.string()),
      example_shape_checks: z.strictObject({ chunks: count, failed: count }),
      // The trace's TracerWarnings from the user's files; absent in records written before it existed.
      tracer_warnings: z.array(TracerWarning).optional(),
      /** The reference cases run once eagerly, in ms: what later stages' and runtimes' time limits scale with. */
      eager_ms: z.number().min(0).optional(),
      /** The first operator out of tolerance, when the verdict failed on numbers and it was found. */
      divergence: Divergence.nullable().optional(),
    }),
  },
  optimize: {
    args: z.strictObject({
      model_path: path.optional(),
      traced_path: path,
      references_path: path,
      atol: tolerance,
      rtol: tolerance,
      method: OptimizeMethod.default('freeze'),
      out_dir: path,
    }),
    result: z.strictObject({
      ...verdict,
      optimized_path: path,
      ir_before_path: path,
      ir_after_path: path,
      ir_for_inference_path: path.nullable(),
      method: OptimizeMethod,
      nodes_before: nodeCounts,
      nodes_after: nodeCounts,
      node_total_before: count,
      node_total_after: count,
      // With optimize_for_inference: what a runtime gets after applying it on load (never saved).
      nodes_for_inference: nodeCounts.nullable(),
      max_abs_error: error,
      max_abs_error_for_inference: error,
    }),
  },
  fusion: {
    args: z.strictObject({
      model_path: path.optional(),
      optimized_path: path,
      references_path: path,
      atol: tolerance,
      rtol: tolerance,
      require: FusionRequire.default('none'),
      fused_runs: FusedRuns.default('auto'),
      target_device: z.string().default('cpu'),
      out_dir: path,
    }),
    result: z.strictObject({
      ...verdict,
      require: FusionRequire,
      groups: z.array(FusionGroup),
      unfused_pointwise: z.array(z.string()),
      max_abs_error: error,
      flags: z.record(z.string(), z.boolean().nullable()),
      torch_version: z.string(),
      graph_path: path,
      // Absent in results recorded before builds were told apart (every build was then forced to fuse).
      build: FusionBuild.optional(),
      /** This build really fuses on `device` (CUDA, or a CPU build with LLVM). */
      fuses: z.boolean().optional(),
      /** Fused outputs were compared with unfused ones (where the build fuses, or fusion.fused_runs always). */
      compared: z.boolean().optional(),
      device: z.string().optional(),
    }),
  },
  verify_artifact: {
    args: z.strictObject({
      artifact_path: path,
      references_path: path,
      atol: tolerance,
      rtol: tolerance,
      target_device: z.string().default('cpu'),
      out_dir: path,
    }),
    result: z.strictObject({
      ...verdict,
      cases: z.array(CaseReport),
      train_mode_ops: z.array(z.string()),
      warnings: z.array(z.string()),
      devices: z.array(z.string()),
      nondeterministic_nodes: z.array(z.string()),
      nodes: nodeCounts,
      node_total: count,
      references_path: path.nullable(),
      case_count: count,
      // Every case's report (JSON), when any case ran: `cases` carries at most 32 of them, failures first.
      cases_path: path.nullable(),
    }),
  },
  export: {
    args: exportArgs,
    result: z.strictObject({
      ...verdict,
      // null when torch.export refused the model (the verdict says where and why); nothing was compared then.
      program_path: path.nullable(),
      references_path: path.nullable(),
      cases: z.array(CaseReport),
      example_shapes: z.array(z.array(count)),
      dynamic_dims: z.array(DynamicDim),
      nodes: nodeCounts,
      node_total: count,
      warnings: z.array(z.string()),
      example_shape_checks: z.strictObject({ chunks: count, failed: count }),
      torch_version: z.string(),
      /** The reference cases run once eagerly, in ms (absent when export refused the model). */
      eager_ms: z.number().min(0).optional(),
      /** The first operator out of tolerance, when the verdict failed on numbers and it was found. */
      divergence: Divergence.nullable().optional(),
    }),
  },
  compile: {
    args: z.strictObject({
      model_path: path.optional(),
      program_path: path,
      references_path: path,
      atol: tolerance,
      rtol: tolerance,
      // Inductor's cache (TORCHINDUCTOR_CACHE_DIR for this call): an existing directory the worker keeps between runs.
      cache_dir: path,
      out_dir: path,
    }),
    result: z.strictObject({
      ...verdict,
      // null when compilation failed (code compile_failed).
      package_path: path.nullable(),
      kernels: z.array(Kernel),
      kernel_count: count,
      compile_ms: z.number().min(0),
      cache_hit: z.boolean(),
      cache_counters: z.record(z.string(), count),
      cases: z.array(CaseReport),
      max_abs_error: error,
      package_bytes: count,
      warnings: z.array(z.string()),
      torch_version: z.string(),
      /** The first operator out of tolerance, when the verdict failed on numbers and it was found. */
      divergence: Divergence.nullable().optional(),
    }),
  },
  onnx: {
    // The model is captured as export captures it, then translated.
    args: exportArgs,
    result: z.strictObject({
      ...verdict,
      // null when no ONNX model was made (export refused the model, or the exporter or the checker failed).
      onnx_path: path.nullable(),
      references_path: path.nullable(),
      cases: z.array(CaseReport),
      example_shapes: z.array(z.array(count)),
      /** The default domain's opset of the ONNX model. */
      opset: count.nullable(),
      /** ONNX nodes by op type. */
      nodes: nodeCounts,
      node_total: count,
      warnings: z.array(z.string()),
      torch_version: z.string(),
      onnx_version: z.string().nullable(),
      onnxruntime_version: z.string().nullable(),
      /** torch.onnx's translation, saving and the ONNX checker, in ms. */
      export_ms: z.number().min(0),
      eager_ms: z.number().min(0).optional(),
      example_shape_checks: z.strictObject({ chunks: count, failed: count }).optional(),
      /** The first ONNX node out of tolerance, when the verdict failed on numbers and it was found. */
      divergence: Divergence.nullable().optional(),
    }),
  },
  evaluate: {
    args: z.strictObject({
      model_path: path,
      params,
      loss: Loss.default('mse'),
      // trace.batch_sizes: with [], the archives are run only at the example's shape (row by row when unbatched).
      batch_sizes: z.array(z.number().int().positive()).optional(),
      artifacts: z.array(z.strictObject({ name: z.string().min(1), path })).min(1),
    }),
    result: z.strictObject({
      results: z.array(z.strictObject({ name: z.string(), validation_loss: z.number().nullable(), message: z.string().nullable() })),
      rows: count,
    }),
  },
} as const;

/** The name of a torch op. */
export type TorchOpName = keyof typeof TorchOps;
/** An op's arguments, as sent. */
export type OpArgs<K extends TorchOpName> = z.input<(typeof TorchOps)[K]['args']>;
/** An op's result, as parsed. */
export type OpResult<K extends TorchOpName> = z.infer<(typeof TorchOps)[K]['result']>;

/** The train op's progress event: one per epoch, naming the epoch's checkpoint file. */
export const TrainEvent = z.object({
  epoch: count,
  epochs: count,
  loss: z.number().nullable(),
  checkpoint_path: path.optional(),
});

/** The whole contract as JSON Schema, for the torch side (written to runtimes/python/ttd_torch/contract.json). */
export function contractJsonSchema(): {
  format: string;
  protocol: ReturnType<typeof protocolJsonSchema>;
  ops: Record<string, { args: unknown; result: unknown }>;
} {
  const ops: Record<string, { args: unknown; result: unknown }> = {};
  for (const [name, op] of Object.entries(TorchOps)) {
    // `input` for args (optional fields stay optional), `output` for results (what the torch side must send).
    ops[name] = {
      args: z.toJSONSchema(op.args, { io: 'input', unrepresentable: 'throw' }),
      result: z.toJSONSchema(op.result, { io: 'output', unrepresentable: 'throw' }),
    };
  }
  return { format: 'ttd-contract/1', protocol: protocolJsonSchema(), ops };
}

// A result object without its scratch paths, with the digests of the files its stage stored.
function withoutPaths(result: z.ZodObject) {
  const paths = Object.keys(result.shape).filter((k) => k.endsWith('_path'));
  return result
    .omit(Object.fromEntries(paths.map((k) => [k, true])) as Record<string, true> & Record<number, never>)
    .extend({ files: z.record(z.string(), z.string()) })
    .loose();
}

/** The schema of what a torch stage returns and the manifest stores (activities/torch-stage.ts: StageOutput): the op's
 * result without scratch paths, plus `files`, the digests of what it stored by role. */
export function stageOutputSchema<K extends TorchOpName>(op: K): z.ZodType<StageOutputOf<K>> {
  const result = TorchOps[op].result as z.ZodObject | z.ZodDiscriminatedUnion<z.ZodObject[]>;
  const schema = result instanceof z.ZodObject ? withoutPaths(result) : z.union(result.options.map(withoutPaths));
  return schema as unknown as z.ZodType<StageOutputOf<K>>;
}

/** Result fields naming a file (`*_path`). */
export type PathKeys<T> = T extends unknown ? Extract<keyof T, `${string}_path`> : never;
type WithoutPaths<T> = T extends unknown ? Omit<T, PathKeys<T>> : never;
type Role<S> = S extends `${infer R}_path` ? R : never;
// The stored files of one result: a role for each stored path, optional where the path may be null (nothing stored).
type FilesOf<T, S> = { [P in S & keyof T as null extends T[P] ? never : Role<P>]: string } & {
  [P in S & keyof T as null extends T[P] ? Role<P> : never]?: string;
};
/** An op's result as a stage returns it: without scratch paths, with the stored files' digests by role. */
export type StageOutputOf<K extends TorchOpName> = WithoutPaths<OpResult<K>> & { files: Record<string, string> };
/** What a torch stage returns, and what the manifest stores: the op's parsed result without its scratch paths, and
 * the digests of the files it stored, by role (`traced_path` → `files.traced`). A null path stores nothing. */
export type StageOutput<K extends TorchOpName, S extends string = never> =
  OpResult<K> extends infer T ? (T extends unknown ? Omit<T, PathKeys<T>> & { files: FilesOf<T, S> } : never) : never;
