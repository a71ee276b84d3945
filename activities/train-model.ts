// The train stage: runs the model file's training in the torch environment and stores the weights; a retry after a
// crashed worker resumes from the newest checkpoint its run stored. Only the latest TTD_CHECKPOINTS_KEPT per-epoch
// checkpoints stay in the store: older ones are deleted as training goes (lib/store/checkpoints.ts).
import { Context } from '@temporalio/activity';
import { checkpointIndexKey, latestCheckpoint, storeCheckpoint } from '../lib/store/checkpoints';
import type { Spec } from '../lib/spec/spec';
import { blobKey } from '../lib/store/store';
import type { StageOutput } from '../lib/contract/ops';
import type { ModelFileInput } from '../lib/contract/stages';
import { runTorchStage, withWorkFile, type TorchDeps } from './torch-stage';

/** Input of the train stage: the model file by digest and the spec's params and train section. */
export interface TrainInput extends ModelFileInput {
  params: Record<string, unknown>;
  train: Spec['train'];
}

/** Trained weights (`files.weights`) and losses, or a rejection (non-finite loss) with where it happened; with the
 * activity's attempt (a retry after a crashed worker is 2). */
export type TrainOutput = StageOutput<'train', 'weights_path'> & { attempt: number };

const indexKey = (): string => {
  const { workflowExecution, activityId } = Context.current().info;
  return checkpointIndexKey(workflowExecution?.workflowId ?? 'standalone', workflowExecution?.runId ?? activityId);
};
// Per activity attempt: the checkpoint to resume from, found in the run's index before the stage starts.
const resumeFrom = new WeakMap<Context, string>();

/** Builds the train activity. */
export function trainActivity(deps: TorchDeps) {
  const run = runTorchStage(
    deps,
    {
      op: 'train',
      fetch: (): Record<string, string> => {
        const resume = resumeFrom.get(Context.current());
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
    // Each epoch's checkpoint goes to the store before its heartbeat names it (read as a file the sandbox wrote: never
    // through a link); then the oldest beyond the kept number go.
    async (data, dir) => {
      if (typeof data.checkpoint_path !== 'string' || typeof data.epoch !== 'number') return {};
      const epoch = data.epoch;
      try {
        const { digest } = await withWorkFile(dir, data.checkpoint_path, (copy, copied) =>
          storeCheckpoint(deps.store, indexKey(), epoch, copy, deps.config.checkpointsKept, copied),
        );
        return { checkpointDigest: digest, checkpointEpoch: epoch };
      } catch (err) {
        // The next epoch's checkpoint replaced this one before we read it: that one will be named instead.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
        throw err;
      }
    },
  );
  return async function train(input: TrainInput): Promise<TrainOutput> {
    const ctx = Context.current();
    // The newest stored checkpoint, not the last heartbeat's: heartbeats are throttled and may name an older one.
    const latest = await latestCheckpoint(deps.store, indexKey());
    const named = (ctx.info.heartbeatDetails as { checkpointDigest?: string } | undefined)?.checkpointDigest;
    const resume = latest?.digest ?? (named && (await deps.store.head(blobKey(named))) ? named : undefined);
    if (resume) resumeFrom.set(ctx, resume);
    return { ...(await run(input)), attempt: ctx.info.attempt };
  };
}
