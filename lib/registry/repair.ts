// A damaged registry state (registry/<model>.json cut short, or not what ttd wrote) rebuilt from the model's audit
// chain, which is signed and authoritative: every registered version a record names, every alias where the latest
// record moving it put it. Promotions call it first, so the next promotion of the model repairs its registry.
import { ErrorCode, PreconditionFailedError, TtdError } from '../contract/errors';
import { ALIAS_ACTIONS, trustedChain, VERSION_ACTIONS, type AuditRecord, type TrustOptions } from './audit';
import { readModel, registryKey, type ModelState, type ModelVersion } from './registry';
import type { ObjectStore } from '../store/store';

const REPAIR_ATTEMPTS = 5;

/** Makes a model's registry state readable before a promotion writes it: a damaged one is rebuilt from the audit chain
 * (checked as `ttd audit verify` checks it: links, signatures, anchor) and written back by compare-and-swap over the
 * damaged bytes, so two promotions repairing at once write it once. Where the chain cannot back a rebuild, a
 * registry_damaged error says how to repair it. Returns whether it repaired anything. */
export async function repairRegistry(store: ObjectStore, model: string, trust: TrustOptions): Promise<{ repaired: boolean }> {
  const key = registryKey(model);
  for (let attempt = 0; attempt < REPAIR_ATTEMPTS; attempt++) {
    let damage: string;
    try {
      await readModel(store, model);
      return { repaired: false };
    } catch (err) {
      if (!(err instanceof TtdError) || err.code !== ErrorCode.storeDamaged) throw err;
      damage = err.message.replace(/;.*$/s, '');
    }
    const damaged = await store.get(key);
    if (!damaged) continue; // removed meanwhile: read again
    const refuse = (why: string, how: string): never => {
      throw new TtdError(ErrorCode.registryDamaged, `${damage}, and it cannot be rebuilt from the audit trail: ${why}; ${how}`, {
        key,
        model,
      });
    };
    const chain = await trustedChain(store, model, trust);
    if (chain.problem) {
      refuse(
        `the chain does not verify at ${chain.problem.key} (${chain.problem.reason}) [${chain.problem.code}]`,
        `repair the chain first (ttd audit verify ${model}), or restore ${key} from a backup or an earlier version of the bucket`,
      );
    }
    if (!chain.records.some((r) => VERSION_ACTIONS.includes(r.action))) {
      refuse(
        'no audit record names a version of it',
        `restore ${key} from a backup or an earlier version of the bucket, or delete it to register the model afresh (its versions are then numbered anew)`,
      );
    }
    const state = rebuiltState(model, chain.records, refuse);
    try {
      await store.put(key, Buffer.from(JSON.stringify(state, null, 2)), { ifMatch: damaged.etag });
      return { repaired: true };
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err; // another promotion repaired it first: read again
    }
  }
  throw new Error(`could not repair the registry state of model '${model}' after ${REPAIR_ATTEMPTS} attempts (it keeps changing)`);
}

/** The registry state a verified chain states: versions by the first record naming each, aliases and their history by
 * every recorded move, in record order (as lib/registry/registry.ts applyAliasMoves applies them). */
export function rebuiltState(model: string, records: AuditRecord[], refuse: (why: string, how: string) => never): ModelState {
  const versions = new Map<number, ModelVersion>();
  const state: ModelState = { model, versions: [], aliases: {}, aliasHistory: [] };
  for (const r of records) {
    if (!VERSION_ACTIONS.includes(r.action) || r.version === null || r.digest === null) continue;
    const runId = r.runId ?? r.action;
    const known = versions.get(r.version);
    if (known && known.digest !== r.digest) {
      refuse(
        `audit records name version ${r.version} as both ${known.digest} and ${r.digest} (record ${r.seq})`,
        `restore registry/${model}.json from a backup`,
      );
    }
    if (!known) versions.set(r.version, { version: r.version, digest: r.digest, record: r.record ?? '', runId, createdAt: r.at });
    if (!r.alias || !ALIAS_ACTIONS.includes(r.action)) continue;
    const current = state.aliases[r.alias];
    state.aliases[r.alias] = { version: r.version, digest: r.digest, updatedAt: r.at, auditSeq: r.seq };
    if (current?.version === r.version) continue;
    state.aliasHistory.push({
      alias: r.alias,
      version: r.version,
      digest: r.digest,
      previousVersion: current?.version ?? null,
      at: r.at,
      runId,
      actor: r.actor,
      auditSeq: r.seq,
    });
  }
  state.versions = [...versions.values()].sort((a, b) => a.version - b.version);
  return state;
}
