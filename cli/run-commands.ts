// `ttd status`, `wait`, `cancel`, `runs` and `approve`: ask Temporal about runs; no business logic here.
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { positiveIntegerArgument } from '../lib/spec/arguments';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { exitCodeFor, type RunResult } from '../lib/contract/results';
import { approveUpdate, PIPELINE_WORKFLOW, progressQuery, type ApprovalDecision } from '../workflows/definitions';
import { failWith, printJson, printJsonOr, table, writeOut } from './output';
import { trainingBeat } from './progress';
import { printResult, watch } from './run';
import { idleQueues, type IdleQueue } from './queue-health';
import { withClient } from './temporal';

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
    await withClient(async (client) => {
      const { handle } = await describeRun(client, runId);
      await watch(handle).catch(() => undefined);
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
  /** How a completed run ended (`promoted`, `rejected`, `failed`); null while running or when it ended otherwise. */
  outcome: RunResult['status'] | null;
  startedAt: string;
  closedAt: string | null;
}

/** Recent pipeline runs, newest first. */
export async function listRuns(client: Client, opts: { model?: string; limit: number }): Promise<RunListing[]> {
  const out: RunListing[] = [];
  for await (const wf of client.workflow.list({ query: `WorkflowType = '${PIPELINE_WORKFLOW}'` })) {
    const model = String(wf.memo?.model ?? wf.workflowId.replace(/-\d{14}-[0-9a-f]{6}$/, ''));
    if (opts.model && model !== opts.model) continue;
    out.push({
      runId: wf.workflowId,
      model,
      trigger: String(
        wf.memo?.trigger ?? (wf.workflowId.includes('-ci-') ? 'ci' : wf.searchAttributes?.TemporalScheduledById ? 'schedule' : 'manual'),
      ),
      commit: (wf.memo?.commit as string | null) ?? null,
      status: wf.status.name.toLowerCase(),
      outcome: null,
      startedAt: wf.startTime.toISOString(),
      closedAt: wf.closeTime?.toISOString() ?? null,
    });
    if (out.length >= opts.limit) break;
  }
  // A completed run's result is its last history event: one short read each, side by side.
  await Promise.all(
    out
      .filter((r) => r.status === 'completed')
      .map(async (r) => {
        const result = (await client.workflow
          .getHandle(r.runId)
          .result()
          .catch(() => undefined)) as RunResult | undefined;
        r.outcome = result?.status ?? null;
      }),
  );
  return out;
}

/** `ttd runs [--model NAME] [--json]`: recent runs, newest first. */
export async function runsCommand(opts: { model?: string; json?: boolean; limit?: string }): Promise<void> {
  const json = Boolean(opts.json);
  try {
    const limit = positiveIntegerArgument('--limit', opts.limit ?? '50');
    const rows = await withClient((client) => listRuns(client, { model: opts.model, limit }));
    if (json) return printJson({ runs: rows });
    if (!rows.length) return void writeOut('no runs\n');
    writeOut(
      `${table([['run', 'model', 'trigger', 'status', 'started'], ...rows.map((r) => [r.runId, r.model, r.trigger, r.outcome ?? r.status, r.startedAt])], '')}\n`,
    );
  } catch (err) {
    failWith(err, json);
  }
}

/** `ttd approve RUN --by NAME [--reject --reason TEXT]`: answers a run waiting for approval (a Workflow Update). */
export async function approveCommand(
  runId: string,
  opts: { by?: string; reject?: boolean; reason?: string; json?: boolean },
): Promise<void> {
  const json = Boolean(opts.json);
  try {
    if (!opts.by) throw new TtdError(ErrorCode.approvalRefused, 'ttd approve needs --by NAME: who approves is recorded in the audit trail');
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
