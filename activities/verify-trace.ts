// The verify stage: traced and eager agree on the reference cases; records the references as safetensors.
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
}

/** Builds the verify activity. */
export function verifyActivity(deps: TorchDeps) {
  return async function verify(input: VerifyInput): Promise<VerifyOutput> {
    return withWorkDir(async (dir) => {
      const files = await materialize(deps.store, dir, {
        'model.py': input.modelFileDigest,
        'weights.pt': input.weightsDigest,
        'traced.pt': input.tracedDigest,
      });
      const result = await torchOp(deps, 'verify', {
        model_path: files['model.py'],
        params: input.params,
        weights_path: files['weights.pt'],
        traced_path: files['traced.pt'],
        batch_sizes: input.batchSizes,
        atol: input.atol,
        rtol: input.rtol,
        out_dir: dir,
      }, { [files['model.py']]: input.modelFilePath });
      const stored = await storeFiles(deps.store, { references: String(result.references_path) });
      return {
        passed: Boolean(result.passed),
        code: (result.code as string | null) ?? null,
        message: String(result.message),
        cases: result.cases as CaseReport[],
        trainModeOps: (result.train_mode_ops as string[]) ?? [],
        referencesDigest: stored.references,
      };
    });
  };
}
