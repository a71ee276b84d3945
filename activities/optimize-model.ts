// The optimize stage: torch.jit.freeze, node counts and IR before and after, and a check that nothing changed.
import { basename } from 'node:path';
import { materialize, storeFiles, torchOp, withWorkDir, type TorchDeps } from './torch-stage';

/** Input of the optimize stage. */
export interface OptimizeInput {
  modelFileDigest: string;
  /** The model file as the user named it, for messages only. */
  modelFilePath: string;
  tracedDigest: string;
  referencesDigest: string;
  atol: number;
  rtol: number;
  method: 'freeze' | 'optimize_for_inference';
}

/** The optimized archive, its IR and the optimize gate's verdict. */
export interface OptimizeOutput {
  optimizedDigest: string;
  irBeforeDigest: string;
  irAfterDigest: string;
  nodesBefore: Record<string, number>;
  nodesAfter: Record<string, number>;
  nodeTotalBefore: number;
  nodeTotalAfter: number;
  /** With method optimize_for_inference: what a runtime gets after applying it on load (never saved). */
  nodesForInference: Record<string, number> | null;
  irForInferenceDigest: string | null;
  maxAbsError: number;
  passed: boolean;
  code: string | null;
  message: string;
}

/** Builds the optimize activity. */
export function optimizeActivity(deps: TorchDeps) {
  return async function optimize(input: OptimizeInput): Promise<OptimizeOutput> {
    return withWorkDir(async (dir) => {
      // The scratch copy keeps the user's file name, so messages that quote file:line read as theirs.
      const modelFile = basename(input.modelFilePath);
      const files = await materialize(deps.store, dir, {
        [modelFile]: input.modelFileDigest,
        'traced.pt': input.tracedDigest,
        'references.safetensors': input.referencesDigest,
      });
      // The model file is imported first so custom operators it registers can load.
      const r = await torchOp(
        deps,
        'optimize',
        {
          model_path: files[modelFile],
          traced_path: files['traced.pt'],
          references_path: files['references.safetensors'],
          atol: input.atol,
          rtol: input.rtol,
          method: input.method,
          out_dir: dir,
        },
        { [files[modelFile]]: input.modelFilePath },
      );
      const stored = await storeFiles(deps.store, {
        optimized: String(r.optimized_path),
        irBefore: String(r.ir_before_path),
        irAfter: String(r.ir_after_path),
        ...(r.ir_for_inference_path ? { irForInference: String(r.ir_for_inference_path) } : {}),
      });
      return {
        optimizedDigest: stored.optimized,
        irBeforeDigest: stored.irBefore,
        irAfterDigest: stored.irAfter,
        nodesBefore: r.nodes_before as Record<string, number>,
        nodesAfter: r.nodes_after as Record<string, number>,
        nodeTotalBefore: Number(r.node_total_before),
        nodeTotalAfter: Number(r.node_total_after),
        nodesForInference: (r.nodes_for_inference as Record<string, number> | null) ?? null,
        irForInferenceDigest: stored.irForInference ?? null,
        maxAbsError: Number(r.max_abs_error),
        passed: Boolean(r.passed),
        code: (r.code as string | null) ?? null,
        message: String(r.message),
      };
    });
  };
}
