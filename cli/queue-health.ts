// Which of a run's task queues it is waiting on with no worker polling: `ttd status` names them and the command
// that starts a worker for each, instead of showing a run that silently does not move.
import { temporal } from '@temporalio/proto';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { TORCH_ACTIVITY_TYPES } from '../lib/contract/stages';
import type { PipelineInput } from '../workflows/definitions';

/** A task has waited this long for a worker, and no worker has polled its queue for as long: the queue is idle. */
export const IDLE_AFTER_S = 15;

/** A queue a run waits on that no worker has polled lately. */
export interface IdleQueue {
  queue: string;
  kind: 'control' | 'torch';
  /** The oldest waiting task's type: `workflow task`, or the activity (`train`, `storeArtifact`, …). */
  waitingFor: string;
  /** Seconds that task has waited. */
  waitingSeconds: number;
  /** When a worker last polled the queue (ISO time), or null when none has in the server's memory (minutes). */
  lastPolledAt: string | null;
  /** What starts a worker for it, on a host of the run's store. */
  command: string;
}

const { PendingActivityState, PendingWorkflowTaskState, TaskQueueType, TaskQueueKind } = temporal.api.enums.v1;

const seconds = (t: { seconds?: unknown; nanos?: number | null } | null | undefined): number | undefined =>
  t?.seconds == null ? undefined : Number(t.seconds) + (t.nanos ?? 0) / 1e9;

/** The run's queues with a task waiting past IDLE_AFTER_S that no worker has polled for as long. */
export async function idleQueues(client: Client, runId: string, now = Date.now()): Promise<IdleQueue[]> {
  const { raw } = await client.workflow.getHandle(runId).describe();
  const input = await runInput(client, runId);
  if (!input) return [];
  // The oldest task waiting (scheduled, not started) on each queue.
  const waiting = new Map<'control' | 'torch', { what: string; since: number }>();
  const note = (kind: 'control' | 'torch', what: string, since: number | undefined) => {
    if (since === undefined) return;
    const seen = waiting.get(kind);
    if (!seen || since < seen.since) waiting.set(kind, { what, since });
  };
  const wft = raw.pendingWorkflowTask;
  if (wft && wft.state === PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED) {
    note('control', 'workflow task', seconds(wft.scheduledTime));
  }
  for (const a of raw.pendingActivities ?? []) {
    if (a.state !== PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED) continue;
    const type = a.activityType?.name ?? 'activity';
    // A retry waiting out its backoff is not waiting for a worker yet.
    const since = seconds(a.nextAttemptScheduleTime) ?? seconds(a.scheduledTime);
    note(TORCH_ACTIVITY_TYPES.includes(type) ? 'torch' : 'control', type, since);
  }
  const out: IdleQueue[] = [];
  for (const [kind, { what, since }] of waiting) {
    const waited = now / 1000 - since;
    if (waited < IDLE_AFTER_S) continue;
    const queue = input.queues[kind];
    const lastPoll = await lastPolled(client, queue, what === 'workflow task' ? 'workflow' : 'activity');
    if (lastPoll !== undefined && now / 1000 - lastPoll < IDLE_AFTER_S) continue;
    out.push({
      queue,
      kind,
      waitingFor: what,
      waitingSeconds: Math.round(waited),
      lastPolledAt: lastPoll === undefined ? null : new Date(lastPoll * 1000).toISOString(),
      command: workerCommandFor(input, kind),
    });
  }
  return out;
}

/** The latest poll of a queue by any worker (seconds since the epoch), if the server remembers one. */
async function lastPolled(client: Client, queue: string, type: 'workflow' | 'activity'): Promise<number | undefined> {
  const res = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: queue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: type === 'workflow' ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  const times = (res.pollers ?? []).map((p) => seconds(p.lastAccessTime)).filter((t): t is number => t !== undefined);
  return times.length ? Math.max(...times) : undefined;
}

/** The run's input: the first event of its history. */
async function runInput(client: Client, runId: string): Promise<PipelineInput | undefined> {
  const res = await client.workflowService.getWorkflowExecutionHistory({
    namespace: client.options.namespace,
    execution: { workflowId: runId },
    maximumPageSize: 1,
  });
  const payload = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  return payload ? defaultPayloadConverter.fromPayload<PipelineInput>(payload) : undefined;
}

/** The command that starts a worker for one of the run's queues. */
export function workerCommandFor(input: PipelineInput, kind: 'control' | 'torch'): string {
  const prefix = input.queues.control.replace(/-control$/, '');
  // Queues named after the store (temporal/queues.ts), or by TTD_QUEUE_PREFIX (and every run started before pools).
  const named = /^ttd-[0-9a-f]{16}$/.test(prefix) && input.queues.torch.startsWith(`${prefix}-torch-`);
  const where = input.store ? `TTD_STORE=${input.store} ` : '';
  const env = named ? where : `${where}TTD_QUEUE_PREFIX=${prefix} `;
  if (kind === 'control') return `${env}ttd worker --queue control`;
  const pool = named ? ` --env ${input.environment} --device ${input.spec.device ?? 'cpu'}` : '';
  return `${env}ttd worker --queue torch${pool}`;
}
