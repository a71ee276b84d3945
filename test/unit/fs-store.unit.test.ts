// The filesystem store taking a private file in place of copying it (adoptFile, putBlobFile's `owned`): the bytes end
// at the key, the file is gone from where it was, create-only writes still hold, and nothing is left in the store's
// temp directory. No Temporal, no torch.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PreconditionFailedError } from '../../lib/contract/errors';
import { digestBytes, digestHex } from '../../lib/store/digest';
import { FsObjectStore } from '../../lib/store/fs-store';
import { blobKey, putBlobFile } from '../../lib/store/store';
import { tempDir } from '../helpers';

describe('filesystem store: adopting a private file', () => {
  it('putBlobFile of an owned file with its digest moves it into the store under its blob key', async () => {
    const root = tempDir();
    const store = new FsObjectStore(root);
    const bytes = Buffer.from('an artifact the worker copied and hashed');
    const file = join(tempDir(), 'copy.pt');
    writeFileSync(file, bytes);
    const digest = await putBlobFile(store, file, digestBytes(bytes), true);
    expect(digest).toBe(digestBytes(bytes));
    expect(existsSync(file)).toBe(false); // taken, not copied
    expect(await store.get(blobKey(digest))).toEqual({ body: bytes, etag: digestHex(digest) });
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });

  it('without owned (or without a known digest) the file is copied and stays where it was', async () => {
    const store = new FsObjectStore(tempDir());
    const bytes = Buffer.from('a file the user gave');
    const file = join(tempDir(), 'model.pt');
    writeFileSync(file, bytes);
    await putBlobFile(store, file);
    await putBlobFile(store, file, undefined, true);
    expect(existsSync(file)).toBe(true);
    expect((await store.get(blobKey(digestBytes(bytes))))?.body).toEqual(bytes);
  });

  it('create-only holds: adopting onto an existing key is a precondition failure that leaves the object and no temp file', async () => {
    const root = tempDir();
    const store = new FsObjectStore(root);
    await store.put('blobs/x', Buffer.from('first'));
    const file = join(tempDir(), 'second');
    writeFileSync(file, 'second');
    await expect(store.adoptFile('blobs/x', file, digestHex(digestBytes('second')), { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect((await store.get('blobs/x'))?.body.toString()).toBe('first');
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });
});
