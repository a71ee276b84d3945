// The train stage: runs the model file's training in the torch environment and stores the weights; a retry after a
// crashed worker resumes from the checkpoint that the last heartbeat named.
import { Context } from '@temporalio/activity';
import type { Spec } from '../lib/spec';
import type { ModelFileInput, StageOutput } from '../lib/contract';
import { runTorchStage, storeWorkFile, type TorchDeps } from './torch-stage';

/** Input of the train stage: the model file by digest and the spec's params and train section. */
export interface TrainInput extends ModelFileInput {
  params: Record<string, unknown>;
  train: Spec['train'];
}

/** Trained weights (`files.weights`) and losses, or a rejection (non-finite loss) with where it happened; with the
 * activity's attempt (a retry after a crashed worker is 2). */
export type TrainOutput = StageOutput<'train', 'weights_path'> & { attempt: number };

const resumeDigest = () => (Context.current().info.heartbeatDetails as { checkpointDigest?: string } | undefined)?.checkpointDigest;

/** Builds the train activity. */
export function trainActivity(deps: TorchDeps) {
  const run = runTorchStage(
    deps,
    {
      op: 'train',
      fetch: (): Record<string, string> => {
        const resume = resumeDigest();
        return resume ? { 'resume.pt': resume } : {};
      },
      args: (i: TrainInput, f, dir) => ({
        model_path: f.model,
        params: i.params,
        train: i.train,
        out_dir: dir,
        ...(f['resume.pt'] ? { resume_path: f['resume.pt'] } : {}),
      }),
      store: ['weights_path'],
    },
    // Each epoch's checkpoint goes to the store before its heartbeat names it.
    async (data, dir) => {
      if (typeof data.checkpoint_path !== 'string') return {};
      try {
        return { checkpointDigest: await storeWorkFile(deps.store, dir, data.checkpoint_path), checkpointEpoch: data.epoch };
      } catch (err) {
        // The next epoch's checkpoint replaced this one before we read it: that one will be named instead.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
        throw err;
      }
    },
  );
  return async function train(input: TrainInput): Promise<TrainOutput> {
    return { ...(await run(input)), attempt: Context.current().info.attempt };
  };
}
