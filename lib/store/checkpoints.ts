// Checkpoint retention: the train stage keeps only the latest few per-epoch checkpoints of a run in the store.
// Each run has an index (checkpoints/<workflow id>/<run id>.json) naming every checkpoint blob it has stored and not yet
// deleted, written before the blob, so that a crashed attempt leaves nothing the next one cannot find and delete.
//
// Blobs are named by content, so two runs whose checkpoints coincide (deterministic training, the same seed) share a
// blob. A blob is deleted only when no other run still lists it, and that holds with two runs at once on a store
// without transactions (the filesystem, S3), using only create, list and delete, each strongly consistent on both:
//
//   a run that stores a checkpoint:   R: put its reference   checkpoint-refs/<hex>/<run>
//                                     then its index; then L: list checkpoint-deletions/<hex>/ and wait until every
//                                     deletion listed there is over; then P: put the blob (create-only: kept if there)
//   a run that drops a checkpoint:    I: put its intent      checkpoint-deletions/<hex>/<run>
//                                     then remove its own reference; C: list checkpoint-refs/<hex>/; X: delete the
//                                     blob only if that listed no reference; then remove its intent
//
// Take a writer W and a deleter D of one blob. If W's R comes before D's C, D sees W's reference and deletes nothing.
// Otherwise I < C < R < L: when W lists, D's intent is there unless D is done with X, so W waits for D to finish (or
// finds it finished) and only then puts the blob: P comes after X, and the blob W lists is in the store. A deleter
// that starts later sees W's reference. An intent older than STALE_INTENT_MS is a deleter that crashed (its retry
// writes the same intent again, and removes it): a writer stops waiting for it. Checkpoint blobs are referenced only
// here: a checkpoint file (weights, optimizer state, RNG, epoch, losses) is never byte-equal to an artifact or record,
// so no manifest can name one, and none is searched.
import { z } from 'zod';
import { digestBytes, digestFile, digestHex } from './digest';
import { blobKey, putBlobFile, type ObjectStore } from './store';

const Entry = z.strictObject({ epoch: z.number().int().nonnegative(), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/) });
const Index = z.strictObject({ format: z.literal('ttd-checkpoints/1'), checkpoints: z.array(Entry) });

/** A deleter's intent older than this belongs to one that crashed between its intent and its removal. */
export const STALE_INTENT_MS = 120_000;
const INTENT_POLL_MS = 50;

/** One stored checkpoint: its epoch and its blob's digest. */
export type CheckpointEntry = z.infer<typeof Entry>;

/** The key of a run's checkpoint index. */
export function checkpointIndexKey(workflowId: string, runId: string): string {
  return `checkpoints/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}.json`;
}

// One name per run, under one folder per blob: the sha256 of its index key (no '/' and no '%', which S3 signatures and
// some servers treat differently); a reference holds the index key itself.
const runName = (indexKey: string) => digestHex(digestBytes(Buffer.from(indexKey)));
/** The folder of the runs that list a checkpoint blob. */
export const checkpointRefsPrefix = (digest: string) => `checkpoint-refs/${digestHex(digest)}/`;
/** The folder of the deletions of a checkpoint blob in progress. */
export const checkpointDeletionsPrefix = (digest: string) => `checkpoint-deletions/${digestHex(digest)}/`;

/** The checkpoints a run's index names, oldest first; none when there is no index or it is not one of ours. */
export async function readCheckpointIndex(store: ObjectStore, key: string): Promise<CheckpointEntry[]> {
  const obj = await store.get(key);
  if (!obj) return [];
  try {
    const parsed = Index.safeParse(JSON.parse(obj.body.toString('utf8')));
    return parsed.success ? parsed.data.checkpoints : [];
  } catch {
    return [];
  }
}

async function writeIndex(store: ObjectStore, key: string, checkpoints: CheckpointEntry[]): Promise<void> {
  await store.put(key, Buffer.from(JSON.stringify({ format: 'ttd-checkpoints/1', checkpoints })));
}

/** Stores an epoch's checkpoint file as a blob and deletes the oldest beyond `keep`; returns its digest and what is kept.
 * `known`: the file's sha256 when the caller hashed it as it wrote it, in a private copy the store may take
 * (putBlobFile's `owned`). */
export async function storeCheckpoint(
  store: ObjectStore,
  key: string,
  epoch: number,
  path: string,
  keep: number,
  known?: string,
): Promise<{ digest: string; kept: CheckpointEntry[] }> {
  const digest = known ?? (await digestFile(path));
  const before = (await readCheckpointIndex(store, key)).filter((e) => e.digest !== digest);
  const all = [...before, { epoch, digest }];
  await store.put(checkpointRefsPrefix(digest) + runName(key), Buffer.from(key)); // R
  await writeIndex(store, key, all); // before the blob: a blob the index does not name would never be deleted
  await deletionsOver(store, digest); // L
  await putBlobFile(store, path, digest, known !== undefined); // P
  const kept = all.slice(-keep);
  const dropped = all.slice(0, all.length - kept.length);
  if (dropped.length) {
    for (const e of dropped) await dropCheckpoint(store, key, e.digest);
    await writeIndex(store, key, kept);
  }
  return { digest, kept };
}

/** Removes a run's reference to a checkpoint blob, and the blob when no other run references it (see the top). */
export async function dropCheckpoint(store: ObjectStore, key: string, digest: string): Promise<{ deleted: boolean }> {
  const intent = checkpointDeletionsPrefix(digest) + runName(key);
  await store.put(intent, Buffer.from(JSON.stringify({ at: new Date().toISOString() }))); // I
  try {
    await store.delete(checkpointRefsPrefix(digest) + runName(key));
    const others = await store.list(checkpointRefsPrefix(digest)); // C
    if (others.length) return { deleted: false };
    await store.delete(blobKey(digest)); // X
    return { deleted: true };
  } finally {
    await store.delete(intent);
  }
}

// Waits until no deletion of the blob is in progress: every intent listed now is removed, or stale.
async function deletionsOver(store: ObjectStore, digest: string): Promise<void> {
  for (const intent of await store.list(checkpointDeletionsPrefix(digest))) {
    for (;;) {
      const obj = await store.get(intent);
      if (!obj) break;
      if (!(Date.now() - intentTime(obj.body) < STALE_INTENT_MS)) break; // unreadable, or older than any deletion takes
      await new Promise((r) => setTimeout(r, INTENT_POLL_MS));
    }
  }
}

// When a deleter wrote its intent (NaN when the object is not one).
function intentTime(body: Buffer): number {
  try {
    return Date.parse((JSON.parse(body.toString('utf8')) as { at?: unknown }).at as string);
  } catch {
    return NaN;
  }
}

/** The newest checkpoint of the index that is still in the store (a retry resumes from it), if any. */
export async function latestCheckpoint(store: ObjectStore, key: string): Promise<CheckpointEntry | undefined> {
  const entries = await readCheckpointIndex(store, key);
  for (let i = entries.length - 1; i >= 0; i--) if (await store.head(blobKey(entries[i].digest))) return entries[i];
  return undefined;
}
