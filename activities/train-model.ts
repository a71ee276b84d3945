// The train stage: runs the model file's training in the torch environment and stores the weights.
import type { Spec } from '../lib/spec';
import { basename } from 'node:path';
import { Context } from '@temporalio/activity';
import { putBlobFile } from '../lib/store';
import { materialize, storeFiles, torchOp, withWorkDir, type TorchDeps } from './torch-stage';

/** Input of the train stage: the model file by digest and the spec's params and train section. */
export interface TrainInput {
  modelFileDigest: string;
  /** The model file as the user named it, for messages only. */
  modelFilePath: string;
  params: Record<string, unknown>;
  train: Spec['train'];
}

/** Trained weights, or a rejection (non-finite loss) with where it happened. */
export type TrainOutput =
  | {
      status: 'ok';
      weightsDigest: string;
      losses: number[];
      epochsCompleted: number;
      rows: number;
      /** This activity's attempt (a retry after a crashed worker is 2). */
      attempt: number;
      /** The epoch of the checkpoint this attempt resumed from; 0 when it started fresh. */
      resumedFromEpoch: number;
    }
  | { status: 'rejected'; code: string; message: string; epoch: number; step: number };

/** Builds the train activity. */
export function trainActivity(deps: TorchDeps) {
  return async function train(input: TrainInput): Promise<TrainOutput> {
    return withWorkDir(async (dir) => {
      // The scratch copy keeps the user's file name, so messages that quote file:line read as theirs.
      const modelFile = basename(input.modelFilePath);
      // A retry after a crashed worker resumes from the checkpoint the last heartbeat named.
      const { attempt, heartbeatDetails } = Context.current().info;
      const resume = (heartbeatDetails as { checkpointDigest?: string } | undefined)?.checkpointDigest;
      const files = await materialize(deps.store, dir, { [modelFile]: input.modelFileDigest, ...(resume ? { 'resume.pt': resume } : {}) });
      const result = await torchOp(
        deps,
        'train',
        {
          model_path: files[modelFile],
          params: input.params,
          train: input.train,
          out_dir: dir,
          ...(resume ? { resume_path: files['resume.pt'] } : {}),
        },
        { [files[modelFile]]: input.modelFilePath },
        // Each epoch's checkpoint goes to the store before its heartbeat names it.
        async (data) => {
          if (typeof data.checkpoint_path !== 'string') return {};
          try {
            return { checkpointDigest: await putBlobFile(deps.store, data.checkpoint_path), checkpointEpoch: data.epoch };
          } catch (err) {
            // The next epoch's checkpoint replaced this one before we read it: that one will be named instead.
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
            throw err;
          }
        },
      );
      if (result.status === 'rejected') {
        return {
          status: 'rejected',
          code: String(result.code),
          message: String(result.message),
          epoch: Number(result.epoch),
          step: Number(result.step),
        };
      }
      const stored = await storeFiles(deps.store, { weights: String(result.weights_path) });
      return {
        status: 'ok',
        weightsDigest: stored.weights,
        losses: (result.losses as number[]) ?? [],
        epochsCompleted: Number(result.epochs_completed),
        rows: Number(result.rows),
        attempt,
        resumedFromEpoch: Number(result.resumed_from_epoch ?? 0),
      };
    });
  };
}
