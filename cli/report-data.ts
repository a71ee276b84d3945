// Gathers a report's facts: from a run's workflow history (any run, any status), or from a version's
// record and manifest in the store (a promoted or kept version, after Temporal has forgotten its run).
import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { optionalTsToDate, type Timestamp } from '@temporalio/common/lib/time';
import type { Config } from '../lib/config';
import { ErrorCode, TtdError } from '../lib/errors';
import { listModels, readModel, resolveRef } from '../lib/registry';
import type { ReportData, StageTiming } from '../lib/report';
import type { GateResult, ParityRuntimeReport, RunResult } from '../lib/results';
import { getBlob, getJsonBlob, type ObjectStore } from '../lib/store';
import type { Spec } from '../lib/spec';

const EventType = temporal.api.enums.v1.EventType;
type Payloads = temporal.api.common.v1.IPayloads | null | undefined;

const decode = <T>(payloads: Payloads): T | undefined => {
  const p = payloads?.payloads?.[0];
  return p ? defaultPayloadConverter.fromPayload<T>(p) : undefined;
};
const iso = (ts: Timestamp | null | undefined) => optionalTsToDate(ts)?.toISOString() ?? null;

/** The Temporal UI's page of a run, when the UI's address is known. */
export function temporalUrlFor(config: Config, runId: string): string | null {
  return config.temporalUi
    ? `${config.temporalUi}/namespaces/${encodeURIComponent(config.temporalNamespace)}/workflows/${encodeURIComponent(runId)}`
    : null;
}

/** What the pipeline's activities returned, by activity type (the last completion of each). */
interface StageResults {
  train?: { losses: number[]; epochsCompleted: number; rows: number };
  optimize?: {
    irBeforeDigest: string;
    irAfterDigest: string;
    nodeTotalBefore: number;
    nodeTotalAfter: number;
    maxAbsError: number | null;
  };
  checkFusion?: {
    groups: { kind: string; ops: string[] }[];
    unfusedPointwise: string[];
    flags: Record<string, unknown>;
    torchVersion: string;
    maxAbsError: number | null;
  };
  checkParity?: { runtimes: ParityRuntimeReport[] };
}

/** A run's report from its workflow history; undefined when Temporal does not know the run. */
export async function reportFromHistory(
  client: Client,
  store: ObjectStore,
  config: Config,
  runId: string,
): Promise<ReportData | undefined> {
  const handle = client.workflow.getHandle(runId);
  let history;
  let desc;
  try {
    desc = await handle.describe();
    history = await handle.fetchHistory();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
  const scheduled = new Map<string, { type: string; at: string | null }>();
  const stages: StageResults = {};
  const derived: StageTiming[] = [];
  let input: { spec: Spec; actor: string; trigger: string; commit: string | null } | undefined;
  let result: RunResult | undefined;
  let approval: ReportData['approval'] = null;
  for (const e of history.events ?? []) {
    const id = String(e.eventId);
    if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) {
      input = decode(e.workflowExecutionStartedEventAttributes?.input);
    } else if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) {
      const type = e.activityTaskScheduledEventAttributes?.activityType?.name ?? '';
      scheduled.set(id, { type, at: iso(e.eventTime) });
      if (type === 'promoteModel')
        approval = decode<{ approval?: ReportData['approval'] }>(e.activityTaskScheduledEventAttributes?.input)?.approval ?? null;
    } else if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
      const a = e.activityTaskCompletedEventAttributes;
      const s = scheduled.get(String(a?.scheduledEventId));
      if (!s) continue;
      (stages as Record<string, unknown>)[s.type] = decode(a?.result);
      const end = iso(e.eventTime);
      if (s.at && end) derived.push({ stage: s.type, ms: Date.parse(end) - Date.parse(s.at) });
    } else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) {
      result = decode(e.workflowExecutionCompletedEventAttributes?.result);
    }
  }
  const spec = input?.spec;
  const cached = new Set(result?.cached ?? []);
  const optimize = stages.optimize;
  return {
    runId,
    model: result?.model ?? spec?.name ?? String(desc.memo?.model ?? ''),
    status: result?.status ?? desc.status.name.toLowerCase(),
    version: result?.version ?? null,
    digest: result?.digest ?? null,
    alias: result?.alias ?? null,
    trigger: result?.trigger ?? input?.trigger ?? null,
    commit: result?.commit ?? input?.commit ?? null,
    actor: input?.actor ?? null,
    startedAt: desc.startTime.toISOString(),
    closedAt: desc.closeTime?.toISOString() ?? null,
    approval,
    attempts: result?.training ?? null,
    gates: result?.gates ?? [],
    timings: result
      ? Object.entries(result.timings).map(([stage, ms]) => ({ stage, ms, ...(cached.has(stage) ? { cached: true } : {}) }))
      : derived,
    training: stages.train ? { losses: stages.train.losses, epochs: stages.train.epochsCompleted, rows: stages.train.rows } : null,
    optimize: optimize
      ? {
          method: spec?.optimize.method ?? 'freeze',
          irBefore: await text(store, optimize.irBeforeDigest),
          irAfter: await text(store, optimize.irAfterDigest),
          nodeTotalBefore: optimize.nodeTotalBefore,
          nodeTotalAfter: optimize.nodeTotalAfter,
          maxAbsError: optimize.maxAbsError,
        }
      : null,
    fusion: stages.checkFusion
      ? {
          require: spec?.fusion.require ?? 'none',
          groups: stages.checkFusion.groups,
          unfusedPointwise: stages.checkFusion.unfusedPointwise,
          flags: stages.checkFusion.flags,
          torchVersion: stages.checkFusion.torchVersion,
          maxAbsError: stages.checkFusion.maxAbsError,
        }
      : null,
    parity: stages.checkParity
      ? { atol: spec?.parity.atol ?? null, rtol: spec?.parity.rtol ?? null, runtimes: stages.checkParity.runtimes }
      : null,
    temporalUrl: temporalUrlFor(config, runId),
    source: 'temporal',
    generatedAt: new Date().toISOString(),
  };
}

/** The parts of a version record and manifest a report reads. */
interface VersionRecord {
  runId: string;
  actor: string;
  trigger: string | null;
  commit: string | null;
  manifest: string;
  gates: GateResult[];
  parity: { runtimes: ParityRuntimeReport[]; atol: number; rtol: number } | null;
  timings?: Record<string, number>;
  cached?: string[];
  approval?: { by: string; reason: string | null } | null;
}
interface Manifest {
  files: Record<string, string>;
  spec?: Spec;
  reports: {
    training?: { losses: number[]; epochs: number; rows: number };
    optimize?: { method: string; node_total_before: number; node_total_after: number; max_abs_error: number | null };
    fusion?: {
      require: string;
      groups: { kind: string; ops: string[] }[];
      unfused_pointwise: string[];
      flags: Record<string, unknown>;
      torch_version: string;
      max_abs_error: number | null;
    };
  };
}

/** A version's report from the store alone: its version record and manifest. */
export async function reportFromStore(store: ObjectStore, config: Config, model: string, version: number): Promise<ReportData> {
  const { state, version: v } = await resolveRef(store, { model, version });
  const record = await getJsonBlob<VersionRecord>(store, v.record);
  const manifest = await getJsonBlob<Manifest>(store, record.manifest);
  const r = manifest.reports;
  const aliases = Object.entries(state.aliases).filter(([, a]) => a.version === version);
  const cached = new Set(record.cached ?? []);
  return {
    runId: v.runId,
    model,
    status: aliases.length ? 'promoted' : 'registered',
    version,
    digest: v.digest,
    alias: aliases[0]?.[0] ?? null,
    trigger: record.trigger,
    commit: record.commit,
    actor: record.actor,
    startedAt: null,
    closedAt: v.createdAt,
    approval: record.approval ?? null,
    attempts: null,
    gates: record.gates,
    timings: Object.entries(record.timings ?? {}).map(([stage, ms]) => ({ stage, ms, ...(cached.has(stage) ? { cached: true } : {}) })),
    training: r.training ? { losses: r.training.losses, epochs: r.training.epochs, rows: r.training.rows } : null,
    optimize: r.optimize
      ? {
          method: r.optimize.method,
          irBefore: await text(store, manifest.files.irBefore),
          irAfter: await text(store, manifest.files.irAfter),
          nodeTotalBefore: r.optimize.node_total_before,
          nodeTotalAfter: r.optimize.node_total_after,
          maxAbsError: r.optimize.max_abs_error,
        }
      : null,
    fusion: r.fusion
      ? {
          require: r.fusion.require,
          groups: r.fusion.groups,
          unfusedPointwise: r.fusion.unfused_pointwise,
          flags: r.fusion.flags,
          torchVersion: r.fusion.torch_version,
          maxAbsError: r.fusion.max_abs_error,
        }
      : null,
    parity: record.parity ? { atol: record.parity.atol, rtol: record.parity.rtol, runtimes: record.parity.runtimes } : null,
    temporalUrl: temporalUrlFor(config, v.runId),
    source: 'store',
    generatedAt: new Date().toISOString(),
  };
}

/** The version a run registered, looked up in the registry (for a run Temporal no longer knows). */
export async function versionOfRun(store: ObjectStore, runId: string): Promise<{ model: string; version: number } | undefined> {
  for (const model of await listModels(store)) {
    const found = (await readModel(store, model))?.state.versions.find((v) => v.runId === runId);
    if (found) return { model, version: found.version };
  }
  return undefined;
}

/** A run's report: from Temporal when it knows the run, else from the store if the run registered a version. */
export async function reportForRun(client: Client | undefined, store: ObjectStore, config: Config, runId: string): Promise<ReportData> {
  const fromHistory = client ? await reportFromHistory(client, store, config, runId) : undefined;
  if (fromHistory) return fromHistory;
  const version = await versionOfRun(store, runId);
  if (version) return reportFromStore(store, config, version.model, version.version);
  throw new TtdError(
    ErrorCode.runNotFound,
    `run '${runId}' is not known to the Temporal server${client ? '' : ' (none reachable)'} and registered no version in the store ${config.store}; expected a run id from 'ttd runs'`,
  );
}

async function text(store: ObjectStore, digest: string | undefined): Promise<string | null> {
  if (!digest) return null;
  try {
    return (await getBlob(store, digest)).toString('utf8');
  } catch {
    return null;
  }
}
