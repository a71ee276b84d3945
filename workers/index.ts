// The one entry of workers/ for cli/: the workers of both task queues and their telemetry, and what the CLI needs of
// the activities they serve (warming torch up, stopping fork servers, their types).
export { codeBuildId, createWorkers, QueueKind, runWorkersUntil } from './create-workers';
export { installQuietRuntime } from './runtime';
export { checkMetricsPort, flushTelemetry, useTelemetry, workerTelemetry } from './telemetry';
export { type ControlActivities, type StageRun, type TorchActivities } from '../activities';
export { prestartTorch } from '../activities/step-cache';
export { stopForkServers } from '../activities/torch-process';
