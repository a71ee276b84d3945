// The trace stage: eval mode, torch.jit.trace (or script) on the example inputs, the archive stored by digest.
import type { TraceMode } from '../lib/contract';
import { runTorchStage, type ModelFileInput, type StageOutput, type TorchDeps } from './torch-stage';

/** Input of the trace stage. */
export interface TraceInput extends ModelFileInput {
  params: Record<string, unknown>;
  weightsDigest: string;
  mode: TraceMode;
}

/** The traced archive (`files.traced`) and a summary of its graph, warnings and captures. */
export type TraceOutput = StageOutput<'trace', 'traced_path'>;

/** Builds the trace activity. */
export const traceActivity = (deps: TorchDeps) =>
  runTorchStage(deps, {
    op: 'trace',
    fetch: (i: TraceInput) => ({ 'weights.pt': i.weightsDigest }),
    args: (i, f, dir) => ({ model_path: f.model, params: i.params, weights_path: f['weights.pt'], mode: i.mode, out_dir: dir }),
    store: ['traced_path'],
  });
