// Control-queue activities around promotion: the alias's current version, keeping a version unpromoted, audit records.
import { appendAudit, type AuditEntry } from '../lib/registry/audit';
import { auditReader, auditWriter } from '../lib/registry/keys';
import { repairRegistry } from '../lib/registry/repair';
import { readModel, registerVersion } from '../lib/registry/registry';
import type { ObjectStore } from '../lib/store/store';
import { writeVersionRecord } from '../lib/registry/records';
import { versionRecord, type VersionFacts } from './promote-model';

/** The version an alias points at now, or null when the model or alias does not exist yet. */
export interface CurrentAlias {
  version: number;
  digest: string;
}

/** Input of keepVersion: a candidate registered as a version without moving the alias. */
export interface KeepInput extends VersionFacts {
  reason: string;
}

/** An audit record that is not an alias move (rejected or timed-out approvals). */
export interface RecordAuditInput {
  action: 'approval_rejected' | 'approval_timeout';
  model: string;
  runId: string;
  actor: string;
  reason: string | null;
  digest?: string;
}

/** Builds the registry-record activities; audit records are signed with the key in `keysDir`. */
export function registryRecordActivities(deps: { store: ObjectStore; keysDir: string }) {
  const writer = () => auditWriter(deps.keysDir, { create: true });
  return {
    async currentAlias(input: { model: string; alias: string }): Promise<CurrentAlias | null> {
      // The first step of a promotion that compares with production: a damaged state is repaired here.
      await repairRegistry(deps.store, input.model, auditReader(deps.keysDir));
      const found = await readModel(deps.store, input.model);
      const alias = found?.state.aliases[input.alias];
      return alias ? { version: alias.version, digest: alias.digest } : null;
    },

    async keepVersion(input: KeepInput): Promise<{ version: number }> {
      await repairRegistry(deps.store, input.model, auditReader(deps.keysDir));
      const record = await writeVersionRecord(deps.store, versionRecord(input, { kept: input.reason }));
      const at = new Date().toISOString();
      const { version } = await registerVersion(deps.store, {
        model: input.model,
        digest: input.artifactDigest,
        record,
        runId: input.runId,
        at,
      });
      await appendAudit(
        deps.store,
        {
          action: 'keep',
          model: input.model,
          version,
          digest: input.artifactDigest,
          alias: null,
          previousVersion: null,
          record,
          runId: input.runId,
          actor: input.actor,
          trigger: input.trigger,
          commit: input.commit,
          checks: input.gates.map((g) => ({ gate: g.gate, passed: g.passed, code: g.code })),
          reason: input.reason,
          at,
        },
        writer(),
      );
      return { version };
    },

    async recordAudit(input: RecordAuditInput): Promise<{ seq: number }> {
      const entry: AuditEntry = {
        action: input.action,
        model: input.model,
        version: null,
        digest: input.digest ?? null,
        alias: null,
        previousVersion: null,
        record: null,
        runId: input.runId,
        actor: input.actor,
        trigger: null,
        commit: null,
        checks: [],
        reason: input.reason,
        at: new Date().toISOString(),
      };
      return { seq: (await appendAudit(deps.store, entry, writer())).seq };
    },
  };
}
