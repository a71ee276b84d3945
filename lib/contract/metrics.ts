// The names of ttd's own metrics and their histogram buckets: one list for the workflow and activity sides that record
// them, the worker that serves them and the docs that explain them (docs/deploy-observability.md).

/** Recorded by the pipeline workflow (never while it replays). */
export const WorkflowMetric = {
  /** Seconds from a stage's start to its end as the run saw it: queue waits and retries included; labels stage, outcome. */
  stageDuration: 'ttd_stage_duration_seconds',
  /** One per gate entry a run records; labels gate, outcome (passed, failed), code (`none` when it passed). */
  gateOutcomes: 'ttd_gate_outcomes',
  /** One per finished run; label status (promoted, rejected, failed). */
  runs: 'ttd_runs',
} as const;
export type WorkflowMetric = (typeof WorkflowMetric)[keyof typeof WorkflowMetric];

/** Recorded by the workers around each activity attempt. */
export const ActivityMetric = {
  /** Seconds an attempt waited in its task queue before a worker started it. */
  queueWait: 'ttd_activity_queue_wait_seconds',
  /** Seconds an attempt ran; label outcome (ok, failed, cancelled). */
  duration: 'ttd_activity_duration_seconds',
} as const;
export type ActivityMetric = (typeof ActivityMetric)[keyof typeof ActivityMetric];

// Stages last from milliseconds (a cached stage) to hours (training); queue waits from milliseconds to many minutes.
const STAGE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];
const WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

/** Bucket boundaries (seconds) per histogram, for the Prometheus exporter. */
export const METRIC_BUCKETS: Record<string, number[]> = {
  [WorkflowMetric.stageDuration]: STAGE_BUCKETS,
  [ActivityMetric.duration]: STAGE_BUCKETS,
  [ActivityMetric.queueWait]: WAIT_BUCKETS,
};
