// The evaluate stage: candidate and production on the same validation split, for promote.compare.
import { basename } from 'node:path';
import { materialize, torchOp, withWorkDir, type TorchDeps } from './torch-stage';

/** Input of the evaluate stage: archives by name and digest, and the model file that has the data. */
export interface EvaluateInput {
  modelFileDigest: string;
  modelFilePath: string;
  params: Record<string, unknown>;
  loss: 'mse' | 'cross_entropy';
  artifacts: { name: string; digest: string }[];
}

/** Validation loss by artifact name (null when it is not finite). */
export type EvaluateOutput = Record<string, number | null>;

/** Builds the evaluate activity. */
export function evaluateActivity(deps: TorchDeps) {
  return async function evaluate(input: EvaluateInput): Promise<EvaluateOutput> {
    return withWorkDir(async (dir) => {
      const modelFile = basename(input.modelFilePath);
      const files = await materialize(deps.store, dir, {
        [modelFile]: input.modelFileDigest,
        ...Object.fromEntries(input.artifacts.map((a) => [`${a.name}.pt`, a.digest])),
      });
      const r = await torchOp(
        deps,
        'evaluate',
        {
          model_path: files[modelFile],
          params: input.params,
          loss: input.loss,
          artifacts: input.artifacts.map((a) => ({ name: a.name, path: files[`${a.name}.pt`] })),
        },
        { [files[modelFile]]: input.modelFilePath },
      );
      const results = (r.results as { name: string; validation_loss: number | null }[]) ?? [];
      return Object.fromEntries(results.map((x) => [x.name, x.validation_loss]));
    });
  };
}
