// The promote stage: registers the version, appends the signed audit record, then moves the alias (lib/registry/promotion.ts).
import { auditReader, auditWriter } from '../lib/registry/keys';
import { repairRegistry } from '../lib/registry/repair';
import { recordAliasMove } from '../lib/registry/promotion';
import type { GateResult } from '../lib/contract/results';
import { writeVersionRecord, type VersionRecord } from '../lib/registry/records';
import type { ObjectStore } from '../lib/store/store';

/** What a version record states (lib/registry/records.ts: VersionRecord), as the workflow gives it. */
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
  /** The version's model signature and provenance (activities/sign-version.ts), once signed. */
  signed?: { signature: string; provenance: string; keyId: string };
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
    ...(f.signed ? { signature: f.signed.signature, provenance: f.signed.provenance, signingKey: f.signed.keyId } : {}),
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

/** Builds the promote activity; records are signed with the key in `keysDir` (created on first use). */
export function promoteActivity(deps: { store: ObjectStore; keysDir: string }) {
  return async function promoteModel(input: PromoteInput): Promise<PromoteOutput> {
    // A damaged registry state is rebuilt from the audit chain first (or the promotion fails with registry_damaged).
    await repairRegistry(deps.store, input.model, auditReader(deps.keysDir));
    const recordDigest = await writeVersionRecord(deps.store, versionRecord(input, { approval: input.approval ?? null }));
    // The record first, then the alias: a failure in between is rolled forward by Temporal's retry of this activity.
    const outcome = await recordAliasMove(deps.store, auditWriter(deps.keysDir, { create: true }), {
      action: 'promote',
      model: input.model,
      digest: input.artifactDigest,
      alias: input.alias,
      record: recordDigest,
      runId: input.runId,
      actor: input.actor,
      trigger: input.trigger,
      commit: input.commit,
      checks: input.gates.map((g) => ({ gate: g.gate, passed: g.passed, code: g.code })),
      approvedBy: input.approval?.by ?? null,
      reason: input.approval?.reason ?? null,
      at: new Date().toISOString(),
    });
    return {
      version: outcome.version,
      previousVersion: outcome.previousVersion,
      created: outcome.created,
      auditSeq: outcome.audit.seq,
      recordDigest,
    };
  };
}
