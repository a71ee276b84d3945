// ttd's activity metrics, recorded through the SDK's metric meter so that they are served on the runtime's Prometheus
// endpoint beside the SDK's own: how long each attempt waited in its task queue, and how long it ran.
import { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import { ActivityMetric, METRIC_BUCKETS } from '../lib/contract/metrics';

export { METRIC_BUCKETS };

/** Records, per attempt, its queue wait (scheduled to started) and its run time with its outcome (`ok`, `failed`,
 * `cancelled`). The meter tags both with the namespace, task queue and activity type. */
export class ActivityMetricsInterceptor implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const ctx = Context.current();
    const started = Date.now();
    // The attempt's own scheduled time: a retry's wait is counted from its backoff's end, not from the first attempt.
    const waited = Math.max(0, started - ctx.info.currentAttemptScheduledTimestampMs) / 1000;
    ctx.metricMeter.createHistogram(ActivityMetric.queueWait, 'float', 's', 'time from scheduled to started, per attempt').record(waited);
    const ran = ctx.metricMeter.createHistogram(ActivityMetric.duration, 'float', 's', 'time an attempt ran, by outcome');
    try {
      const out = await next(input);
      ran.record((Date.now() - started) / 1000, { outcome: 'ok' });
      return out;
    } catch (err) {
      ran.record((Date.now() - started) / 1000, { outcome: ctx.cancellationSignal.aborted ? 'cancelled' : 'failed' });
      throw err;
    }
  }
}
