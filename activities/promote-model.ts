// The promote stage: registers the version, moves the alias and appends the audit record.
import { appendAudit } from '../lib/audit';
import { registerAndPromote } from '../lib/registry';
import type { GateResult } from '../lib/results';
import { putBlob, type ObjectStore } from '../lib/store';

/** What a version record states: the artifact, its manifest, the run, who, and every check. */
export interface VersionFacts {
  model: string;
  artifactDigest: string;
  manifestDigest: string;
  runId: string;
  actor: string;
  trigger: string;
  commit: string | null;
  gates: GateResult[];
  parity: unknown;
  /** Stage durations up to promotion, and the stages that reused cached outputs. */
  timings?: Record<string, number>;
  cached?: string[];
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
    const recordDigest = await writeVersionRecord(deps.store, { ...input, approval: input.approval ?? null });
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

/** Writes a version record (what was checked, by whom, for which run) as a blob. It holds no timestamp,
 * so a retried activity writes the same digest. */
export async function writeVersionRecord(store: ObjectStore, r: VersionFacts & Record<string, unknown>): Promise<string> {
  const { model, artifactDigest, manifestDigest, runId, actor, trigger, commit, gates, parity, ...extra } = r;
  const record = {
    format: 'ttd-version-record/1',
    model,
    artifact: artifactDigest,
    manifest: manifestDigest,
    runId,
    actor,
    trigger,
    commit,
    gates,
    parity,
    ...extra,
  };
  return putBlob(store, JSON.stringify(record, null, 2));
}
