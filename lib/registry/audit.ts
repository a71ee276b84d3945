// The audit trail: one create-only record per promotion, hash-chained per model and signed by the workers' key.
import { checkAttestations } from './attestation-check';
import type { ModelVerifier } from './signing-key';
import { z } from 'zod';
import { join } from 'node:path';
import { anchorMessage, readAnchor, reSignAnchors, writeAnchor, type Anchor } from './anchors';
import { canonicalJson, digestBytes } from '../store/digest';
import { DigestMismatchError, ErrorCode, PreconditionFailedError, TtdError } from '../contract/errors';
import { KeyFile, rotateAuditKey, type AuditSigner, type AuditVerifier, type Rotation } from './keys';
import { assertName } from './names';
import { parseRef, readModel, registryKey, resolveRef, type ModelState, type ModelVersion } from './registry';
import { parseStored, verifyBlob } from '../store/store';
import type { ObjectStore } from '../store/store';

/** What a record says happened; `prev` and `hash` are added by appendAudit. */
export const AuditEntry = z.object({
  /** promote (a run moved the alias), keep (registered, alias not moved), manual_promote, rollback,
   * approval_rejected, approval_timeout. */
  action: z.enum(['promote', 'keep', 'manual_promote', 'rollback', 'approval_rejected', 'approval_timeout']),
  model: z.string(),
  version: z.number().int().positive().nullable(),
  digest: z.string().nullable(),
  alias: z.string().nullable(),
  previousVersion: z.number().int().positive().nullable(),
  record: z.string().nullable(),
  runId: z.string().nullable(),
  actor: z.string(),
  trigger: z.string().nullable(),
  commit: z.string().nullable(),
  checks: z.array(z.object({ gate: z.string(), passed: z.boolean(), code: z.string().nullable() })),
  /** Who approved a promotion, when one was required. */
  approvedBy: z.string().nullable().optional(),
  reason: z.string().nullable().optional(),
  at: z.string(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

// A stored record: validated as it is, never rewritten (its hash covers every field it has but the signature).
const RecordSchema = AuditEntry.extend({
  seq: z.number().int().positive(),
  prev: z.string().nullable(),
  hash: z.string(),
  keyId: z.string().optional(),
  signature: z.string().optional(),
}).loose();

/** A stored record: the entry, its sequence number, its predecessor's hash and its own; records written since
 * signing began also carry the signing key's id (inside the hash) and an ed25519 signature over the hash. */
export type AuditRecord = AuditEntry & { seq: number; prev: string | null; hash: string; keyId?: string; signature?: string };

/** One thing `ttd audit verify` found wrong, with the record (or anchor, or registry entry) it concerns. */
export interface AuditProblem {
  key: string;
  reason: string;
  code: ErrorCode;
}

/** What a verification may rely on besides the store: the public key, the anchors, and whether an unsigned record
 * is acceptable at all. Without a verifier, signed records cannot be checked and are reported as such. */
export interface TrustOptions {
  verifier?: AuditVerifier;
  anchorsDir?: string;
  requireSigned?: boolean;
}

/** What an append may use: the key that signs it and the folder where the chain head is anchored. */
export interface AppendOptions {
  signer?: AuditSigner;
  anchorsDir?: string;
}

const APPEND_ATTEMPTS = 50;

/** The actions that move an alias: the latest of them for an alias names the version it must point at. */
export const ALIAS_ACTIONS: readonly AuditEntry['action'][] = ['promote', 'manual_promote', 'rollback'];
/** The actions that name a registered version (an alias move, or a version kept without one). */
export const VERSION_ACTIONS: readonly AuditEntry['action'][] = [...ALIAS_ACTIONS, 'keep'];

/** The first record that names a version with its version record (its registration): what the registry's `record` of
 * that version must be. Undefined where none names one (records before version records were named). */
export function registeringRecord(records: AuditRecord[], version: number): (AuditRecord & { record: string }) | undefined {
  return records.find(
    (r): r is AuditRecord & { record: string } => VERSION_ACTIONS.includes(r.action) && r.version === version && !!r.record,
  );
}

/** The key of record `seq` of a model: audit/<model>/<seq, zero-padded>.json. */
export function auditKey(model: string, seq: number): string {
  return `audit/${assertName('model', model)}/${String(seq).padStart(8, '0')}.json`;
}

/** The hash of a record: sha256 of its canonical JSON without the hash and signature fields. */
export function recordHash(record: Omit<AuditRecord, 'hash'> & { hash?: string }): string {
  const { hash: _hash, signature: _signature, ...content } = record;
  return digestBytes(canonicalJson(content));
}

/** What a record's signature covers: its hash, which covers everything else (the key id included). */
export function recordMessage(hash: string): string {
  return `ttd-audit-record:${hash}`;
}

/** The latest record that moves `alias` (what the alias must point at), or undefined. */
export function latestAliasRecord(records: AuditRecord[], alias: string): AuditRecord | undefined {
  for (let i = records.length - 1; i >= 0; i--) {
    if (records[i].alias === alias && ALIAS_ACTIONS.includes(records[i].action)) return records[i];
  }
  return undefined;
}

/** Appends a record by create-only write of the next number, signed when a signer is given; a retry of the same
 * run, action and version is the record already there. `entry` may be worked out from the records before it
 * (a promotion's previous version is the one the chain last moved the alias to). After the write, the chain's
 * head is anchored outside the store when `anchorsDir` is given. */
export async function appendAudit(
  store: ObjectStore,
  entry: AuditEntry | ((records: AuditRecord[]) => AuditEntry),
  opts: AppendOptions = {},
): Promise<AuditRecord> {
  const model = typeof entry === 'function' ? entry([]).model : entry.model;
  const prefix = `audit/${assertName('model', model)}/`;
  const seen = new Map<string, AuditRecord>(); // records are create-only: read each once
  for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
    const keys = await store.list(prefix);
    const records: AuditRecord[] = [];
    for (const key of keys) {
      let record = seen.get(key);
      if (!record) seen.set(key, (record = await readRecord(store, key)));
      records.push(record);
    }
    const wanted = typeof entry === 'function' ? entry(records) : entry;
    // A retried activity appends once: the same run, action and version is the record already there.
    const done =
      wanted.runId !== null && records.find((r) => r.runId === wanted.runId && r.action === wanted.action && r.version === wanted.version);
    if (done) {
      if (opts.anchorsDir && opts.signer) await writeAnchor(opts.anchorsDir, opts.signer, latestOf(records));
      return done;
    }
    const last = records[records.length - 1];
    const seq = (last?.seq ?? 0) + 1;
    const unhashed = { ...wanted, seq, prev: last?.hash ?? null, ...(opts.signer ? { keyId: opts.signer.keyId } : {}) };
    const hash = recordHash(unhashed);
    const record: AuditRecord = { ...unhashed, hash, ...(opts.signer ? { signature: opts.signer.sign(recordMessage(hash)) } : {}) };
    try {
      await store.put(auditKey(model, seq), Buffer.from(JSON.stringify(record, null, 2)), { ifNoneMatch: '*' });
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 25));
      continue;
    }
    if (opts.anchorsDir && opts.signer) await writeAnchor(opts.anchorsDir, opts.signer, record);
    return record;
  }
  throw new Error(`could not append to the audit trail of model '${model}' after ${APPEND_ATTEMPTS} attempts`);
}

const latestOf = (records: AuditRecord[]) => records[records.length - 1];

/** Reads every record of a model, in order. */
export async function readAudit(store: ObjectStore, model: string): Promise<AuditRecord[]> {
  const keys = await store.list(`audit/${assertName('model', model)}/`);
  return Promise.all(keys.map((k) => readRecord(store, k)));
}

/** A chain as read and checked: its records (up to the first problem), the problem, and how many are signed. */
export interface CheckedChain {
  keys: string[];
  records: AuditRecord[];
  problem: AuditProblem | null;
  signed: number;
  unsigned: number;
}

/** Reads a model's chain and checks every link and signature; stops at the first problem. */
export async function checkChain(
  store: ObjectStore,
  model: string,
  opts: TrustOptions & { signatures?: boolean } = {},
): Promise<CheckedChain> {
  const keys = await store.list(`audit/${assertName('model', model)}/`);
  const records: AuditRecord[] = [];
  let prev: string | null = null;
  let signedAt: number | null = null;
  let signed = 0;
  const out = (problem: AuditProblem | null): CheckedChain => ({ keys, records, problem, signed, unsigned: records.length - signed });
  const broken = (key: string, reason: string) => out({ key, reason, code: ErrorCode.auditBroken });
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const expected = auditKey(model, i + 1);
    if (key !== expected) {
      // A later number where this one should be: the record in between was deleted.
      return key > expected
        ? broken(expected, `missing: the chain jumps from record ${i} to ${key}`)
        : broken(key, `out of order: expected ${expected}`);
    }
    const record = await readRecord(store, key).catch(() => undefined);
    if (!record) return broken(key, 'unreadable or malformed record');
    if (record.seq !== i + 1) return broken(key, `out of order: record says seq ${record.seq}, expected ${i + 1}`);
    if (recordHash(record) !== record.hash) return broken(key, 'edited: its content does not hash to its recorded hash');
    if (record.prev !== prev) return broken(key, 'chain broken: prev does not match the hash of the record before it');
    const problem = opts.signatures === false ? null : checkSignature(key, record, signedAt, opts);
    if (problem) return out(problem);
    if (record.signature !== undefined) {
      signed++;
      signedAt ??= record.seq;
    }
    records.push(record);
    prev = record.hash;
  }
  return out(null);
}

function checkSignature(key: string, record: AuditRecord, signedAt: number | null, opts: TrustOptions): AuditProblem | null {
  if (record.signature === undefined && record.keyId === undefined) {
    if (signedAt !== null) {
      return {
        key,
        code: ErrorCode.auditSignatureMissing,
        reason: `unsigned, but record ${signedAt} before it is signed: every record after a signed one must be signed`,
      };
    }
    if (opts.requireSigned) return { key, code: ErrorCode.auditUnsigned, reason: 'unsigned, and --require-signed was given' };
    return null;
  }
  const { verifier } = opts;
  if (!verifier) {
    return {
      key,
      code: ErrorCode.auditKeyMissing,
      reason: `signed by key ${record.keyId}, but no public key was given to check it (--public-key FILE, or TTD_KEYS)`,
    };
  }
  const retired = verifier.retired?.find((k) => k.keyId === record.keyId);
  if (record.keyId !== verifier.keyId && !retired) {
    return {
      key,
      code: ErrorCode.auditSignatureInvalid,
      reason: `signed by key ${record.keyId}, expected the trusted key ${verifier.keyId} (${verifier.source})${verifier.retired?.length ? ` or a key retired before it (${verifier.retired.map((k) => k.keyId).join(', ')})` : ''}`,
    };
  }
  if (retired && record.seq > (retired.heads[record.model] ?? 0)) {
    return {
      key,
      code: ErrorCode.auditSignatureInvalid,
      reason: `signed by key ${record.keyId}, retired at ${retired.retiredAt} when it had signed ${retired.heads[record.model] ? `up to record ${retired.heads[record.model]}` : 'no record'} of model '${record.model}' (${retired.source}): a retired key cannot sign new records`,
    };
  }
  if (!(retired ?? verifier).verify(recordMessage(record.hash), record.signature ?? '')) {
    return {
      key,
      code: ErrorCode.auditSignatureInvalid,
      reason: 'signature does not match its hash: the record was written or rewritten without the signing key',
    };
  }
  return null;
}

/** The first problem in a model's links as {key, reason}, or null when every record is intact and in order; signatures
 * are checked only when a verifier is given (verifyTrail checks them always). */
export async function verifyChain(
  store: ObjectStore,
  model: string,
  opts: TrustOptions = {},
): Promise<{ key: string; reason: string } | null> {
  const { problem } = await checkChain(store, model, { ...opts, signatures: Boolean(opts.verifier) });
  return problem && { key: problem.key, reason: problem.reason };
}

/** A model's verdict: how many records, the first problem (chain, signature, anchor, blob or registry) or null,
 * every problem found, how many records are signed, and the anchor the chain was held to. */
export interface TrailVerdict {
  model: string;
  records: number;
  problem: AuditProblem | null;
  problems: AuditProblem[];
  signed: number;
  unsigned: number;
  anchor: { seq: number; hash: string } | null;
  /** Versions whose model signature and provenance were checked (with the public key, when one was at hand). */
  attested: number;
}

/** Verifies a model's chain (links, signatures), holds it to its anchor, checks that every blob its records name
 * exists and matches its digest (unless `blobs: false`), and cross-checks the registry against it. */
export async function verifyTrail(
  store: ObjectStore,
  model: string,
  opts: TrustOptions & { blobs?: boolean; modelVerifiers?: ModelVerifier[] } = {},
): Promise<TrailVerdict> {
  let attested = 0;
  const chain = await checkChain(store, model, opts);
  const problems: AuditProblem[] = chain.problem ? [chain.problem] : [];
  const anchor = opts.anchorsDir ? readAnchor(opts.anchorsDir, model) : undefined;
  if (anchor) problems.push(...checkAnchor(anchor, chain, model, opts));
  if (!chain.problem && opts.blobs !== false) problems.push(...(await checkBlobs(store, chain.records)));
  const found = await readModel(store, model);
  if (found) {
    if (chain.keys.length === 0) {
      problems.push({
        key: `audit/${model}/`,
        code: ErrorCode.auditMissing,
        reason: `model '${model}' is in the registry (${found.state.versions.length} versions) but has no audit records`,
      });
    } else if (!chain.problem) {
      problems.push(...checkRegistry(found.state, chain.records));
      // Each version's model signature and provenance, once the chain that backs its record verifies.
      if (opts.blobs !== false) {
        // Only versions whose record the chain backs: another record is checkRegistry's finding (registry_unbacked).
        const backed = found.state.versions.filter((v) => (registeringRecord(chain.records, v.version)?.record ?? v.record) === v.record);
        const checked = await checkAttestations(store, model, backed, opts.modelVerifiers);
        problems.push(...checked.problems);
        attested = checked.attested;
      }
    }
  }
  return {
    model,
    records: chain.keys.length,
    problem: problems[0] ?? null,
    problems,
    signed: chain.signed,
    unsigned: chain.unsigned,
    anchor: anchor ? { seq: anchor.seq, hash: anchor.hash } : null,
    attested,
  };
}

function checkAnchor(anchor: Anchor, chain: CheckedChain, model: string, opts: TrustOptions): AuditProblem[] {
  const key = `anchor ${anchor.path}`;
  if (opts.verifier) {
    // An anchor a retired key signed (another host's copy, not re-signed at the rotation) counts up to its retirement.
    const retired = opts.verifier.retired?.find((k) => k.keyId === anchor.keyId && anchor.seq <= (k.heads[model] ?? 0));
    const signedBy = anchor.keyId === opts.verifier.keyId ? opts.verifier : retired;
    if (!signedBy || !signedBy.verify(anchorMessage(anchor), anchor.signature)) {
      return [
        { key, code: ErrorCode.auditSignatureInvalid, reason: `the anchor's signature does not verify with key ${opts.verifier.keyId}` },
      ];
    }
  }
  if (chain.keys.length === 0) {
    return [
      {
        key: `audit/${model}/`,
        code: ErrorCode.auditMissing,
        reason: `no audit records, but the anchor says the chain reached record ${anchor.seq}: the chain was deleted`,
      },
    ];
  }
  if (chain.keys.length < anchor.seq) {
    return [
      {
        key: auditKey(model, anchor.seq),
        code: ErrorCode.auditTruncated,
        reason: `the chain has ${chain.keys.length} records, but its anchor says it reached record ${anchor.seq}: records were removed from its end`,
      },
    ];
  }
  const at = chain.records[anchor.seq - 1];
  if (at && at.hash !== anchor.hash) {
    return [
      {
        key: auditKey(model, anchor.seq),
        code: ErrorCode.auditAnchorMismatch,
        reason: `hashes to ${at.hash}, but the anchor recorded ${anchor.hash} for record ${anchor.seq}: the chain was rewritten`,
      },
    ];
  }
  return [];
}

async function checkBlobs(store: ObjectStore, records: AuditRecord[]): Promise<AuditProblem[]> {
  for (const record of records) {
    for (const [field, digest] of [
      ['digest', record.digest],
      ['record', record.record],
    ] as const) {
      if (!digest) continue;
      try {
        await verifyBlob(store, digest); // streamed: an artifact is never held whole
      } catch (err) {
        const reason = err instanceof DigestMismatchError ? 'altered' : 'missing';
        return [{ key: auditKey(record.model, record.seq), code: ErrorCode.auditBroken, reason: `blob ${reason}: ${field} ${digest}` }];
      }
    }
  }
  return [];
}

/** Where the registry disagrees with the chain: every version must be named by a record with the same digest, and
 * every alias must point at the version the latest record moving it names. */
export function checkRegistry(state: ModelState, records: AuditRecord[]): AuditProblem[] {
  const problems: AuditProblem[] = [];
  const key = registryKey(state.model);
  const unbacked = (reason: string, code: ErrorCode = ErrorCode.registryUnbacked) => problems.push({ key, code, reason });
  for (const v of state.versions) {
    const named = records.filter((r) => VERSION_ACTIONS.includes(r.action) && r.version === v.version);
    if (named.length === 0) unbacked(`version ${v.version} (${v.digest}) is registered, but no audit record names it`);
    else {
      const other = named.find((r) => r.digest !== v.digest);
      if (other) unbacked(`version ${v.version} is registered as ${v.digest}, but audit record ${other.seq} names ${other.digest}`);
      const registered = registeringRecord(records, v.version);
      if (registered && registered.record !== v.record) {
        unbacked(
          `version ${v.version} points at version record ${v.record}, but audit record ${registered.seq} registered ${registered.record}`,
        );
      }
    }
  }
  for (const [alias, target] of Object.entries(state.aliases)) {
    const latest = latestAliasRecord(records, alias);
    if (!latest) unbacked(`alias '${alias}' points at version ${target.version}, but no audit record moves it`);
    else if (latest.version !== target.version || latest.digest !== target.digest) {
      const earlier = records.some((r) => r.seq < latest.seq && r.alias === alias && r.version === target.version);
      unbacked(
        earlier
          ? `alias '${alias}' points at version ${target.version}, but audit record ${latest.seq} moved it to version ${latest.version}: that move was recorded and not applied (a promotion in flight, or one that failed after its record)`
          : `alias '${alias}' points at version ${target.version} (${target.digest}), but the latest audit record moving it (${latest.seq}) names version ${latest.version} (${latest.digest})`,
        earlier ? ErrorCode.aliasPending : ErrorCode.registryUnbacked,
      );
    }
  }
  // An alias the chain moved that the registry has lost.
  for (const r of records) {
    if (r.alias && ALIAS_ACTIONS.includes(r.action) && !state.aliases[r.alias]) {
      unbacked(
        `audit record ${r.seq} moved alias '${r.alias}' to version ${r.version}, but the registry has no such alias (a promotion in flight, one that failed after its record, or an alias removed from the registry)`,
        ErrorCode.aliasPending,
      );
      break;
    }
  }
  return problems;
}

/** A model's chain checked as everything that relies on it checks it: links, signatures and its anchor (when there
 * is one); `problem` is the first thing wrong, and `records` are those before it. */
export async function trustedChain(store: ObjectStore, model: string, trust: TrustOptions): Promise<CheckedChain> {
  const chain = await checkChain(store, model, trust);
  if (chain.problem) return chain;
  const anchor = trust.anchorsDir ? readAnchor(trust.anchorsDir, model) : undefined;
  const [bad] = anchor ? checkAnchor(anchor, chain, model, trust) : [];
  return bad ? { ...chain, problem: bad } : chain;
}

/** Throws (with the problem's code) unless the audit trail backs what is about to be served or promoted: the chain
 * verifies (links, signatures, anchor) and, for an alias, the latest record moving it names this version and digest;
 * for a version, a record names it with this digest. */
export async function assertBacked(
  store: ObjectStore,
  model: string,
  target: { alias?: string; version: number; digest: string; record?: string },
  trust: TrustOptions,
): Promise<void> {
  const what = target.alias ? `'${model}@${target.alias}' (version ${target.version})` : `'${model}:${target.version}'`;
  const refuse = (code: ErrorCode, why: string): never => {
    throw new TtdError(code, `refusing ${what}: ${why}; see \`ttd audit verify ${model}\``, { model, ...target });
  };
  const chain = await trustedChain(store, model, trust);
  if (chain.problem) refuse(chain.problem.code, `its audit trail does not verify at ${chain.problem.key}: ${chain.problem.reason}`);
  // The version record the registry points at (its manifest names every format's artifact, its signature and
  // provenance) must be the one its registration recorded: a store writer cannot swap in a record of their own.
  const registered = registeringRecord(chain.records, target.version);
  if (target.record && registered && registered.record !== target.record) {
    refuse(
      ErrorCode.registryUnbacked,
      `audit record ${registered.seq} registered version ${target.version} with version record ${registered.record}, but the registry points at ${target.record}`,
    );
  }
  if (target.alias) {
    const latest = latestAliasRecord(chain.records, target.alias);
    if (!latest) refuse(ErrorCode.registryUnbacked, `no audit record moves alias '${target.alias}'`);
    else if (latest.version !== target.version || latest.digest !== target.digest) {
      const earlier = chain.records.some((r) => r.seq < latest.seq && r.alias === target.alias && r.version === target.version);
      refuse(
        earlier ? ErrorCode.aliasPending : ErrorCode.registryUnbacked,
        `the latest audit record moving '${target.alias}' (record ${latest.seq}) names version ${latest.version} (${latest.digest}), not version ${target.version} (${target.digest})`,
      );
    }
    return;
  }
  const named = chain.records.find((r) => VERSION_ACTIONS.includes(r.action) && r.version === target.version);
  if (!named) refuse(ErrorCode.registryUnbacked, `no audit record names version ${target.version}`);
  else if (named.digest !== target.digest) {
    refuse(
      ErrorCode.registryUnbacked,
      `audit record ${named.seq} names version ${target.version} as ${named.digest}, not ${target.digest}`,
    );
  }
}

/** The version a reference names (`MODEL`, `MODEL@ALIAS`, `MODEL:VERSION`), once the audit trail backs it and the
 * version record it points at (what `ttd pull`, `--signature` and `ttd provenance` serve from). */
export async function backedVersion(
  store: ObjectStore,
  ref: string,
  trust: TrustOptions,
): Promise<{ state: ModelState; version: ModelVersion }> {
  const parsed = parseRef(ref);
  const { state, version } = await resolveRef(store, parsed);
  await assertBacked(
    store,
    state.model,
    { alias: parsed.alias, version: version.version, digest: version.digest, record: version.record },
    trust,
  );
  return { state, version };
}

/** The length of every model's chain: how far a key retired now has signed each. */
export async function chainHeads(store: ObjectStore): Promise<Record<string, number>> {
  const heads: Record<string, number> = {};
  for (const key of await store.list('audit/')) {
    const [, model, file] = key.split('/');
    const seq = Number(file?.replace(/\.json$/, ''));
    if (model && Number.isInteger(seq)) heads[model] = Math.max(heads[model] ?? 0, seq);
  }
  return heads;
}

/** `ttd audit rotate-key`: a new signing key in the keys directory; the old one retired with every chain's length
 * in the store, and the anchors it signed signed again by the new key (lib/registry/keys.ts: rotateAuditKey). */
export async function rotateSigningKey(store: ObjectStore, keysDir: string): Promise<Rotation> {
  return rotateAuditKey(
    keysDir,
    () => chainHeads(store),
    (old, signer) => reSignAnchors(join(keysDir, KeyFile.anchors), old, signer),
  );
}

/** Models that have audit records. */
export async function auditedModels(store: ObjectStore): Promise<string[]> {
  const keys = await store.list('audit/');
  return [...new Set(keys.map((k) => k.split('/')[1]).filter(Boolean))].sort();
}

async function readRecord(store: ObjectStore, key: string): Promise<AuditRecord> {
  const obj = await store.get(key);
  if (!obj) throw new Error(`audit record ${key} disappeared`);
  const damaged = (what: string) =>
    new TtdError(
      ErrorCode.storeDamaged,
      `audit record ${key} in ${store.location} is damaged: ${what}; 'ttd audit verify' names every problem of the chain, and the record must be restored from a backup (or the bucket's object versions / Object Lock copy) before the chain can grow`,
      { key },
    );
  parseStored(obj.body, RecordSchema, damaged);
  return JSON.parse(obj.body.toString('utf8')) as AuditRecord; // as written: its hash covers every field
}
