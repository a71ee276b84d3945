// What the pipeline workflow is called with, what it answers, and how its activities are called: the names the CLI
// and the workers import, so that nothing looks the workflow up by a string of its own.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { NON_RETRYABLE_TYPES } from '../lib/contract/gate-codes';
import type { DeclaredEnvironment } from '../lib/environments/declared-environments';
import type { Spec } from '../lib/spec/spec';

/** The workflow type name, for listing runs and for schedules. */
export const PIPELINE_WORKFLOW = 'pipelineWorkflow';

/** What a run starts with: the validated spec and the digests of its inputs, never file contents. */
export interface PipelineInput {
  /** The run's id; a scheduled run has none and uses its workflow id. */
  runId?: string;
  spec: Spec;
  specDigest: string;
  /** The model file to train (absent for a foreign artifact). */
  modelFileDigest?: string;
  /** The model file's path where the run was started, for messages only. */
  modelFilePath?: string;
  /** A foreign artifact (traced elsewhere) and its references: no training or tracing. */
  foreign?: { artifactDigest: string; referencesDigest: string; artifactPath: string };
  actor: string;
  trigger: 'manual' | 'ci' | 'schedule';
  commit: string | null;
  /** The run's task queues: its store's control queue and the torch queue of its pool (temporal/queues.ts). */
  queues: { control: string; torch: string };
  /** Where the run's store is (TTD_STORE, no credentials), for messages that say which workers it waits for; absent
   * in runs started before store identity. */
  store?: string;
  /** `ttd run --no-cache`: every torch stage does its work even when an earlier run had the same inputs. */
  noCache?: boolean;
  /** The torch environment every torch stage runs in (lib/environments/environments.ts); absent in runs started before there
   * were several, which ran in the worker's configured one. */
  environment?: string;
  /** The spec's declared environment (`environment: { base, requirements }`) with its requirement lines; `environment`
   * is then its id, `<base>+<hex>`. Built by the environment stage before training. */
  declaredEnvironment?: DeclaredEnvironment;
}

/** What `ttd run` shows while a run moves: the current stage and the finished ones with their durations. */
export interface PipelineProgress {
  /** `running`, or `awaiting_approval` while the run waits for `ttd approve`. */
  status: 'running' | 'awaiting_approval';
  stage: string | null;
  /** Finished stages; `cached` when the stage reused an earlier identical run's outputs, `failed` when it could not
   * finish (the run then ends `failed`). */
  completed: { stage: string; ms: number; cached?: boolean; failed?: boolean }[];
  epochs: number;
  losses: number[];
}

/** The progress query. */
export const progressQuery = defineQuery<PipelineProgress>('progress');

/** A person's answer to a run that waits for approval. */
export interface ApprovalDecision {
  approve: boolean;
  by: string;
  reason?: string;
}

/** The approval update: `ttd approve RUN --by NAME [--reject --reason TEXT]`. */
export const approveUpdate = defineUpdate<{ accepted: true; by: string; approve: boolean }, [ApprovalDecision]>('approve');

// Named timeout and retry profiles (STYLE.md): every stage heartbeats (a killed host is noticed within its heartbeat
// timeout, then the retry starts on another worker); store stages retry longer.
export const torchStage = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '15 seconds', // a dead torch worker is noticed within 15 s
  retry: { maximumAttempts: 5, initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE_TYPES },
} as const;
// Store stages: a dead host is the heartbeat's to notice, so start-to-close only bounds a live one, and must fit a
// multi-GB artifact streamed, re-hashed and copied over a slow link (1 GB at 2 MB/s is about 9 minutes each way); a
// stalled S3 connection is cut by the store's own idle timeout (TTD_S3_IDLE_TIMEOUT_S) well before it.
export const storeStage = {
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '15 seconds', // activities/heartbeat.ts: every control activity beats every 2 s while it runs
  retry: { maximumAttempts: 10, initialInterval: '500 milliseconds', nonRetryableErrorTypes: NON_RETRYABLE_TYPES },
} as const;

/** The patch of the signing stages (a key check before training, `sign` before registering): a run started before them
 * replays without either, and its version has no model signature or provenance. */
export const SIGNING_PATCH = 'ttd-signing';
