// `ttd status`, `wait`, `cancel`, `runs` and `approve`: ask Temporal about runs; no business logic here.
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import {
  boundedTextArgument,
  choiceArgument,
  commitArgument,
  positiveIntegerArgument,
  runIdArgument,
  sinceArgument,
} from '../lib/spec/arguments';
import { assertName } from '../lib/registry/names';
import { OUTCOMES, SEARCH_ATTRIBUTES as SA } from '../lib/contract/search-attributes';
import { runsQuery, type RunFilter } from '../temporal/run-queries';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { exitCodeFor, type RunResult } from '../lib/contract/results';
import { approveUpdate, PIPELINE_WORKFLOW, progressQuery, type ApprovalDecision } from '../workflows/definitions';
import { failWith, printJson, printJsonOr, table, writeOut } from './output';
import { trainingBeat } from './progress';
import { printResult, watch } from './run';
import { idleQueues, type IdleQueue } from './queue-health';
import { checkSearchAttributes, serverWatchdog, withClient } from './temporal';
import { serverAddress } from '../temporal/config';

/** How long `ttd status` waits for a run's progress query. */
const QUERY_DEADLINE_MS = 5_000;
import { terminalLine } from '../render/terminal';

/** What `ttd status` reports while a run is going, or the finished result. */
export type RunStatusView =
  | {
      runId: string;
      status: 'running' | 'awaiting_approval';
      stage: string | null;
      progress: { epoch: number; epochs: number; loss: number | null };
      /** Queues the run waits on that no worker has polled lately, each with the command that starts one. */
      idleQueues: IdleQueue[];
    }
  | (Omit<RunResult, 'status'> & { status: RunResult['status'] | 'cancelled' });

async function describeRun(client: Client, runId: string): Promise<{ handle: WorkflowHandle; status: string }> {
  const handle = client.workflow.getHandle(runId);
  try {
    const desc = await handle.describe();
    return { handle, status: desc.status.name };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new TtdError(ErrorCode.runNotFound, `run '${terminalLine(runId)}' does not exist on this server`);
    throw err;
  }
}

/** The current view of a run: progress while it runs, its result once it has finished. */
export async function runView(client: Client, runId: string): Promise<RunStatusView> {
  const { handle, status } = await describeRun(client, runId);
  if (status === 'RUNNING') {
    const idle = await idleQueues(client, runId);
    // A query needs a workflow worker: with none polling, it would wait out the RPC deadline for nothing.
    const progress = idle.some((q) => q.waitingFor === 'workflow task')
      ? undefined
      : await client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query(progressQuery)).catch(() => undefined);
    const beat = await trainingBeat(handle);
    const losses = beat && beat.losses.length > (progress?.losses.length ?? 0) ? beat.losses : (progress?.losses ?? []);
    const epoch = losses.length;
    const loss = losses[losses.length - 1] ?? null;
    return {
      runId,
      status: progress?.status ?? 'running',
      stage: progress?.stage ?? null,
      progress: { epoch, epochs: progress?.epochs ?? 0, loss },
      idleQueues: idle,
    };
  }
  if (status === 'COMPLETED') return (await handle.result()) as RunResult;
  // Cancelled, terminated or failed outside our code: no result, so the memo tells what the run was.
  const { memo } = await handle.describe();
  return {
    status: status === 'CANCELLED' ? 'cancelled' : 'failed',
    runId,
    model: String(memo?.model ?? ''),
    version: null,
    digest: null,
    alias: null,
    gates: [],
    timings: {},
    trigger: (memo?.trigger as RunResult['trigger']) ?? 'manual',
    commit: (memo?.commit as string | null) ?? null,
  };
}

/** `ttd status RUN [--json]`. */
export async function statusCommand(runId: string, opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    runIdArgument(runId);
    const view = await withClient((client) => runView(client, runId));
    if (json) return printJson(view);
    if (view.status === 'running' || view.status === 'awaiting_approval') {
      const p = (view as { progress: { epoch: number; epochs: number; loss: number | null } }).progress;
      const stage = (view as { stage: string | null }).stage;
      writeOut(
        `${terminalLine(runId)}: ${terminalLine(view.status)}${stage ? `, stage ${terminalLine(stage)}` : ''}${p.epoch ? `, epoch ${p.epoch}/${p.epochs} loss ${p.loss?.toFixed(4)}` : ''}\n`,
      );
      for (const q of (view as { idleQueues: IdleQueue[] }).idleQueues) writeOut(`${idleLine(q)}\n`);
    } else {
      writeOut(`${terminalLine(runId)}: ${terminalLine(view.status)}\n`);
    }
  } catch (err) {
    failWith(err, json);
  }
}

/** One idle queue as a line for people: what waits, since when no worker polled, and what starts one. */
function idleLine(q: IdleQueue): string {
  const polled = q.lastPolledAt ? `no worker has polled it since ${q.lastPolledAt} (all busy, or gone)` : 'no worker polls it';
  return `  waiting ${q.waitingSeconds} s for a worker: ${terminalLine(q.waitingFor)} on task queue '${terminalLine(q.queue)}', and ${polled}; start one on a host of the run's store: ${terminalLine(q.command)}`;
}

/** `ttd wait RUN [--json]`: blocks until the run ends; exits like `ttd run`. */
export async function waitCommand(runId: string, opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    runIdArgument(runId);
    await withClient(async (client, config) => {
      const { handle } = await describeRun(client, runId);
      // A server that goes away while the run is followed is said so within about 20 s, naming it.
      const watchdog = serverWatchdog(client, serverAddress(config), runId);
      try {
        await Promise.race([watch(handle).catch(() => undefined), watchdog.lost]);
      } finally {
        watchdog.stop();
      }
      const view = await runView(client, runId);
      if (json) printJson(view);
      else if ('gates' in view && view.status !== 'cancelled' && view.status !== 'failed') printResult(view as RunResult);
      else writeOut(`${terminalLine(runId)}: ${terminalLine(view.status)}\n`);
      process.exitCode = view.status === 'cancelled' ? 2 : exitCodeFor(view.status as RunResult['status']);
    });
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd cancel RUN`: cancels the run; its torch processes are ended with their process group. */
export async function cancelCommand(runId: string, opts: { json?: boolean }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    runIdArgument(runId);
    await withClient(async (client) => {
      const { handle, status } = await describeRun(client, runId);
      if (status !== 'RUNNING')
        throw new TtdError(ErrorCode.runNotFound, `run '${terminalLine(runId)}' is not running (it is ${status.toLowerCase()})`);
      await handle.cancel();
      printJsonOr(json, { runId, status: 'cancelling' }, `${terminalLine(runId)}: cancellation requested`);
    });
  } catch (err) {
    failWith(err, json);
  }
}

/** One line of `ttd runs` (and of the dashboard's runs page). */
export interface RunListing {
  runId: string;
  model: string;
  trigger: string;
  commit: string | null;
  status: string;
  /** How a completed run ended (`promoted`, `rejected`, `failed`), or `cancelled`; null while running or when it ended
   * otherwise. */
  outcome: RunResult['status'] | 'cancelled' | null;
  /** The version a promoted run created, and the stored artifact's digest, from the run's search attributes; null for
   * a run that has none (not promoted, not stored, or started before ttd set them). */
  version: number | null;
  digest: string | null;
  startedAt: string;
  closedAt: string | null;
}

const OUTCOME_VALUES = new Set<string>(OUTCOMES);

/** Pipeline runs that match the filter, newest first: found by the visibility query `query` (temporal/run-queries.ts). */
export async function listRuns(client: Client, opts: RunFilter & { limit: number }): Promise<RunListing[]> {
  const out: RunListing[] = [];
  const query = runsQuery(PIPELINE_WORKFLOW, opts);
  for await (const wf of client.workflow.list({ query })) {
    const sa = wf.searchAttributes ?? {};
    const first = (name: string) => (sa[name] as unknown[] | undefined)?.[0];
    const model = String(first(SA.model.name) ?? wf.memo?.model ?? wf.workflowId.replace(/-\d{14}-[0-9a-f]{6}$/, ''));
    const outcome = first(SA.outcome.name);
    const version = first(SA.version.name);
    const digest = first(SA.digest.name);
    out.push({
      runId: wf.workflowId,
      model,
      trigger: String(
        first(SA.trigger.name) ??
          wf.memo?.trigger ??
          (wf.workflowId.includes('-ci-') ? 'ci' : wf.searchAttributes?.TemporalScheduledById ? 'schedule' : 'manual'),
      ),
      commit: ((first(SA.commit.name) ?? wf.memo?.commit) as string | null | undefined) ?? null,
      status: wf.status.name.toLowerCase(),
      outcome: typeof outcome === 'string' && OUTCOME_VALUES.has(outcome) ? (outcome as RunListing['outcome']) : null,
      version: typeof version === 'number' ? version : null,
      digest: typeof digest === 'string' ? digest : null,
      startedAt: wf.startTime.toISOString(),
      closedAt: wf.closeTime?.toISOString() ?? null,
    });
    if (out.length >= opts.limit) break;
  }
  // A completed run started before the search attributes has no TtdOutcome: its result is its last history event, one
  // short read each, side by side.
  await Promise.all(
    out
      .filter((r) => r.status === 'completed' && r.outcome === null)
      .map(async (r) => {
        const result = (await client.workflow
          .getHandle(r.runId)
          .result()
          .catch(() => undefined)) as RunResult | undefined;
        r.outcome = result?.status ?? null;
        r.version ??= result?.version ?? null;
        r.digest ??= result?.digest ?? null;
      }),
  );
  return out;
}

/** `ttd runs [--model NAME] [--outcome O] [--since T] [--commit SHA] [--limit N] [--json]`: runs newest first, found
 * by a visibility query that `--query` prints (the same works in `temporal workflow list --query` and the UI). */
export async function runsCommand(opts: {
  model?: string;
  outcome?: string;
  since?: string;
  commit?: string;
  json?: boolean;
  limit?: string;
  query?: boolean;
}): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const limit = positiveIntegerArgument('--limit', opts.limit ?? '50');
    const filter: RunFilter = {
      ...(opts.model !== undefined ? { model: assertName('model', opts.model) } : {}),
      ...(opts.outcome !== undefined ? { outcome: choiceArgument('--outcome', opts.outcome, [...OUTCOMES, 'running'] as const) } : {}),
      ...(opts.since !== undefined ? { since: sinceArgument('--since', opts.since) } : {}),
      ...(opts.commit !== undefined ? { commit: commitArgument('--commit', opts.commit) } : {}),
    };
    const query = runsQuery(PIPELINE_WORKFLOW, filter);
    if (opts.query) return void printJsonOr(json, { query }, query);
    const rows = await withClient(async (client, config) => {
      if (Object.keys(filter).length) await checkSearchAttributes(client, config); // a query on a missing one fails
      return listRuns(client, { ...filter, limit });
    });
    if (json) return printJson({ runs: rows, query });
    if (!rows.length) return void writeOut('no runs\n');
    writeOut(
      `${table(
        [
          ['run', 'model', 'trigger', 'status', 'version', 'started'],
          ...rows.map((r) => [
            r.runId,
            r.model,
            r.trigger,
            r.outcome ?? r.status,
            r.version === null ? '' : String(r.version),
            r.startedAt,
          ]),
        ],
        '',
      )}\n`,
    );
  } catch (err) {
    failWith(err, json);
  }
}

/** The longest approver name (as TTD_ACTOR's) and reason an approval records. */
const APPROVER_MAX = 128;
const REASON_MAX = 4096;

/** `ttd approve RUN --by NAME [--reject --reason TEXT]`: answers a run waiting for approval (a Workflow Update). */
export async function approveCommand(
  runId: string,
  opts: { by?: string; reject?: boolean; reason?: string; json?: boolean },
): Promise<void> {
  const json = Boolean(opts.json);
  try {
    runIdArgument(runId);
    if (!opts.by) throw new TtdError(ErrorCode.approvalRefused, 'ttd approve needs --by NAME: who approves is recorded in the audit trail');
    boundedTextArgument('--by', opts.by, APPROVER_MAX);
    if (opts.reason !== undefined) boundedTextArgument('--reason', opts.reason, REASON_MAX);
    const decision: ApprovalDecision = { approve: !opts.reject, by: opts.by, ...(opts.reason ? { reason: opts.reason } : {}) };
    await withClient(async (client) => {
      const { handle, status } = await describeRun(client, runId);
      if (status !== 'RUNNING')
        throw new TtdError(ErrorCode.approvalRefused, `run '${runId}' is not waiting for approval: it is ${status.toLowerCase()}`);
      try {
        await handle.executeUpdate(approveUpdate, { args: [decision] });
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError)
          throw new TtdError(ErrorCode.approvalRefused, (err.cause as Error)?.message ?? err.message);
        throw err;
      }
      printJsonOr(
        json,
        { runId, ...decision },
        `${terminalLine(runId)}: ${decision.approve ? 'approved' : 'rejected'} by ${terminalLine(decision.by)}`,
      );
    });
  } catch (err) {
    failWith(err, json);
  }
}
