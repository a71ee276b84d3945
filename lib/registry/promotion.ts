// Promotion as one recorded step: register the version, append its signed audit record, then move the alias to
// what the record says. The record is written first, so no alias ever moves without one; every step is idempotent,
// so a retry after a failure anywhere rolls the promotion forward (docs/trust-audit.md: the exact sequence).
import { ALIAS_ACTIONS, appendAudit, latestAliasRecord, readAudit, type AppendOptions, type AuditEntry, type AuditRecord } from './audit';
import { assertName } from './names';
import { applyAliasMoves, readModel, registerVersion } from './registry';
import type { ObjectStore } from '../store/store';

/** An alias move to record and apply: the audit entry's fields but the version numbers, which come from the
 * registry (the version) and the chain (the version the alias held before). */
export interface AliasMoveRequest extends Omit<AuditEntry, 'version' | 'previousVersion' | 'alias' | 'digest' | 'record'> {
  action: 'promote' | 'manual_promote' | 'rollback';
  alias: string;
  /** The artifact's digest and the digest of its version record. */
  digest: string;
  record: string;
}

/** What a recorded move did: the version, whether it was new, what the alias held before, and its record. */
export interface AliasMoveOutcome {
  version: number;
  created: boolean;
  previousVersion: number | null;
  moved: boolean;
  audit: AuditRecord;
}

/** Registers the version (reusing the number of an equal digest), appends the signed record of the move, and
 * applies it to the alias. A failure before the record leaves the alias where it was; a failure after it is
 * repaired by calling this again with the same run id (the record is found, not appended twice). */
export async function recordAliasMove(store: ObjectStore, trust: AppendOptions, req: AliasMoveRequest): Promise<AliasMoveOutcome> {
  // Names first: a name refused after the record was appended would leave a record of a move that never happens.
  assertName('model', req.model);
  assertName('alias', req.alias);
  const { version, created } = await registerVersion(store, {
    model: req.model,
    digest: req.digest,
    record: req.record,
    runId: req.runId ?? req.action,
    at: req.at,
  });
  // An alias whose latest recorded move already put it at this version (an identical re-run): nothing moves, so
  // nothing is recorded (no "promote 1→1"); that move is applied if it is not yet, and is what this one reports.
  const latest = latestAliasRecord(await readAudit(store, req.model), req.alias);
  if (latest && latest.version === version && latest.digest === req.digest && latest.runId !== req.runId) {
    const { moved } = await applyAliasMoves(store, req.model, req.alias, [
      { seq: latest.seq, version, digest: req.digest, runId: latest.runId ?? latest.action, actor: latest.actor, at: latest.at },
    ]);
    return { version, created, previousVersion: version, moved, audit: latest };
  }
  // Where the alias stands before this move: the chain's latest move of it, else (records from before moves were
  // recorded first) the registry's.
  const before = (await readModel(store, req.model))?.state.aliases[req.alias]?.version ?? null;
  const audit = await appendAudit(
    store,
    (records) => ({ ...req, version, previousVersion: latestAliasRecord(records, req.alias)?.version ?? before }),
    trust,
  );
  // Every recorded move of this alias up to this one, so that one promotion also applies a concurrent one recorded
  // just before it (whose own roll-forward then finds nothing left to do).
  const moves = (await readAudit(store, req.model))
    .filter(
      (r) => r.seq <= audit.seq && r.alias === req.alias && ALIAS_ACTIONS.includes(r.action) && r.version !== null && r.digest !== null,
    )
    .map((r) => ({ seq: r.seq, version: r.version!, digest: r.digest!, runId: r.runId ?? r.action, actor: r.actor, at: r.at }));
  const { moved } = await applyAliasMoves(store, req.model, req.alias, moves);
  return { version, created, previousVersion: audit.previousVersion, moved, audit };
}
