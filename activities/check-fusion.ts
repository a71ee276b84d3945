// The fusion stage: runs the optimized graph under the TensorExpr fuser and reports what fused and what did not.
import type { FusionRequire } from '../lib/contract';
import { runTorchStage, type ModelFileInput, type StageOutput, type TorchDeps } from './torch-stage';

/** Input of the fusion stage. */
export interface FusionInput extends ModelFileInput {
  optimizedDigest: string;
  referencesDigest: string;
  atol: number;
  rtol: number;
  require: FusionRequire;
}

/** The fusion gate's verdict, its groups and flags, and the executed graph (`files.graph`). */
export type FusionOutput = StageOutput<'fusion', 'graph_path'>;

/** Builds the fusion activity. */
export const fusionActivity = (deps: TorchDeps) =>
  runTorchStage(deps, {
    op: 'fusion',
    fetch: (i: FusionInput) => ({ 'optimized.pt': i.optimizedDigest, 'references.safetensors': i.referencesDigest }),
    args: (i, f, dir) => ({
      model_path: f.model,
      optimized_path: f['optimized.pt'],
      references_path: f['references.safetensors'],
      atol: i.atol,
      rtol: i.rtol,
      require: i.require,
      out_dir: dir,
    }),
    store: ['graph_path'],
  });
