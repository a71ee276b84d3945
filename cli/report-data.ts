// Gathers a report's facts: from a run's workflow history (any run, any status), or from a version's
// record and manifest in the store (a promoted or kept version, after Temporal has forgotten its run).
import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
// The SDK's own protobuf-timestamp conversion (Long seconds and nanos), which its public packages do not export.
// eslint-disable-next-line @typescript-eslint/no-restricted-imports
import { optionalTsToDate, type Timestamp } from '@temporalio/common/lib/time';
import type { TemporalConfig } from '../temporal/config';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { listModels, readModel, resolveRef } from '../lib/registry/registry';
import type { ReportData, StageTiming } from '../lib/parity/report';
import { ParityResult, RunResult } from '../lib/contract/results';
import { TorchStages } from '../lib/contract/stages';
import { readManifest, readVersionRecord, StageOutputs, type Manifest } from '../lib/registry/records';
import type { ControlActivities, StageRun, TorchActivities } from '../workers';
import { getBlob, type ObjectStore } from '../lib/store/store';
import { auditReader } from '../lib/registry/keys';
import { loadModelCard, type ModelCard } from '../lib/registry/model-card';
import type { Spec } from '../lib/spec/spec';

const EventType = temporal.api.enums.v1.EventType;
type Payloads = temporal.api.common.v1.IPayloads | null | undefined;

const decode = <T>(payloads: Payloads): T | undefined => {
  const p = payloads?.payloads?.[0];
  return p ? defaultPayloadConverter.fromPayload<T>(p) : undefined;
};
const iso = (ts: Timestamp | null | undefined) => optionalTsToDate(ts)?.toISOString() ?? null;

/** The Temporal UI's page of a run, when the UI's address is known. */
export function temporalUrlFor(config: TemporalConfig, runId: string): string | null {
  return config.temporalUi
    ? `${config.temporalUi}/namespaces/${encodeURIComponent(config.temporalNamespace)}/workflows/${encodeURIComponent(runId)}`
    : null;
}

// The activities whose results a report reads, by their registered names (a rename fails to compile here).
type ActivityName = keyof TorchActivities | keyof ControlActivities;
const activity = <K extends ActivityName>(name: K): K => name;
/** Which build stage (lib/registry/records.ts: StageOutputs) each torch activity's output is: the op it declares. */
const STAGE_OF: Record<string, string> = {
  [activity('train')]: 'train',
  ...Object.fromEntries(Object.entries(TorchStages).map(([name, stage]) => [name, stage.op])),
};

/** A run's report from its workflow history; undefined when Temporal does not know the run. */
export async function reportFromHistory(
  client: Client,
  store: ObjectStore,
  config: TemporalConfig,
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
  const outputs: Record<string, unknown> = {};
  let parity: ParityResult | undefined;
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
      if (type === activity('promoteModel'))
        approval = decode<{ approval?: ReportData['approval'] }>(e.activityTaskScheduledEventAttributes?.input)?.approval ?? null;
    } else if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
      const a = e.activityTaskCompletedEventAttributes;
      const s = scheduled.get(String(a?.scheduledEventId));
      if (!s) continue;
      const run = decode<StageRun<unknown>>(a?.result);
      const stage = STAGE_OF[s.type];
      if (stage) outputs[stage] = run?.output;
      if (s.type === activity('checkParity')) parity = ParityResult.safeParse(run?.output).data;
      const end = iso(e.eventTime);
      if (s.at && end) derived.push({ stage: s.type, ms: Date.parse(end) - Date.parse(s.at) });
    } else if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) {
      result = RunResult.safeParse(decode(e.workflowExecutionCompletedEventAttributes?.result)).data;
    }
  }
  const spec = input?.spec;
  const cached = new Set(result?.cached ?? []);
  // Histories of runs from before the stage contract hold other shapes: their stage parts are left out, not guessed.
  const stages = StageOutputs.safeParse(outputs).data ?? {};
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
    ...(await stageParts(store, stages)),
    stages,
    parity: parity ? { atol: spec?.parity.atol ?? null, rtol: spec?.parity.rtol ?? null, runtimes: parity.runtimes } : null,
    ...(await cardOfRun(store, config, result?.model ?? spec?.name, result?.version ?? null, result?.digest ?? null)),
    temporalUrl: temporalUrlFor(config, runId),
    source: 'temporal',
    generatedAt: new Date().toISOString(),
  };
}

/** The training, optimize and fusion parts of a report, from the build stages' outputs. */
async function stageParts(store: ObjectStore, stages: StageOutputs): Promise<Pick<ReportData, 'training' | 'optimize' | 'fusion'>> {
  const { train, optimize, fusion } = stages;
  return {
    training: train?.status === 'ok' ? { losses: train.losses, epochs: train.epochs_completed, rows: train.rows } : null,
    optimize: optimize
      ? {
          method: optimize.method,
          irBefore: await text(store, optimize.files.ir_before),
          irAfter: await text(store, optimize.files.ir_after),
          nodeTotalBefore: optimize.node_total_before,
          nodeTotalAfter: optimize.node_total_after,
          maxAbsError: optimize.max_abs_error,
        }
      : null,
    fusion: fusion
      ? {
          require: fusion.require,
          groups: fusion.groups,
          unfusedPointwise: fusion.unfused_pointwise,
          flags: fusion.flags,
          torchVersion: fusion.torch_version,
          maxAbsError: fusion.max_abs_error,
          ...(fusion.build ? { build: fusion.build } : {}),
          ...(fusion.fuses !== undefined ? { fuses: fusion.fuses } : {}),
          ...(fusion.compared !== undefined ? { compared: fusion.compared } : {}),
        }
      : null,
  };
}

/** The same parts from a manifest written before the stage contract (ttd-manifest/1). */
async function legacyParts(
  store: ObjectStore,
  m: Extract<Manifest, { format: 'ttd-manifest/1' }>,
): Promise<Pick<ReportData, 'training' | 'optimize' | 'fusion'>> {
  const r = m.reports;
  return {
    training: r.training ? { losses: r.training.losses, epochs: r.training.epochs, rows: r.training.rows } : null,
    optimize: r.optimize
      ? {
          method: r.optimize.method,
          irBefore: await text(store, m.files.irBefore),
          irAfter: await text(store, m.files.irAfter),
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
  };
}

/** A version's report from the store alone: its version record and manifest. */
export async function reportFromStore(store: ObjectStore, config: TemporalConfig, model: string, version: number): Promise<ReportData> {
  const { state, version: v } = await resolveRef(store, { model, version });
  const record = await readVersionRecord(store, v.record);
  const manifest = await readManifest(store, record.manifest);
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
    ...(manifest.format === 'ttd-manifest/2' ? await stageParts(store, manifest.stages) : await legacyParts(store, manifest)),
    ...(manifest.format === 'ttd-manifest/2' ? { stages: manifest.stages } : {}),
    parity: record.parity ? { atol: record.parity.atol, rtol: record.parity.rtol, runtimes: record.parity.runtimes } : null,
    ...(await cardOfRun(store, config, model, version, v.digest)),
    temporalUrl: temporalUrlFor(config, v.runId),
    source: 'store',
    generatedAt: new Date().toISOString(),
  };
}

/** The card of the version a run registered (or promoted again: the same bytes keep their version), for its report;
 * nothing when it registered none. The version must have the digest the run's result names, so a history cannot make
 * the report show some other version. A card the store cannot give (a damaged record) is left out rather than failing
 * the whole report: `ttd card` names the problem. */
async function cardOfRun(
  store: ObjectStore,
  config: TemporalConfig,
  model: string | undefined,
  version: number | null,
  digest: string | null,
): Promise<{ card?: ModelCard }> {
  if (!model || version === null || !digest) return {};
  try {
    const { state, version: v } = await resolveRef(store, { model, version });
    if (v.digest !== digest) return {};
    return { card: await loadModelCard(store, state, v, auditReader(config.keysDir)) };
  } catch {
    return {};
  }
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
export async function reportForRun(
  client: Client | undefined,
  store: ObjectStore,
  config: TemporalConfig,
  runId: string,
  /** Why there is no client, for the message. */
  noClient?: string,
): Promise<ReportData> {
  const fromHistory = client ? await reportFromHistory(client, store, config, runId) : undefined;
  if (fromHistory) return fromHistory;
  const version = await versionOfRun(store, runId);
  if (version) return reportFromStore(store, config, version.model, version.version);
  throw new TtdError(
    ErrorCode.runNotFound,
    client
      ? `run '${runId}' is not known to the Temporal server and registered no version in the store ${config.store}; expected a run id from 'ttd runs'`
      : `run '${runId}' registered no version in the store ${config.store}, and no Temporal server was asked about it (${noClient ?? 'none is reachable'}); expected a run id from 'ttd runs'`,
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
