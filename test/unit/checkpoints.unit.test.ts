// Checkpoint retention on the real filesystem store: runs whose checkpoints coincide (the same bytes, one blob) never
// delete a blob another run still lists, also when a deletion and a new reference race; a blob nobody lists goes.
// One test puts a gate in front of the store (a wrapper that pauses a call) to force the racing order.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkpointDeletionsPrefix,
  checkpointIndexKey,
  checkpointRefsPrefix,
  readCheckpointIndex,
  storeCheckpoint,
} from '../../lib/store/checkpoints';
import { digestBytes } from '../../lib/store/digest';
import { FsObjectStore } from '../../lib/store/fs-store';
import { blobKey, type ObjectStore } from '../../lib/store/store';
import { tempDir } from '../helpers';

/** The checkpoint file of an epoch of a deterministic training: the same bytes in every run. */
function checkpointFile(epoch: number): string {
  const path = join(tempDir(), `checkpoint-${epoch}.pt`);
  writeFileSync(path, `weights, optimizer state and RNG after epoch ${epoch}`);
  return path;
}
const digestOf = (epoch: number) => digestBytes(Buffer.from(`weights, optimizer state and RNG after epoch ${epoch}`));

/** Every blob any run's index lists that is missing from the store (none, when retention is right). */
async function listedButMissing(store: ObjectStore): Promise<string[]> {
  const missing = [];
  for (const key of (await store.list('checkpoints/')).filter((k) => k.endsWith('.json'))) {
    for (const e of await readCheckpointIndex(store, key)) if (!(await store.head(blobKey(e.digest)))) missing.push(`${key}: ${e.digest}`);
  }
  return missing;
}

describe('checkpoint retention', () => {
  it('two runs whose checkpoints coincide keep the blobs the other lists, and a blob neither lists is deleted', async () => {
    const store = new FsObjectStore(tempDir());
    const [a, b] = [checkpointIndexKey('wf-a', 'run-a'), checkpointIndexKey('wf-b', 'run-b')];
    await storeCheckpoint(store, a, 1, checkpointFile(1), 1);
    await storeCheckpoint(store, b, 1, checkpointFile(1), 1);
    // Run a moves on: it drops epoch 1, which run b still lists.
    await storeCheckpoint(store, a, 2, checkpointFile(2), 1);
    expect(await store.head(blobKey(digestOf(1)))).toBeDefined();
    expect(await listedButMissing(store)).toEqual([]);
    // Run b moves on too: nobody lists epoch 1 now, and its blob goes; epoch 2, listed by both, stays.
    await storeCheckpoint(store, b, 2, checkpointFile(2), 1);
    expect(await store.head(blobKey(digestOf(1)))).toBeUndefined();
    expect(await store.list(checkpointRefsPrefix(digestOf(1)))).toEqual([]);
    expect(await store.list(checkpointDeletionsPrefix(digestOf(1)))).toEqual([]);
    await storeCheckpoint(store, a, 3, checkpointFile(3), 1);
    expect(await store.head(blobKey(digestOf(2)))).toBeDefined();
    await storeCheckpoint(store, b, 3, checkpointFile(3), 1);
    expect(await store.head(blobKey(digestOf(2)))).toBeUndefined();
    expect(await readCheckpointIndex(store, a)).toEqual([{ epoch: 3, digest: digestOf(3) }]);
    expect(await listedButMissing(store)).toEqual([]);
  });

  it('a deletion that found no reference does not remove the blob a run referenced just after: that run waits, then stores it', async () => {
    const fs = new FsObjectStore(tempDir());
    const [a, b] = [checkpointIndexKey('wf-a', 'run-a'), checkpointIndexKey('wf-b', 'run-b')];
    await storeCheckpoint(fs, a, 1, checkpointFile(1), 1);
    // Run a's deletion of epoch 1 pauses right after it listed the references (none: run b has not stored it yet).
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let checked!: () => void;
    const deletionChecked = new Promise<void>((r) => (checked = r));
    let bWaits!: () => void;
    const bListedDeletions = new Promise<void>((r) => (bWaits = r));
    const gated: ObjectStore = Object.assign(Object.create(fs) as FsObjectStore, {
      list: async (prefix: string) => {
        const keys = await fs.list(prefix);
        if (prefix === checkpointRefsPrefix(digestOf(1))) {
          checked();
          await released;
        }
        if (prefix === checkpointDeletionsPrefix(digestOf(1))) bWaits();
        return keys;
      },
    });
    const deleting = storeCheckpoint(gated, a, 2, checkpointFile(2), 1);
    await deletionChecked;
    // Run b now stores the same checkpoint: its blob is in the store, about to be deleted by run a.
    const storing = storeCheckpoint(gated, b, 1, checkpointFile(1), 1);
    await Promise.race([bListedDeletions, storing]); // run b either waits for the deletion, or (wrongly) is done
    release();
    await Promise.all([deleting, storing]);
    expect(await readCheckpointIndex(fs, b)).toEqual([{ epoch: 1, digest: digestOf(1) }]);
    expect(await fs.head(blobKey(digestOf(1)))).toBeDefined();
    expect(await listedButMissing(fs)).toEqual([]);
  });

  it('twenty runs storing the same checkpoints at once lose none that an index lists, and leave none that nobody lists', async () => {
    const store = new FsObjectStore(tempDir());
    const runs = Array.from({ length: 20 }, (_, i) => checkpointIndexKey(`wf-${i}`, 'run'));
    await Promise.all(
      runs.map(async (key, i) => {
        for (let epoch = 1; epoch <= 4 + (i % 3); epoch++) await storeCheckpoint(store, key, epoch, checkpointFile(epoch), 2);
      }),
    );
    expect(await listedButMissing(store)).toEqual([]);
    // Runs end at epochs 4, 5 or 6 with two kept: epochs 3 to 6 are listed, 1 and 2 by nobody.
    for (const epoch of [1, 2]) expect(await store.head(blobKey(digestOf(epoch))), `epoch ${epoch}`).toBeUndefined();
    for (const epoch of [3, 4, 5, 6]) expect(await store.head(blobKey(digestOf(epoch))), `epoch ${epoch}`).toBeDefined();
    expect(await store.list('checkpoint-deletions/')).toEqual([]);
  });
});
