// The verify stage: traced and eager agree on the reference and probe cases; records the references as safetensors.
import type { Capture } from '../lib/contract';
import { runTorchStage, type ModelFileInput, type StageOutput, type TorchDeps } from './torch-stage';

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
  targetDevice: string;
}

/** The trace gate's verdict and the stored references (`files.references`). */
export type VerifyOutput = StageOutput<'verify', 'references_path'>;

/** Builds the verify activity. */
export const verifyActivity = (deps: TorchDeps) =>
  runTorchStage(deps, {
    op: 'verify',
    fetch: (i: VerifyInput) => ({ 'weights.pt': i.weightsDigest, 'traced.pt': i.tracedDigest }),
    args: (i, f, dir) => ({
      model_path: f.model,
      params: i.params,
      weights_path: f['weights.pt'],
      traced_path: f['traced.pt'],
      batch_sizes: i.batchSizes,
      atol: i.atol,
      rtol: i.rtol,
      captures: i.captures.map((c) => ({ ...c, filename: c.filename === i.modelFilePath ? f.model : c.filename })),
      target_device: i.targetDevice,
      out_dir: dir,
    }),
    store: ['references_path'],
  });
