// Training progress as the train activity's heartbeats carry it, read from a run's pending activities.
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';

/** The newest training heartbeat: every epoch's loss so far and the number of epochs. */
export interface TrainingBeat {
  epochs: number | undefined;
  losses: number[];
}

/** The heartbeat with the most epochs among the run's pending activities, or undefined. */
export async function trainingBeat(handle: WorkflowHandle): Promise<TrainingBeat | undefined> {
  const desc = await handle.describe();
  let best: TrainingBeat | undefined;
  for (const activity of desc.raw.pendingActivities ?? []) {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    const details = defaultPayloadConverter.fromPayload<{ epochs?: number; losses?: number[] }>(payload);
    const losses = Array.isArray(details?.losses) ? details.losses : [];
    if (!best || losses.length > best.losses.length) best = { epochs: details?.epochs, losses };
  }
  return best;
}

/** The phase a running stage's heartbeat names (the environment stage: resolving, installing N packages), or undefined. */
export async function stagePhase(handle: WorkflowHandle): Promise<string | undefined> {
  const desc = await handle.describe();
  for (const activity of desc.raw.pendingActivities ?? []) {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    const details = defaultPayloadConverter.fromPayload<{ phase?: unknown }>(payload);
    if (typeof details?.phase === 'string') return details.phase;
  }
  return undefined;
}
