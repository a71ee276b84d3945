// The optimize stage: torch.jit.freeze, node counts and IR before and after, and a check that nothing changed.
import type { OptimizeMethod } from '../lib/contract';
import { runTorchStage, type ModelFileInput, type StageOutput, type TorchDeps } from './torch-stage';

/** Input of the optimize stage (the model file is imported first so that custom operators it registers load). */
export interface OptimizeInput extends ModelFileInput {
  tracedDigest: string;
  referencesDigest: string;
  atol: number;
  rtol: number;
  method: OptimizeMethod;
}

/** The optimized archive and IR files, node counts and the optimize gate's verdict. */
export type OptimizeOutput = StageOutput<'optimize', 'optimized_path' | 'ir_before_path' | 'ir_after_path' | 'ir_for_inference_path'>;

/** Builds the optimize activity. */
export const optimizeActivity = (deps: TorchDeps) =>
  runTorchStage(deps, {
    op: 'optimize',
    fetch: (i: OptimizeInput) => ({ 'traced.pt': i.tracedDigest, 'references.safetensors': i.referencesDigest }),
    args: (i, f, dir) => ({
      model_path: f.model,
      traced_path: f['traced.pt'],
      references_path: f['references.safetensors'],
      atol: i.atol,
      rtol: i.rtol,
      method: i.method,
      out_dir: dir,
    }),
    store: ['optimized_path', 'ir_before_path', 'ir_after_path', 'ir_for_inference_path'],
  });
