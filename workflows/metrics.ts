// ttd's workflow metrics through the SDK's workflow metric meter: emitted as a run moves, skipped while it replays,
// so a replayed run is never counted twice. Without a metrics exporter in the worker they cost nothing.
import { metricMeter } from '@temporalio/workflow';
import { WorkflowMetric } from '../lib/contract/metrics';
import type { GateResult, RunResult } from '../lib/contract/results';

/** How a stage ended, as a label. */
export type StageOutcome = 'ok' | 'cached' | 'failed';

/** A stage ended after `ms` of workflow time. */
export function stageEnded(stage: string, ms: number, outcome: StageOutcome): void {
  metricMeter
    .createHistogram(WorkflowMetric.stageDuration, 'float', 's', 'stage duration as the run saw it, queue waits and retries included')
    .record(ms / 1000, { stage, outcome });
}

/** A gate entry was recorded. */
export function gateRecorded(g: GateResult): void {
  metricMeter
    .createCounter(WorkflowMetric.gateOutcomes, '1', 'gate entries recorded by runs')
    .add(1, { gate: g.gate, outcome: g.passed ? 'passed' : 'failed', code: g.code ?? 'none' });
}

/** A run finished with this result. */
export function runFinished(result: RunResult): RunResult {
  metricMeter.createCounter(WorkflowMetric.runs, '1', 'finished runs by status').add(1, { status: result.status });
  return result;
}
