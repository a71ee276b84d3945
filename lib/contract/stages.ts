// The torch stages, declared once on the TypeScript side (the torch side knows only the ops of lib/contract/ops.ts):
// how the workflow's input to each torch stage becomes its op's arguments, and which result files are kept.
// The torch worker registers one activity per entry of TorchStages (activities/index.ts), named by its key.
import type { LimitBasis } from '../limits/time-limits';
import type {
  Capture,
  FusedRuns,
  FusionRequire,
  Loss,
  OpArgs,
  OpResult,
  OptimizeMethod,
  PathKeys,
  StageOutput,
  TorchOpName,
  TracerWarning,
  TraceMode,
} from './ops';

/** What every stage input that imports the model file carries. */
export interface ModelFileInput {
  modelFileDigest: string;
  /** The model file as the user named it, for messages only. */
  modelFilePath: string;
}

/** Directories of the torch worker that a stage may use beyond its scratch directory (created before the call). */
export interface WorkerDirs {
  /** Inductor's cache, kept between runs and shared by the host's workers, per torch environment. */
  inductorCache: string;
}

/** A torch stage, declared: its op, the blobs it fetches, the arguments of its op, the result files it stores. */
export interface TorchStage<K extends TorchOpName, I, S extends PathKeys<OpResult<K>> = never> {
  op: K;
  /** Blobs to fetch into the scratch directory, by file name; the model file comes from the input when it has one. */
  fetch?: (input: I) => Record<string, string>;
  /** The op's arguments from the scratch path of each fetched file (`files.model`: the model file) and the directory. */
  args: (input: I, files: Record<string, string>, dir: string, worker: WorkerDirs) => OpArgs<K>;
  /** Result fields naming files that go into the store. */
  store?: readonly S[];
}
const tolerances = (i: { atol: number; rtol: number }) => ({ atol: i.atol, rtol: i.rtol });
const declare = <K extends TorchOpName, I, S extends PathKeys<OpResult<K>> = never>(stage: TorchStage<K, I, S>) => stage;

/** Input of the trace stage. */
export interface TraceInput extends ModelFileInput {
  params: Record<string, unknown>;
  weightsDigest: string;
  mode: TraceMode;
}

/** Input of the verify stage. */
export interface VerifyInput extends ModelFileInput {
  params: Record<string, unknown>;
  weightsDigest: string;
  tracedDigest: string;
  batchSizes: number[];
  atol: number;
  rtol: number;
  /** What the trace stage reported, with the user's path; the torch side matches them against its copy. */
  captures: Capture[];
  /** The spec's trace.accept_captures (FILE:LINE); absent in inputs of runs started before it existed. */
  acceptCaptures?: string[];
  /** The trace stage's TracerWarnings from the user's files, with the user's path. */
  tracerWarnings?: TracerWarning[];
  targetDevice: string;
}

/** Input of the optimize stage (the model file is imported first so that custom operators it registers load). */
export interface OptimizeInput extends ModelFileInput {
  tracedDigest: string;
  referencesDigest: string;
  atol: number;
  rtol: number;
  method: OptimizeMethod;
  /** What its time limit scales with (lib/limits/time-limits.ts); not part of the step cache's key. */
  limits?: LimitBasis;
}

/** Input of the fusion stage. */
export interface FusionInput extends ModelFileInput {
  optimizedDigest: string;
  referencesDigest: string;
  atol: number;
  rtol: number;
  require: FusionRequire;
  /** The spec's fusion.fused_runs; absent in inputs of runs started before it existed (then auto). */
  fusedRuns?: FusedRuns;
  /** Where the artifact is served (trace.target_device): a CUDA target fuses where this worker has CUDA. */
  targetDevice?: string;
  /** What its time limit scales with (lib/limits/time-limits.ts); not part of the step cache's key. */
  limits?: LimitBasis;
}

/** Input of the foreign verify stage: an archive traced elsewhere and the references recorded there. */
export interface VerifyArtifactInput {
  artifactDigest: string;
  referencesDigest: string;
  atol: number;
  rtol: number;
  targetDevice: string;
}

/** Input of the evaluate stage: archives by name and digest, and the model file that has the data. */
export interface EvaluateInput extends ModelFileInput {
  params: Record<string, unknown>;
  loss: Loss;
  /** The spec's trace.batch_sizes: [] means the archives serve only the example's shape. */
  batchSizes?: number[];
  artifacts: { name: string; digest: string }[];
}

/** Input of the export stage (torch.export of the trained model, eval mode, the trace stage's example). */
export interface ExportInput extends ModelFileInput {
  params: Record<string, unknown>;
  weightsDigest: string;
  /** The spec's trace.batch_sizes: the batch dimension is exported dynamic over them; [] keeps the example's shape. */
  batchSizes: number[];
  atol: number;
  rtol: number;
}

/** Input of the compile stage (AOTInductor), on the export stage's program and references. */
export interface CompileInput extends ModelFileInput {
  programDigest: string;
  referencesDigest: string;
  atol: number;
  rtol: number;
}

/** Input of the onnx stage (torch.export of the trained model, translated to ONNX, checked in ONNX Runtime): export's. */
export type OnnxInput = ExportInput;

// The arguments of a stage that torch.exports the trained model (export, onnx), from its input and fetched weights.
const exportArgs = (i: ExportInput, f: Record<string, string>, dir: string) => ({
  model_path: f.model,
  params: i.params,
  weights_path: f['weights.pt'],
  batch_sizes: i.batchSizes,
  ...tolerances(i),
  out_dir: dir,
});

/** Every declared torch stage, by activity name (the train stage has its own activity: it checkpoints as it goes). */
export const TorchStages = {
  trace: declare({
    op: 'trace',
    fetch: (i: TraceInput) => ({ 'weights.pt': i.weightsDigest }),
    args: (i, f, dir) => ({ model_path: f.model, params: i.params, weights_path: f['weights.pt'], mode: i.mode, out_dir: dir }),
    store: ['traced_path'],
  }),
  verify: declare({
    op: 'verify',
    fetch: (i: VerifyInput) => ({ 'weights.pt': i.weightsDigest, 'traced.pt': i.tracedDigest }),
    args: (i, f, dir) => ({
      model_path: f.model,
      params: i.params,
      weights_path: f['weights.pt'],
      traced_path: f['traced.pt'],
      batch_sizes: i.batchSizes,
      ...tolerances(i),
      captures: i.captures.map((c) => ({ ...c, filename: c.filename === i.modelFilePath ? f.model : c.filename })),
      accept_captures: i.acceptCaptures ?? [],
      tracer_warnings: (i.tracerWarnings ?? []).map((w) => ({ ...w, filename: w.filename === i.modelFilePath ? f.model : w.filename })),
      target_device: i.targetDevice,
      out_dir: dir,
    }),
    store: ['references_path'],
  }),
  optimize: declare({
    op: 'optimize',
    fetch: (i: OptimizeInput) => ({ 'traced.pt': i.tracedDigest, 'references.safetensors': i.referencesDigest }),
    args: (i, f, dir) => ({
      model_path: f.model,
      traced_path: f['traced.pt'],
      references_path: f['references.safetensors'],
      ...tolerances(i),
      method: i.method,
      out_dir: dir,
    }),
    store: ['optimized_path', 'ir_before_path', 'ir_after_path', 'ir_for_inference_path'],
  }),
  checkFusion: declare({
    op: 'fusion',
    fetch: (i: FusionInput) => ({ 'optimized.pt': i.optimizedDigest, 'references.safetensors': i.referencesDigest }),
    args: (i, f, dir) => ({
      model_path: f.model,
      optimized_path: f['optimized.pt'],
      references_path: f['references.safetensors'],
      ...tolerances(i),
      require: i.require,
      ...(i.fusedRuns ? { fused_runs: i.fusedRuns } : {}),
      ...(i.targetDevice ? { target_device: i.targetDevice } : {}),
      out_dir: dir,
    }),
    store: ['graph_path'],
  }),
  verifyArtifact: declare({
    op: 'verify_artifact',
    fetch: (i: VerifyArtifactInput) => ({ 'artifact.pt': i.artifactDigest, 'source-references.safetensors': i.referencesDigest }),
    args: (i, f, dir) => ({
      artifact_path: f['artifact.pt'],
      references_path: f['source-references.safetensors'],
      ...tolerances(i),
      target_device: i.targetDevice,
      out_dir: dir,
    }),
    // Absent when the recorded references could not be read (the verdict says why).
    store: ['references_path', 'cases_path'],
  }),
  exportProgram: declare({
    op: 'export',
    fetch: (i: ExportInput) => ({ 'weights.pt': i.weightsDigest }),
    args: exportArgs,
    // Both null when export refused the model.
    store: ['program_path', 'references_path'],
  }),
  compilePackage: declare({
    op: 'compile',
    fetch: (i: CompileInput) => ({ 'program.pt2': i.programDigest, 'references.safetensors': i.referencesDigest }),
    args: (i, f, dir, worker) => ({
      model_path: f.model,
      program_path: f['program.pt2'],
      references_path: f['references.safetensors'],
      ...tolerances(i),
      cache_dir: worker.inductorCache,
      out_dir: dir,
    }),
    store: ['package_path'],
  }),
  exportOnnx: declare({
    op: 'onnx',
    fetch: (i: OnnxInput) => ({ 'weights.pt': i.weightsDigest }),
    args: exportArgs,
    // Both null when no ONNX model was made.
    store: ['onnx_path', 'references_path'],
  }),
  evaluate: declare({
    op: 'evaluate',
    fetch: (i: EvaluateInput) => Object.fromEntries(i.artifacts.map((a) => [`${a.name}.pt`, a.digest])),
    args: (i, f) => ({
      model_path: f.model,
      params: i.params,
      loss: i.loss,
      ...(i.batchSizes ? { batch_sizes: i.batchSizes } : {}),
      artifacts: i.artifacts.map((a) => ({ name: a.name, path: f[`${a.name}.pt`] })),
    }),
  }),
};
export type TorchStages = typeof TorchStages;

/** The input a declared stage takes. */
export type StageInputOf<A extends keyof TorchStages> = Parameters<TorchStages[A]['args']>[0];
type StoredOf<A extends keyof TorchStages> = TorchStages[A] extends { store?: readonly (infer S extends string)[] } ? S : never;
/** The output a declared stage returns. */
export type DeclaredOutput<A extends keyof TorchStages> = StageOutput<TorchStages[A]['op'], StoredOf<A>>;

/** The activity types of the torch queue (the keys of createTorchActivities in activities/index.ts): `ttd status` tells
 * by them which queue a run's pending activity waits on. */
export const TORCH_ACTIVITY_TYPES: readonly string[] = ['buildEnvironment', 'train', ...Object.keys(TorchStages), 'checkParity'];
