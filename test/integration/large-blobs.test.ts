// Artifacts far larger than the worker's memory budget go through the store streamed: a blob of several hundred MB,
// made on disk, is stored as a stage's output and materialized as a stage's input by a Node process of its own
// (test/blob-io.cjs: the worker's storeWorkFile and materialize, built) whose peak RSS stays far below the blob's size, on the filesystem store and on S3 (moto, multipart), and a blob whose bytes do
// not match its digest is refused without leaving anything at the destination.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestFile, digestHex } from '../../lib/store/digest';
import { FsObjectStore } from '../../lib/store/fs-store';
import { PreconditionFailedError } from '../../lib/contract/errors';
import { blobKey, getBlobToFile, putBlobFile } from '../../lib/store/store';
import { repoRoot, tempDir } from '../helpers';
import { startMoto, type Moto } from '../moto';

const MiB = 1024 * 1024;
const SIZE = 384 * MiB;
// What one operation may add to the peak RSS of a process that loaded the same modules and did nothing: a quarter
// of the blob. Reading it whole (as before) adds at least its size.
const GROWTH_LIMIT = SIZE / 4;
const BUCKET = 'models';

interface BlobIo {
  op: string;
  ms: number;
  maxRssBytes: number;
  digest?: string;
  size?: number;
  error?: { code?: string; message: string };
}

describe('large blobs', () => {
  let dir: string;
  let file: string;
  let digest: string;
  let moto: Moto;

  // One operation in a fresh Node process, with the S3 environment ttd reads.
  const blobIo = async (store: string, ...args: string[]): Promise<BlobIo> => {
    const { stdout } = await promisify(execFile)(process.execPath, [join(repoRoot, 'test', 'blob-io.cjs'), repoRoot, store, ...args], {
      env: { ...process.env, ...moto.env },
    });
    return JSON.parse(stdout) as BlobIo;
  };

  beforeAll(async () => {
    dir = tempDir('ttd-large-blobs-');
    file = join(dir, 'weights.bin');
    // Made a MiB at a time, so the test process never holds it either.
    await pipeline(
      (function* () {
        for (let i = 0; i < SIZE / MiB; i++) yield randomBytes(MiB);
      })(),
      createWriteStream(file),
    );
    digest = await digestFile(file);
    moto = await startMoto();
    await moto.createBucket(BUCKET);
  });
  afterAll(async () => {
    await moto?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const stores = {
    fs: () => join(dir, 'store'),
    s3: () => `s3://${BUCKET}/large`,
  };

  for (const [backend, where] of Object.entries(stores)) {
    it(`a ${SIZE / MiB} MiB blob is stored and materialized through the ${backend} store with peak RSS far below its size`, async () => {
      const floor = (await blobIo(where(), 'idle')).maxRssBytes;
      const put = await blobIo(where(), 'store', file);
      expect(put.error).toBeUndefined();
      expect(put.digest).toBe(digest);
      expect(put.maxRssBytes - floor, `store: peak RSS ${put.maxRssBytes} over a floor of ${floor}`).toBeLessThan(GROWTH_LIMIT);

      const work = join(dir, `materialized-${backend}`);
      const get = await blobIo(where(), 'materialize', digest, work);
      expect(get.error).toBeUndefined();
      expect(get.size).toBe(SIZE);
      expect(get.maxRssBytes - floor, `materialize: peak RSS ${get.maxRssBytes} over a floor of ${floor}`).toBeLessThan(GROWTH_LIMIT);
      expect(await digestFile(join(work, 'blob'))).toBe(digest);
      await rm(work, { recursive: true, force: true });
    });
  }

  it('a blob whose stored bytes do not match its digest is refused as digest_mismatch and leaves no file behind', async () => {
    // The fs store's copy altered in place (its last byte); on S3, other bytes written under the blob's key.
    await putBlobFile(new FsObjectStore(stores.fs()), file); // already there when the test above ran
    const stored = await open(join(stores.fs(), ...blobKey(digest).split('/')), 'r+');
    const last = Buffer.alloc(1);
    await stored.read(last, 0, 1, SIZE - 1);
    await stored.write(Buffer.from([last[0] ^ 0xff]), 0, 1, SIZE - 1);
    await stored.close();
    const s3 = moto.client();
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `large/${blobKey(digest)}`, Body: randomBytes(3 * MiB) }));
    s3.destroy();

    for (const backend of ['fs', 's3'] as const) {
      const work = join(dir, `refused-${backend}`);
      const get = await blobIo(stores[backend](), 'materialize', digest, work);
      expect(get.error?.code, backend).toBe('digest_mismatch');
      expect(get.error?.message).toMatch(`blob blobs/sha256/${digestHex(digest)}: expected digest ${digest} but the bytes hash to sha256:`);
      expect(await readdir(work), `${backend}: left in ${work}`).toEqual([]);
    }
  });

  it('a multipart blob on S3 keeps create-only writes: a second one is a precondition failure, storing it again is success', async () => {
    const part = join(dir, 'above-threshold.bin'); // above the 16 MiB that go up in one PutObject
    await pipeline([randomBytes(20 * MiB)], createWriteStream(part));
    const st = moto.store(BUCKET, 'multipart');
    const at = await putBlobFile(st, part);
    await expect(st.putFile(blobKey(at), part, { ifNoneMatch: '*' })).rejects.toBeInstanceOf(PreconditionFailedError);
    expect(await putBlobFile(st, part)).toBe(at);
    expect(await getBlobToFile(st, at, join(dir, 'multipart-back', 'blob'))).toBe(20 * MiB);
    expect(await digestFile(join(dir, 'multipart-back', 'blob'))).toBe(at);
  });
});
