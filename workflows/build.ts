// Building a version: train → trace → verify → optimize → fusion for a model file, or verify for a foreign archive.
// Every gate here runs before anything is registered.
import { Gate } from '../lib/gate-codes';
import type { ArtifactFiles, StageOutputs } from '../lib/records';
import type { PipelineInput } from './definitions';
import type { Run } from './run-state';

/** What the stages before the store produce: the files of a version and each stage's output. */
export interface Built {
  referencesDigest: string;
  files: ArtifactFiles;
  stages: StageOutputs;
}

/** Trains, traces, verifies, optimizes and checks fusion; rejects the run at the first gate that fails. */
export async function buildFromModel(run: Run, model: { modelFileDigest: string; modelFilePath: string }): Promise<Built> {
  const { spec, torch, torchOptions } = run;
  const { atol, rtol } = spec.parity;
  const trained = await run.torchStage('train', Gate.training, () =>
    torch.train({ ...torchOptions, ...model, params: spec.params, train: spec.train }),
  );
  if (trained.status === 'rejected') run.reject({ gate: Gate.training, passed: false, code: trained.code, message: trained.message });
  if (trained.status !== 'ok') throw new Error('unreachable');
  run.progress.losses = trained.losses;
  run.training = { attempts: trained.attempt, resumedFromEpoch: trained.resumed_from_epoch };
  run.pass(Gate.training, `${trained.epochs_completed} epochs on ${trained.rows} rows; final loss ${trained.losses.at(-1)?.toFixed(4)}`);
  const weightsDigest = trained.files.weights;

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
      targetDevice: spec.trace.target_device,
    }),
  );
  run.judge(Gate.trace, verified);
  const referencesDigest = verified.files.references;

  const optimized = await run.torchStage('optimize', Gate.optimize, () =>
    torch.optimize({
      ...torchOptions,
      ...model,
      tracedDigest: traced.files.traced,
      referencesDigest,
      atol,
      rtol,
      method: spec.optimize.method,
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
    }),
  );
  run.judge(Gate.fusion, fused);

  return {
    referencesDigest,
    files: {
      artifact: optimized.files.optimized,
      traced: traced.files.traced,
      references: referencesDigest,
      weights: weightsDigest,
      modelFile: model.modelFileDigest,
      irBefore: optimized.files.ir_before,
      irAfter: optimized.files.ir_after,
      fusedGraph: fused.files.graph,
      ...(optimized.files.ir_for_inference ? { irForInference: optimized.files.ir_for_inference } : {}),
    },
    stages: { train: trained, trace: traced, verify: verified, optimize: optimized, fusion: fused },
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
  const referencesDigest = checked.files.references ?? foreign.referencesDigest;
  return {
    referencesDigest,
    files: { artifact: foreign.artifactDigest, references: referencesDigest, sourceReferences: foreign.referencesDigest },
    stages: { verify_artifact: checked },
  };
}
