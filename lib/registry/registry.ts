// The model registry: immutable versions named by content, and aliases moved by compare-and-swap.
import { z } from 'zod';
import { ErrorCode, PreconditionFailedError, TtdError } from '../contract/errors';
import { assertName } from './names';
import { parseStored, type ObjectStore } from '../store/store';

const VersionSchema = z.object({
  version: z.number().int().positive(),
  digest: z.string(),
  record: z.string(),
  runId: z.string(),
  createdAt: z.string(),
});
// auditSeq: the audit record the alias move applies (absent before records were applied by number).
const AliasSchema = z.object({
  version: z.number().int().positive(),
  digest: z.string(),
  updatedAt: z.string(),
  auditSeq: z.number().int().positive().optional(),
});
const AliasEventSchema = z.object({
  alias: z.string(),
  version: z.number().int().positive(),
  digest: z.string(),
  previousVersion: z.number().int().positive().nullable(),
  at: z.string(),
  runId: z.string(),
  actor: z.string(),
  auditSeq: z.number().int().positive().optional(),
});
const StateSchema = z.object({
  model: z.string(),
  versions: z.array(VersionSchema),
  aliases: z.record(z.string(), AliasSchema),
  aliasHistory: z.array(AliasEventSchema),
});

/** One immutable version: a number, the artifact's digest and the digest of its version record. */
export type ModelVersion = z.infer<typeof VersionSchema>;
/** A model's registry state: versions, aliases and every alias move. */
export type ModelState = z.infer<typeof StateSchema>;

const CAS_ATTEMPTS = 50;

/** The key of a model's registry state. */
export function registryKey(model: string): string {
  return `registry/${assertName('model', model)}.json`;
}

/** Reads a model's state (undefined when the model has never been registered). */
export async function readModel(store: ObjectStore, model: string): Promise<{ state: ModelState; etag: string } | undefined> {
  const key = registryKey(model);
  const obj = await store.get(key);
  if (!obj) return undefined;
  const damaged = (what: string) =>
    new TtdError(
      ErrorCode.storeDamaged,
      `the registry state of model '${model}' (${key} in ${store.location}) is damaged: ${what}; the next promotion of the model (a run, ttd promote or ttd rollback) rebuilds it from the audit trail, or restore that object from a backup or an earlier version of the bucket (the audit trail names every alias move: ttd audit log ${model})`,
      { key },
    );
  return { state: parseStored(obj.body, StateSchema, damaged), etag: obj.etag };
}

/** Names of every registered model. */
export async function listModels(store: ObjectStore): Promise<string[]> {
  return (await store.list('registry/')).filter((k) => k.endsWith('.json')).map((k) => k.slice('registry/'.length, -'.json'.length));
}

/** What a promotion asks for. */
export interface PromoteRequest {
  model: string;
  digest: string;
  record: string;
  alias: string;
  runId: string;
  actor: string;
  at: string;
}

/** What a promotion did: the version, whether it is new, and what the alias pointed to before. */
export interface PromoteOutcome {
  version: number;
  created: boolean;
  previousVersion: number | null;
  moved: boolean;
}

/** Applies `change` to a model's state by compare-and-swap, retrying on a lost race; `change` returns
 * its outcome and whether it changed anything (nothing is written otherwise). */
export async function updateModel<T>(
  store: ObjectStore,
  model: string,
  change: (state: ModelState, exists: boolean) => { outcome: T; changed: boolean },
): Promise<T> {
  assertName('model', model);
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const current = await readModel(store, model);
    const state: ModelState = current?.state ?? { model, versions: [], aliases: {}, aliasHistory: [] };
    const { outcome, changed } = change(state, Boolean(current));
    if (!changed) return outcome;
    try {
      const body = Buffer.from(JSON.stringify(state, null, 2));
      await store.put(registryKey(model), body, current ? { ifMatch: current.etag } : { ifNoneMatch: '*' });
      return outcome;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 25 * (attempt + 1)));
    }
  }
  throw new Error(`could not update the registry of model '${model}' after ${CAS_ATTEMPTS} attempts (too many concurrent writers)`);
}

/** The version of a digest, added if new (content names a version: the same bytes always get the same number). */
function ensureVersion(
  state: ModelState,
  req: { digest: string; record: string; runId: string; at: string },
): { entry: ModelVersion; created: boolean } {
  const found = state.versions.find((v) => v.digest === req.digest);
  if (found) return { entry: found, created: false };
  // One past the highest: a state rebuilt from the audit chain (lib/registry/repair.ts) may lack a number.
  const next = state.versions.reduce((max, v) => Math.max(max, v.version), 0) + 1;
  const entry = { version: next, digest: req.digest, record: req.record, runId: req.runId, createdAt: req.at };
  state.versions.push(entry);
  return { entry, created: true };
}

/** Points an alias at a version and records the move. */
function pointAlias(
  state: ModelState,
  alias: string,
  entry: ModelVersion,
  req: { runId: string; actor: string; at: string },
): number | null {
  const previous = state.aliases[alias]?.version ?? null;
  state.aliases[alias] = { version: entry.version, digest: entry.digest, updatedAt: req.at };
  state.aliasHistory.push({
    alias,
    version: entry.version,
    digest: entry.digest,
    previousVersion: previous,
    at: req.at,
    runId: req.runId,
    actor: req.actor,
  });
  return previous;
}

/** Registers the artifact (reusing the version of an equal digest) and moves the alias; retried on a lost race.
 * It writes no audit record: promotions go through lib/registry/promotion.ts, which records the move before making it. */
export async function registerAndPromote(store: ObjectStore, req: PromoteRequest): Promise<PromoteOutcome> {
  assertName('alias', req.alias);
  return updateModel<PromoteOutcome>(store, req.model, (state) => {
    const { entry, created } = ensureVersion(state, req);
    const current = state.aliases[req.alias]?.version ?? null;
    if (current === entry.version)
      return { outcome: { version: entry.version, created, previousVersion: current, moved: false }, changed: created };
    const previousVersion = pointAlias(state, req.alias, entry, req);
    return { outcome: { version: entry.version, created, previousVersion, moved: true }, changed: true };
  });
}

/** An alias move as an audit record states it (lib/registry/audit.ts): the record's number and the alias's new target. */
export interface RecordedMove {
  seq: number;
  version: number;
  digest: string;
  runId: string;
  actor: string;
  at: string;
}

/** Applies recorded moves of one alias to the registry, in record order, skipping those it already reflects: so
 * concurrent promotions leave the alias, and its history, as the chain has them, and a retry changes nothing.
 * An alias from before moves were applied by record number takes only the last move. */
export async function applyAliasMoves(
  store: ObjectStore,
  model: string,
  alias: string,
  moves: RecordedMove[],
): Promise<{ moved: boolean }> {
  assertName('alias', alias);
  return updateModel(store, model, (state) => {
    // A new alias takes every recorded move in order; one from before moves carried their record's number (no
    // auditSeq) only the latest; otherwise the moves after the one it shows.
    const existing = state.aliases[alias];
    const start = existing?.auditSeq;
    const pending = moves.filter((m) =>
      existing === undefined ? true : start === undefined ? m === moves[moves.length - 1] : m.seq > start,
    );
    let moved = false;
    for (const move of pending) {
      const current = state.aliases[alias];
      const entry = state.versions.find((v) => v.version === move.version);
      if (!entry || entry.digest !== move.digest) {
        throw new TtdError(
          ErrorCode.registryUnbacked,
          `audit record ${move.seq} moves '${model}@${alias}' to version ${move.version} (${move.digest}), but the registry's version ${move.version} is ${entry ? entry.digest : 'absent'}`,
        );
      }
      state.aliases[alias] = { version: entry.version, digest: entry.digest, updatedAt: move.at, auditSeq: move.seq };
      if (current?.version === entry.version) continue;
      moved = true;
      state.aliasHistory.push({
        alias,
        version: entry.version,
        digest: entry.digest,
        previousVersion: current?.version ?? null,
        at: move.at,
        runId: move.runId,
        actor: move.actor,
        auditSeq: move.seq,
      });
    }
    return { outcome: { moved }, changed: pending.length > 0 };
  });
}

/** Registers the artifact as a version without moving any alias (a candidate kept but not promoted). */
export async function registerVersion(
  store: ObjectStore,
  req: Omit<PromoteRequest, 'alias' | 'actor'>,
): Promise<{ version: number; created: boolean }> {
  return updateModel(store, req.model, (state) => {
    const { entry, created } = ensureVersion(state, req);
    return { outcome: { version: entry.version, created }, changed: created };
  });
}

/** The version an alias held before its current one (what a rollback returns to), or null. */
export function previousOf(state: ModelState, alias: string): number | null {
  const moves = state.aliasHistory.filter((e) => e.alias === alias);
  return moves.length ? moves[moves.length - 1].previousVersion : null;
}

/** A parsed `MODEL`, `MODEL@ALIAS` or `MODEL:VERSION`. */
export interface ModelRef {
  model: string;
  alias?: string;
  version?: number;
}

/** Parses a model reference; throws a TtdError naming the expected forms. */
export function parseRef(ref: string): ModelRef {
  const m = /^([^@:]+)(?:@([^@:]+)|:(\d+))?$/.exec(ref);
  if (!m) {
    throw new TtdError(ErrorCode.badReference, `model reference '${ref}' is invalid: expected MODEL, MODEL@ALIAS or MODEL:VERSION`);
  }
  assertName('model', m[1]);
  if (m[2] !== undefined) assertName('alias', m[2]);
  return { model: m[1], alias: m[2], version: m[3] !== undefined ? Number(m[3]) : undefined };
}

/** Resolves a reference to one version; a bare MODEL means its latest version. */
export async function resolveRef(store: ObjectStore, ref: ModelRef): Promise<{ state: ModelState; version: ModelVersion }> {
  const found = await readModel(store, ref.model);
  if (!found || found.state.versions.length === 0) {
    throw new TtdError(ErrorCode.modelNotFound, `model '${ref.model}' is not in the registry at ${store.location}`);
  }
  const { state } = found;
  let number: number;
  if (ref.alias !== undefined) {
    const alias = state.aliases[ref.alias];
    if (!alias) {
      const known = Object.keys(state.aliases);
      throw new TtdError(
        ErrorCode.aliasNotFound,
        `model '${ref.model}' has no alias '${ref.alias}' (aliases: ${known.length ? known.map((a) => `'${a}'`).join(', ') : 'none'})`,
      );
    }
    number = alias.version;
  } else {
    number = ref.version ?? state.versions[state.versions.length - 1].version;
  }
  const version = state.versions.find((v) => v.version === number);
  if (!version) {
    throw new TtdError(ErrorCode.versionNotFound, `model '${ref.model}' has no version ${number} (versions 1..${state.versions.length})`);
  }
  return { state, version };
}
