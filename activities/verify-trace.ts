// The verify stage: traced and eager agree on the reference cases; records the references as safetensors.
import type { Capture } from './trace-model';
import { basename } from 'node:path';
import { materialize, storeFiles, torchOp, withWorkDir, type TorchDeps } from './torch-stage';

/** Input of the verify stage. */
export interface VerifyInput {
  modelFileDigest: string;
  /** The model file as the user named it, for messages only. */
  modelFilePath: string;
  params: Record<string, unknown>;
  weightsDigest: string;
  tracedDigest: string;
  batchSizes: number[];
  atol: number;
  rtol: number;
  captures: Capture[];
  targetDevice: string;
}

/** One reference case's comparison. */
export interface CaseReport {
  name: string;
  max_abs_error: number | null;
  max_rel_error: number | null;
  passed: boolean;
  error: string | null;
}

/** The trace gate's verdict and the stored references. */
export interface VerifyOutput {
  passed: boolean;
  code: string | null;
  message: string;
  cases: CaseReport[];
  trainModeOps: string[];
  referencesDigest: string;
  warnings: string[];
  devices: string[];
  nondeterministicNodes: string[];
}

/** Builds the verify activity. */
export function verifyActivity(deps: TorchDeps) {
  return async function verify(input: VerifyInput): Promise<VerifyOutput> {
    return withWorkDir(async (dir) => {
      // The scratch copy keeps the user's file name, so messages that quote file:line read as theirs.
      const modelFile = basename(input.modelFilePath);
      const files = await materialize(deps.store, dir, {
        [modelFile]: input.modelFileDigest,
        'weights.pt': input.weightsDigest,
        'traced.pt': input.tracedDigest,
      });
      const result = await torchOp(
        deps,
        'verify',
        {
          model_path: files[modelFile],
          params: input.params,
          weights_path: files['weights.pt'],
          traced_path: files['traced.pt'],
          batch_sizes: input.batchSizes,
          atol: input.atol,
          rtol: input.rtol,
          // The user's path: the torch side matches captures against the model file it was given.
          captures: input.captures.map((c) => ({ ...c, filename: c.filename === input.modelFilePath ? files[modelFile] : c.filename })),
          target_device: input.targetDevice,
          out_dir: dir,
        },
        { [files[modelFile]]: input.modelFilePath },
      );
      const stored = await storeFiles(deps.store, { references: String(result.references_path) });
      return {
        passed: Boolean(result.passed),
        code: (result.code as string | null) ?? null,
        message: String(result.message).split(files[modelFile]).join(input.modelFilePath),
        cases: result.cases as CaseReport[],
        trainModeOps: (result.train_mode_ops as string[]) ?? [],
        referencesDigest: stored.references,
        warnings: ((result.warnings as string[]) ?? []).map((w) => w.split(files[modelFile]).join(input.modelFilePath)),
        devices: (result.devices as string[]) ?? [],
        nondeterministicNodes: (result.nondeterministic_nodes as string[]) ?? [],
      };
    });
  };
}
