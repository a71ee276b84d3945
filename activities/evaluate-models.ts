// The evaluate stage: candidate and production on the same validation split, for promote.compare.
import { runTorchStage, type ModelFileInput, type StageOutput, type TorchDeps } from './torch-stage';

/** Input of the evaluate stage: archives by name and digest, and the model file that has the data. */
export interface EvaluateInput extends ModelFileInput {
  params: Record<string, unknown>;
  loss: 'mse' | 'cross_entropy';
  artifacts: { name: string; digest: string }[];
}

/** Each archive's validation loss (null when not finite) and the number of validation rows. */
export type EvaluateOutput = StageOutput<'evaluate'>;

/** Builds the evaluate activity. */
export const evaluateActivity = (deps: TorchDeps) =>
  runTorchStage(deps, {
    op: 'evaluate',
    fetch: (i: EvaluateInput) => Object.fromEntries(i.artifacts.map((a) => [`${a.name}.pt`, a.digest])),
    args: (i, f) => ({
      model_path: f.model,
      params: i.params,
      loss: i.loss,
      artifacts: i.artifacts.map((a) => ({ name: a.name, path: f[`${a.name}.pt`] })),
    }),
  });
