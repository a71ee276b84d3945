// The promote stage: registers the version, moves the alias and appends the audit record.
import { appendAudit } from '../lib/audit';
import { registerAndPromote } from '../lib/registry';
import type { GateResult } from '../lib/results';
import { writeVersionRecord, type VersionRecord } from '../lib/records';
import type { ObjectStore } from '../lib/store';

/** What a version record states (lib/records.ts: VersionRecord), as the workflow gives it. */
export interface VersionFacts {
  model: string;
  artifactDigest: string;
  manifestDigest: string;
  runId: string;
  actor: string;
  trigger: string;
  commit: string | null;
  gates: GateResult[];
  parity: VersionRecord['parity'];
  /** Stage durations up to promotion, and the stages that reused cached outputs. */
  timings?: Record<string, number>;
  cached?: string[];
}

/** The version record of these facts. */
export function versionRecord(f: VersionFacts, extra: Pick<VersionRecord, 'approval' | 'kept'>): Omit<VersionRecord, 'format'> {
  return {
    model: f.model,
    artifact: f.artifactDigest,
    manifest: f.manifestDigest,
    runId: f.runId,
    actor: f.actor,
    trigger: f.trigger,
    commit: f.commit,
    gates: f.gates,
    parity: f.parity,
    ...(f.timings ? { timings: f.timings } : {}),
    ...(f.cached ? { cached: f.cached } : {}),
    ...extra,
  };
}

/** Input of the promote stage: what is promoted, by whom, and every check it passed. */
export interface PromoteInput extends VersionFacts {
  alias: string;
  /** Who approved, when the spec required approval. */
  approval?: { by: string; reason: string | null } | null;
}

/** The registered version, what the alias pointed to before and the audit record's number. */
export interface PromoteOutput {
  version: number;
  previousVersion: number | null;
  created: boolean;
  auditSeq: number;
  recordDigest: string;
}

/** Builds the promote activity. */
export function promoteActivity(deps: { store: ObjectStore }) {
  return async function promoteModel(input: PromoteInput): Promise<PromoteOutput> {
    const recordDigest = await writeVersionRecord(deps.store, versionRecord(input, { approval: input.approval ?? null }));
    const at = new Date().toISOString();
    const outcome = await registerAndPromote(deps.store, {
      model: input.model,
      digest: input.artifactDigest,
      record: recordDigest,
      alias: input.alias,
      runId: input.runId,
      actor: input.actor,
      at,
    });
    const audit = await appendAudit(deps.store, {
      action: 'promote',
      model: input.model,
      version: outcome.version,
      digest: input.artifactDigest,
      alias: input.alias,
      previousVersion: outcome.previousVersion,
      record: recordDigest,
      runId: input.runId,
      actor: input.actor,
      trigger: input.trigger,
      commit: input.commit,
      checks: input.gates.map((g) => ({ gate: g.gate, passed: g.passed, code: g.code })),
      approvedBy: input.approval?.by ?? null,
      reason: input.approval?.reason ?? null,
      at,
    });
    return {
      version: outcome.version,
      previousVersion: outcome.previousVersion,
      created: outcome.created,
      auditSeq: audit.seq,
      recordDigest,
    };
  };
}
