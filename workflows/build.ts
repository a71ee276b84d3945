// Building a version: train, then per format, trace → verify → optimize → fusion (TorchScript), export → compile
// (AOTInductor) and onnx (ONNX), for a model file; or verify for a foreign archive. Every gate here runs before anything is registered.
import { Gate } from '../lib/contract/gate-codes';
import type { ArtifactFiles, StageOutputs } from '../lib/registry/records';
import type { Format } from '../lib/spec/spec';
import type { LimitBasis } from '../lib/limits/time-limits';
import type { PipelineInput } from './definitions';
import type { Run } from './run-state';

/** One format's artifact and the references its parity is checked against. */
export interface FormatArtifact {
  digest: string;
  references: string;
}

/** The `limits` of a stage input: the eager time it scales with and the spec's scale (nothing when unmeasured). */
export function limitBasis(run: Run, eagerMs: number | undefined): { limits?: LimitBasis } {
  const scale = run.spec.time_limits?.scale;
  const scaled = scale !== undefined && scale !== 1 ? { scale } : {};
  if (eagerMs === undefined) return Object.keys(scaled).length ? { limits: scaled } : {};
  return { limits: { eagerMs, ...scaled } };
}

/** What the stages before the store produce: the files of a version, each format's artifact and each stage's output. */
export interface Built {
  files: ArtifactFiles;
  stages: StageOutputs;
  /** In the spec's order; the first is the version's primary artifact (`files.artifact`). */
  formats: Partial<Record<Format, FormatArtifact>>;
  /** Per format, its reference cases run once eagerly (ms): what its runtimes' time limits scale with (never stored:
   * it differs from run to run). Absent where unmeasured. */
  eagerMs?: Partial<Record<Format, number>>;
}

type ModelFile = { modelFileDigest: string; modelFilePath: string };
// A format's part of a version: its artifact, the files and stage outputs it adds.
type Part = { artifact: FormatArtifact; files: Record<string, string>; stages: StageOutputs; eagerMs?: number };

/** Trains, then builds every format the spec asks for; rejects the run at the first gate that fails. */
export async function buildFromModel(run: Run, model: ModelFile): Promise<Built> {
  const { spec, torch, torchOptions } = run;
  const trained = await run.torchStage('train', Gate.training, () =>
    torch.train({ ...torchOptions, ...model, params: spec.params, train: spec.train }),
  );
  if (trained.status === 'rejected') run.reject({ gate: Gate.training, passed: false, code: trained.code, message: trained.message });
  if (trained.status !== 'ok') throw new Error('unreachable');
  run.progress.losses = trained.losses;
  run.training = { attempts: trained.attempt, resumedFromEpoch: trained.resumed_from_epoch };
  run.pass(Gate.training, `${trained.epochs_completed} epochs on ${trained.rows} rows; final loss ${trained.losses.at(-1)?.toFixed(4)}`);
  const weightsDigest = trained.files.weights;

  // Runs started before formats existed have none: TorchScript, as then.
  const formats: Format[] = spec.formats ?? ['torchscript'];
  const parts: [Format, Part][] = [];
  for (const format of formats) {
    const build = format === 'torchscript' ? torchScript : format === 'aoti' ? aoti : onnx;
    parts.push([format, await build(run, model, weightsDigest)]);
  }
  const [, primary] = parts[0];
  return {
    files: {
      ...Object.assign({}, ...parts.map(([, p]) => p.files)),
      artifact: primary.artifact.digest,
      references: primary.artifact.references,
      weights: weightsDigest,
      modelFile: model.modelFileDigest,
    },
    stages: Object.assign({ train: trained }, ...parts.map(([, p]) => p.stages)),
    formats: Object.fromEntries(parts.map(([format, p]) => [format, p.artifact])),
    eagerMs: Object.fromEntries(parts.filter(([, p]) => p.eagerMs !== undefined).map(([format, p]) => [format, p.eagerMs])),
  };
}

// TorchScript: trace, verify against eager, freeze, check fusion.
async function torchScript(run: Run, model: ModelFile, weightsDigest: string): Promise<Part> {
  const { spec, torch, torchOptions } = run;
  const { atol, rtol } = spec.parity;
  const traced = await run.torchStage('trace', Gate.trace, () =>
    torch.trace({ ...torchOptions, ...model, params: spec.params, weightsDigest, mode: spec.trace.mode }),
  );
  const verified = await run.torchStage('verify', Gate.trace, () =>
    torch.verify({
      ...torchOptions,
      ...model,
      params: spec.params,
      weightsDigest,
      tracedDigest: traced.files.traced,
      batchSizes: spec.trace.batch_sizes,
      atol,
      rtol,
      captures: traced.captures,
      acceptCaptures: spec.trace.accept_captures ?? [],
      tracerWarnings: traced.tracer_warnings ?? [],
      targetDevice: spec.trace.target_device,
    }),
  );
  run.judge(Gate.trace, verified);
  const referencesDigest = verified.files.references;
  const limits = limitBasis(run, verified.eager_ms);

  const optimized = await run.torchStage('optimize', Gate.optimize, () =>
    torch.optimize({
      ...torchOptions,
      ...model,
      tracedDigest: traced.files.traced,
      referencesDigest,
      atol,
      rtol,
      method: spec.optimize.method,
      ...limits,
    }),
  );
  run.judge(Gate.optimize, optimized);

  const fused = await run.torchStage('fusion', Gate.fusion, () =>
    torch.checkFusion({
      ...torchOptions,
      ...model,
      optimizedDigest: optimized.files.optimized,
      referencesDigest,
      atol,
      rtol,
      require: spec.fusion.require,
      ...(spec.fusion.fused_runs ? { fusedRuns: spec.fusion.fused_runs } : {}),
      ...(spec.trace.target_device !== 'cpu' ? { targetDevice: spec.trace.target_device } : {}),
      ...limits,
    }),
  );
  run.judge(Gate.fusion, fused);

  return {
    artifact: { digest: optimized.files.optimized, references: referencesDigest },
    eagerMs: verified.eager_ms,
    files: {
      torchscript: optimized.files.optimized,
      traced: traced.files.traced,
      irBefore: optimized.files.ir_before,
      irAfter: optimized.files.ir_after,
      fusedGraph: fused.files.graph,
      ...(optimized.files.ir_for_inference ? { irForInference: optimized.files.ir_for_inference } : {}),
    },
    stages: { trace: traced, verify: verified, optimize: optimized, fusion: fused },
  };
}

// AOTInductor: torch.export with the batch dimension dynamic, checked against eager; compiled into a package, checked.
async function aoti(run: Run, model: ModelFile, weightsDigest: string): Promise<Part> {
  const { spec, torch, torchOptions } = run;
  const { atol, rtol } = spec.parity;
  const exported = await run.torchStage('export', Gate.export, () =>
    torch.exportProgram({ ...torchOptions, ...model, params: spec.params, weightsDigest, batchSizes: spec.trace.batch_sizes, atol, rtol }),
  );
  run.judge(Gate.export, exported);
  // A passed export always stored both (they are null only when export refused the model).
  const program = exported.files.program!;
  const references = exported.files.references!;
  const compiled = await run.torchStage('compile', Gate.compile, () =>
    torch.compilePackage({ ...torchOptions, ...model, programDigest: program, referencesDigest: references, atol, rtol }),
  );
  run.judge(Gate.compile, compiled);
  const pkg = compiled.files.package!;
  return {
    artifact: { digest: pkg, references },
    eagerMs: exported.eager_ms,
    files: { aoti: pkg, program, aotiReferences: references },
    stages: { export: exported, compile: compiled },
  };
}

// ONNX: torch.export with the batch dimension dynamic, translated by torch.onnx, checked by the ONNX checker and in ONNX
// Runtime against eager on the reference and probe cases.
async function onnx(run: Run, model: ModelFile, weightsDigest: string): Promise<Part> {
  const { spec, torch, torchOptions } = run;
  const { atol, rtol } = spec.parity;
  const exported = await run.torchStage('onnx', Gate.onnx, () =>
    torch.exportOnnx({ ...torchOptions, ...model, params: spec.params, weightsDigest, batchSizes: spec.trace.batch_sizes, atol, rtol }),
  );
  run.judge(Gate.onnx, exported);
  // A passed verdict always stored both.
  const file = exported.files.onnx!;
  const references = exported.files.references!;
  return {
    artifact: { digest: file, references },
    eagerMs: exported.eager_ms,
    files: { onnx: file, onnxReferences: references },
    stages: { onnx: exported },
  };
}

/** A foreign artifact: verified against the references recorded where it was traced. */
export async function verifyForeign(run: Run, foreign: NonNullable<PipelineInput['foreign']>): Promise<Built> {
  const { spec, torch, torchOptions } = run;
  const checked = await run.torchStage('verify', Gate.trace, () =>
    torch.verifyArtifact({
      ...torchOptions,
      artifactDigest: foreign.artifactDigest,
      referencesDigest: foreign.referencesDigest,
      atol: spec.parity.atol,
      rtol: spec.parity.rtol,
      targetDevice: spec.trace.target_device,
    }),
  );
  run.judge(Gate.trace, checked);
  // A passed verdict always comes with canonical references; the recorded ones stand in otherwise.
  const references = checked.files.references ?? foreign.referencesDigest;
  return {
    files: { artifact: foreign.artifactDigest, references, sourceReferences: foreign.referencesDigest },
    stages: { verify_artifact: checked },
    formats: { torchscript: { digest: foreign.artifactDigest, references } },
  };
}
