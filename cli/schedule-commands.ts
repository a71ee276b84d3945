// `ttd schedule ...`: scheduled retraining on Temporal Schedules. Runs it starts carry trigger `schedule`.
import { ScheduleNotFoundError, type Client, type ScheduleOptionsAction, type ScheduleOverlapPolicy } from '@temporalio/client';
import { openStore } from '../lib/config';
import { loadTemporalConfig } from '../temporal/config';
import { cronArgument, intervalArgument } from '../lib/spec/arguments';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { queuesForRun } from '../temporal/queues';
import { loadSpec, storeRunSource, runEnvironmentId, withEnvironment } from '../lib/spec/spec';
import { terminalLine } from '../render/terminal';
import { PIPELINE_WORKFLOW, type PipelineInput } from '../workflows/definitions';
import { pipelineStartOptions } from '../workflows/start-options';
import { failWith, printJson, printJsonOr, table, writeOut } from './output';
import { preflight } from './preflight';
import { checkSearchAttributes, withClient } from './temporal';

const OVERLAP: Record<string, ScheduleOverlapPolicy> = {
  skip: 'SKIP',
  'buffer-one': 'BUFFER_ONE',
  'buffer-all': 'BUFFER_ALL',
  'cancel-other': 'CANCEL_OTHER',
  'allow-all': 'ALLOW_ALL',
};
const ID_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function checkId(id: string): string {
  if (!ID_RE.test(id)) throw new TtdError(ErrorCode.scheduleError, `schedule id '${id}' is invalid: expected [a-z0-9][a-z0-9._-]{0,63}`);
  return id;
}

async function withSchedule<T>(id: string, fn: (client: Client) => Promise<T>): Promise<T> {
  return withClient(async (client) => {
    try {
      return await fn(client);
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) throw new TtdError(ErrorCode.scheduleError, `schedule '${id}' does not exist`);
      throw err;
    }
  });
}

/** `ttd schedule create ID SPEC (--cron EXPR | --every DURATION) [--overlap POLICY]`. */
export async function scheduleCreateCommand(
  id: string,
  specPath: string,
  opts: { cron?: string; every?: string; overlap?: string; json?: boolean },
): Promise<void> {
  const json = Boolean(opts.json);
  try {
    checkId(id);
    if (Boolean(opts.cron) === Boolean(opts.every))
      throw new TtdError(ErrorCode.scheduleError, 'give exactly one of --cron EXPR or --every DURATION (e.g. --every 1h)');
    const overlap = OVERLAP[opts.overlap ?? 'skip'];
    if (!overlap)
      throw new TtdError(ErrorCode.scheduleError, `--overlap must be one of ${Object.keys(OVERLAP).join(', ')} (got '${opts.overlap}')`);
    const when = opts.cron
      ? { cronExpressions: [cronArgument('--cron', opts.cron)] }
      : { intervals: [{ every: intervalArgument('--every', opts.every!) }] };
    const base = loadTemporalConfig();
    const read = loadSpec(specPath, base.archiveLimits);
    const config = await preflight(base, read.spec); // the schedule's torch environment
    const loaded = withEnvironment(read, config.environment);
    await withClient(async (client, temporalConfig) => {
      await checkSearchAttributes(client, temporalConfig);
      const store = openStore(config);
      // The schedule retrains the model file as it is now: its digest is fixed in the schedule's action.
      const queues = await queuesForRun(config.queuePrefix, store, config.environment, loaded.spec.device);
      const source = await storeRunSource(store, loaded);
      const input: PipelineInput = {
        spec: loaded.spec,
        specDigest: loaded.specDigest,
        ...source,
        actor: `schedule:${id}`,
        trigger: 'schedule',
        commit: null,
        queues,
        environment: runEnvironmentId(loaded, config.environment),
        ...(loaded.declared ? { declaredEnvironment: loaded.declared } : {}),
        store: store.location,
      };
      await client.schedule.create({
        scheduleId: id,
        spec: when,
        action: {
          type: 'startWorkflow',
          workflowType: PIPELINE_WORKFLOW,
          workflowId: `${loaded.spec.name}-schedule-${id}`,
          taskQueue: queues.control,
          args: [input],
          // The schedule's runs queue behind CI and manual runs, fair by model; the SDK's type leaves `priority` out of a
          // schedule's action, but its encoder sends it (the workflow also sets it on every activity of such a run).
          ...pipelineStartOptions(input),
        } as ScheduleOptionsAction,
        policies: { overlap },
        memo: { model: loaded.spec.name, spec: loaded.specPath },
      });
    });
    printJsonOr(
      json,
      { scheduleId: id, model: loaded.spec.name, overlap: opts.overlap ?? 'skip' },
      `schedule '${id}' created for '${loaded.spec.name}'`,
    );
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd schedule list [--json]`. */
export async function scheduleListCommand(opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const rows = await withClient(async (client) => {
      const out: { scheduleId: string; model: string | null; paused: boolean; nextRun: string | null }[] = [];
      for await (const s of client.schedule.list()) {
        out.push({
          scheduleId: s.scheduleId,
          model: (s.memo?.model as string) ?? null,
          paused: s.state.paused,
          nextRun: s.info.nextActionTimes[0]?.toISOString() ?? null,
        });
      }
      return out;
    });
    if (json) return printJson({ schedules: rows });
    if (!rows.length) return void writeOut('no schedules\n');
    writeOut(
      `${table([['schedule', 'model', 'paused', 'next run'], ...rows.map((r) => [r.scheduleId, r.model ?? '—', String(r.paused), r.nextRun ?? '—'])], '')}\n`,
    );
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd schedule describe ID [--json]`. */
export async function scheduleDescribeCommand(id: string, opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const d = await withSchedule(id, (client) => client.schedule.getHandle(checkId(id)).describe());
    const view = {
      scheduleId: id,
      model: (d.memo?.model as string) ?? null,
      paused: d.state.paused,
      note: d.state.note ?? null,
      overlap: d.policies.overlap,
      calendars: (d.spec.calendars ?? []).length,
      intervals: (d.spec.intervals ?? []).map((i) => i.every),
      nextRuns: d.info.nextActionTimes.map((t) => t.toISOString()),
      recentRuns: d.info.recentActions.map((a) => ({ runId: a.action.workflow.workflowId, scheduledAt: a.scheduledAt.toISOString() })),
      runningRuns: d.info.runningActions.map((a) => a.workflow.workflowId),
    };
    printJsonOr(
      json,
      view,
      `${id}: ${terminalLine(view.model)}, ${view.paused ? 'paused' : 'active'}, next ${view.nextRuns[0] ?? '—'}, ${view.recentRuns.length} recent runs`,
    );
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd schedule pause|unpause|trigger|delete ID`. */
export function scheduleActionCommand(action: 'pause' | 'unpause' | 'trigger' | 'delete') {
  return async (id: string, opts: { json?: boolean; note?: string }): Promise<void> => {
    const json = Boolean(opts.json);
    try {
      await withSchedule(id, async (client) => {
        const handle = client.schedule.getHandle(checkId(id));
        if (action === 'pause') await handle.pause(opts.note ?? 'paused with ttd');
        else if (action === 'unpause') await handle.unpause(opts.note ?? 'unpaused with ttd');
        else if (action === 'trigger') await handle.trigger();
        else await handle.delete();
      });
      printJsonOr(json, { scheduleId: id, action }, `schedule '${id}': ${action === 'trigger' ? 'triggered' : `${action}d`}`);
    } catch (err) {
      failWith(err, json);
    }
  };
}

/** `ttd schedule backfill ID --start ISO --end ISO [--overlap POLICY]`: runs the schedule's missed times. */
export async function scheduleBackfillCommand(
  id: string,
  opts: { start: string; end: string; overlap?: string; json?: boolean },
): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const start = new Date(opts.start);
    const end = new Date(opts.end);
    if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || end <= start) {
      throw new TtdError(
        ErrorCode.scheduleError,
        `--start and --end must be ISO times with start before end (got '${opts.start}', '${opts.end}')`,
      );
    }
    const overlap = OVERLAP[opts.overlap ?? 'allow-all'];
    if (!overlap) throw new TtdError(ErrorCode.scheduleError, `--overlap must be one of ${Object.keys(OVERLAP).join(', ')}`);
    await withSchedule(id, (client) => client.schedule.getHandle(checkId(id)).backfill([{ start, end, overlap }]));
    printJsonOr(
      json,
      { scheduleId: id, start: start.toISOString(), end: end.toISOString() },
      `schedule '${id}': backfilling ${start.toISOString()} … ${end.toISOString()}`,
    );
  } catch (err) {
    failWith(err, json);
  }
}
