// The trace stage: eval mode, torch.jit.trace on the example inputs, the archive stored by digest.
import { basename } from 'node:path';
import { materialize, storeFiles, torchOp, withWorkDir, type TorchDeps } from './torch-stage';

/** Input of the trace stage. */
export interface TraceInput {
  modelFileDigest: string;
  /** The model file as the user named it, for messages only. */
  modelFilePath: string;
  params: Record<string, unknown>;
  weightsDigest: string;
  mode: 'trace' | 'script';
}

/** A tensor turned into a Python bool or number in the user's own file while tracing. */
export interface Capture {
  kind: 'bool' | 'number';
  message: string;
  filename: string;
  lineno: number;
}

/** The traced archive and a summary of its graph. */
export interface TraceOutput {
  tracedDigest: string;
  exampleShapes: number[][];
  nodes: Record<string, number>;
  nodeTotal: number;
  warnings: { category: string; message: string; filename: string; lineno: number }[];
  captures: Capture[];
  mode: 'trace' | 'script';
}

const MAX_WARNINGS = 20;

/** Builds the trace activity. */
export function traceActivity(deps: TorchDeps) {
  return async function trace(input: TraceInput): Promise<TraceOutput> {
    return withWorkDir(async (dir) => {
      // The scratch copy keeps the user's file name, so messages that quote file:line read as theirs.
      const modelFile = basename(input.modelFilePath);
      const files = await materialize(deps.store, dir, { [modelFile]: input.modelFileDigest, 'weights.pt': input.weightsDigest });
      const result = await torchOp(
        deps,
        'trace',
        {
          model_path: files[modelFile],
          params: input.params,
          weights_path: files['weights.pt'],
          mode: input.mode,
          out_dir: dir,
        },
        { [files[modelFile]]: input.modelFilePath },
      );
      const stored = await storeFiles(deps.store, { traced: String(result.traced_path) });
      const shown = (path: string) => (path === files[modelFile] ? input.modelFilePath : path);
      const warnings = ((result.warnings as TraceOutput['warnings']) ?? [])
        .slice(0, MAX_WARNINGS)
        .map((w) => ({ ...w, filename: shown(w.filename), message: String(w.message).slice(0, 500) }));
      const captures = ((result.captures as Capture[]) ?? [])
        .slice(0, MAX_WARNINGS)
        .map((c) => ({ ...c, filename: shown(c.filename), message: String(c.message).slice(0, 500) }));
      return {
        tracedDigest: stored.traced,
        exampleShapes: result.example_shapes as number[][],
        nodes: result.nodes as Record<string, number>,
        nodeTotal: Number(result.node_total),
        warnings,
        captures,
        mode: (result.mode as TraceOutput['mode']) ?? input.mode,
      };
    });
  };
}
