// Checkpoint retention: the train stage keeps only the latest few per-epoch checkpoints of a run in the store.
// Each run has an index (checkpoints/<workflow id>/<run id>.json) naming every checkpoint blob it has stored and not yet
// deleted, written before the blob, so that a crashed attempt leaves nothing the next one cannot find and delete.
import { z } from 'zod';
import { digestFile } from './digest';
import { blobKey, putBlobFile, type ObjectStore } from './store';

const Entry = z.strictObject({ epoch: z.number().int().nonnegative(), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/) });
const Index = z.strictObject({ format: z.literal('ttd-checkpoints/1'), checkpoints: z.array(Entry) });

/** One stored checkpoint: its epoch and its blob's digest. */
export type CheckpointEntry = z.infer<typeof Entry>;

/** The key of a run's checkpoint index. */
export function checkpointIndexKey(workflowId: string, runId: string): string {
  return `checkpoints/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}.json`;
}

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
  await writeIndex(store, key, all); // first: a blob the index does not name would never be deleted
  await putBlobFile(store, path, digest, known !== undefined);
  const kept = all.slice(-keep);
  const dropped = all.slice(0, all.length - kept.length);
  if (dropped.length) {
    for (const e of dropped) await store.delete(blobKey(e.digest));
    await writeIndex(store, key, kept);
  }
  return { digest, kept };
}

/** The newest checkpoint of the index that is still in the store (a retry resumes from it), if any. */
export async function latestCheckpoint(store: ObjectStore, key: string): Promise<CheckpointEntry | undefined> {
  const entries = await readCheckpointIndex(store, key);
  for (let i = entries.length - 1; i >= 0; i--) if (await store.head(blobKey(entries[i].digest))) return entries[i];
  return undefined;
}
