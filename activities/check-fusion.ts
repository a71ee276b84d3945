// The fusion stage: runs the optimized graph under the TensorExpr fuser and reports what fused and what did not.
import { basename } from 'node:path';
import { materialize, storeFiles, torchOp, withWorkDir, type TorchDeps } from './torch-stage';

/** Input of the fusion stage. */
export interface FusionInput {
  modelFileDigest: string;
  /** The model file as the user named it, for messages only. */
  modelFilePath: string;
  optimizedDigest: string;
  referencesDigest: string;
  atol: number;
  rtol: number;
  require: 'none' | 'any' | 'pointwise-chains';
}

/** One fusion group and the ops inside it. */
export interface FusionGroup {
  kind: string;
  ops: string[];
}

/** The fusion gate's verdict and report. */
export interface FusionOutput {
  passed: boolean;
  code: string | null;
  message: string;
  groups: FusionGroup[];
  unfusedPointwise: string[];
  flags: Record<string, unknown>;
  torchVersion: string;
  maxAbsError: number | null;
  graphDigest: string;
}

/** Builds the fusion activity. */
export function fusionActivity(deps: TorchDeps) {
  return async function checkFusion(input: FusionInput): Promise<FusionOutput> {
    return withWorkDir(async (dir) => {
      // The scratch copy keeps the user's file name, so messages that quote file:line read as theirs.
      const modelFile = basename(input.modelFilePath);
      const files = await materialize(deps.store, dir, {
        [modelFile]: input.modelFileDigest,
        'optimized.pt': input.optimizedDigest,
        'references.safetensors': input.referencesDigest,
      });
      const r = await torchOp(
        deps,
        'fusion',
        {
          model_path: files[modelFile],
          optimized_path: files['optimized.pt'],
          references_path: files['references.safetensors'],
          atol: input.atol,
          rtol: input.rtol,
          require: input.require,
          out_dir: dir,
        },
        { [files[modelFile]]: input.modelFilePath },
      );
      const stored = await storeFiles(deps.store, { graph: String(r.graph_path) });
      return {
        passed: Boolean(r.passed),
        code: (r.code as string | null) ?? null,
        message: String(r.message),
        groups: (r.groups as FusionGroup[]) ?? [],
        unfusedPointwise: (r.unfused_pointwise as string[]) ?? [],
        flags: (r.flags as Record<string, unknown>) ?? {},
        torchVersion: String(r.torch_version),
        maxAbsError: (r.max_abs_error as number | null) ?? null,
        graphDigest: stored.graph,
      };
    });
  };
}
