// The audit trail: one create-only record per promotion, hash-chained per model.
import { z } from 'zod';
import { canonicalJson, digestBytes } from './digest';
import { DigestMismatchError, PreconditionFailedError } from './errors';
import { getBlob } from './store';
import { assertName } from './names';
import type { ObjectStore } from './store';

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

// A stored record: validated as it is, never rewritten (its hash covers every field it has).
const RecordSchema = AuditEntry.extend({ seq: z.number().int().positive(), prev: z.string().nullable(), hash: z.string() }).loose();

/** A stored record: the entry, its sequence number, its predecessor's hash and its own. */
export type AuditRecord = AuditEntry & { seq: number; prev: string | null; hash: string };

const APPEND_ATTEMPTS = 50;

/** The key of record `seq` of a model: audit/<model>/<seq, zero-padded>.json. */
export function auditKey(model: string, seq: number): string {
  return `audit/${assertName('model', model)}/${String(seq).padStart(8, '0')}.json`;
}

/** The hash of a record: sha256 of its canonical JSON without the hash field. */
export function recordHash(record: Omit<AuditRecord, 'hash'> & { hash?: string }): string {
  const { hash: _ignored, ...content } = record;
  return digestBytes(canonicalJson(content));
}

/** Appends a record by create-only write of the next number; a retry of the same run and action is a no-op. */
export async function appendAudit(store: ObjectStore, entry: AuditEntry): Promise<AuditRecord> {
  for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
    const keys = await store.list(`audit/${assertName('model', entry.model)}/`);
    const last = keys.length ? await readRecord(store, keys[keys.length - 1]) : undefined;
    // A retried activity appends once: the same run, action and version is the record already there.
    if (last && entry.runId !== null && last.runId === entry.runId && last.action === entry.action && last.version === entry.version)
      return last;
    const seq = (last?.seq ?? 0) + 1;
    const unhashed = { ...entry, seq, prev: last?.hash ?? null };
    const record: AuditRecord = { ...unhashed, hash: recordHash(unhashed) };
    try {
      await store.put(auditKey(entry.model, seq), Buffer.from(JSON.stringify(record, null, 2)), { ifNoneMatch: '*' });
      return record;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 25));
    }
  }
  throw new Error(`could not append to the audit trail of model '${entry.model}' after ${APPEND_ATTEMPTS} attempts`);
}

/** Reads every record of a model, in order. */
export async function readAudit(store: ObjectStore, model: string): Promise<AuditRecord[]> {
  const keys = await store.list(`audit/${assertName('model', model)}/`);
  return Promise.all(keys.map((k) => readRecord(store, k)));
}

/** The first problem in a model's chain, or null when every record is intact and in order. */
export async function verifyChain(store: ObjectStore, model: string): Promise<{ key: string; reason: string } | null> {
  const keys = await store.list(`audit/${assertName('model', model)}/`);
  let prev: string | null = null;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const expected = auditKey(model, i + 1);
    if (key !== expected) {
      // A later number where this one should be: the record in between was deleted.
      return key > expected
        ? { key: expected, reason: `missing: the chain jumps from record ${i} to ${key}` }
        : { key, reason: `out of order: expected ${expected}` };
    }
    const record = await readRecord(store, key).catch(() => undefined);
    if (!record) return { key, reason: 'unreadable or malformed record' };
    if (record.seq !== i + 1) return { key, reason: `out of order: record says seq ${record.seq}, expected ${i + 1}` };
    if (recordHash(record) !== record.hash) return { key, reason: 'edited: its content does not hash to its recorded hash' };
    if (record.prev !== prev) return { key, reason: 'chain broken: prev does not match the hash of the record before it' };
    prev = record.hash;
  }
  return null;
}

/** A model's verdict: how many records, and the first problem (chain or blob) or null. */
export interface TrailVerdict {
  model: string;
  records: number;
  problem: { key: string; reason: string } | null;
}

/** Verifies a model's chain and that every blob its records name exists and matches its digest. */
export async function verifyTrail(store: ObjectStore, model: string): Promise<TrailVerdict> {
  const keys = await store.list(`audit/${assertName('model', model)}/`);
  const chain = await verifyChain(store, model);
  if (chain) return { model, records: keys.length, problem: chain };
  for (const key of keys) {
    const record = await readRecord(store, key);
    for (const [field, digest] of [
      ['digest', record.digest],
      ['record', record.record],
    ] as const) {
      if (!digest) continue;
      try {
        await getBlob(store, digest);
      } catch (err) {
        const reason = err instanceof DigestMismatchError ? 'altered' : 'missing';
        return { model, records: keys.length, problem: { key, reason: `blob ${reason}: ${field} ${digest}` } };
      }
    }
  }
  return { model, records: keys.length, problem: null };
}

/** Models that have audit records. */
export async function auditedModels(store: ObjectStore): Promise<string[]> {
  const keys = await store.list('audit/');
  return [...new Set(keys.map((k) => k.split('/')[1]).filter(Boolean))].sort();
}

async function readRecord(store: ObjectStore, key: string): Promise<AuditRecord> {
  const obj = await store.get(key);
  if (!obj) throw new Error(`audit record ${key} disappeared`);
  const raw = JSON.parse(obj.body.toString('utf8'));
  RecordSchema.parse(raw);
  return raw as AuditRecord;
}
