// The store interface (one for every backend) and content-addressed blobs on top of it.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { z } from 'zod';
import { DigestStream, digestBytes, digestFile, digestHex } from './digest';
import { DigestMismatchError, ErrorCode, TtdError } from '../contract/errors';

/** An object read from a store, with the tag a compare-and-swap write must name. */
export interface StoredObject {
  body: Buffer;
  etag: string;
}

/** An object read as a stream (artifacts: never held whole in memory), with its length. */
export interface StoredStream {
  body: Readable;
  size: number;
}

/** Conditions of a write: create-only (`ifNoneMatch: '*'`) or compare-and-swap (`ifMatch: etag`). */
export interface PutCondition {
  ifNoneMatch?: '*';
  ifMatch?: string;
}

/** A key-value store with conditional writes: the filesystem now, S3 later; the layer above never knows which. */
export interface ObjectStore {
  /** Where the store lives, for messages (never holds credentials). */
  readonly location: string;
  get(key: string): Promise<StoredObject | undefined>;
  /** Reads an object as a stream; the caller consumes or destroys `body`. */
  getStream(key: string): Promise<StoredStream | undefined>;
  /** Whether an object exists, and its size; no etag (a compare-and-swap reads one with get), so the fs store need
   * not hash a large blob to answer. */
  head(key: string): Promise<{ size: number } | undefined>;
  /** Writes bytes; throws PreconditionFailedError when a condition does not hold. */
  put(key: string, body: Buffer, condition?: PutCondition): Promise<{ etag: string }>;
  /** Writes a local file's bytes, streamed (large artifacts); same conditions as put. */
  putFile(key: string, path: string, condition?: PutCondition): Promise<{ etag: string }>;
  /** Where a store can take a file in place of copying it (the filesystem store: a rename on the same filesystem):
   * like putFile, but `path` may be gone afterwards. Only for a private file the caller wrote, hashed as it wrote it
   * (`etag`: that sha256 in hex), which nothing else can write. */
  adoptFile?(key: string, path: string, etag: string, condition?: PutCondition): Promise<{ etag: string }>;
  /** Keys under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Removes an object; a missing one is success. Only checkpoints past their retention are deleted. */
  delete(key: string): Promise<void>;
}

/** The key of a blob: blobs/sha256/<hex>. */
export function blobKey(digest: string): string {
  return `blobs/sha256/${digestHex(digest)}`;
}

/** Stores a local file by its sha256 (create-only; an existing blob with that digest is success). `known`: the file's
 * sha256 when the caller hashed the bytes as it wrote them (a large artifact is then read once less); never a digest
 * taken from anyone else. `owned`: the file is the caller's private copy, which the store may take instead of copying
 * (ObjectStore.adoptFile: one write of the artifact less); it may be gone afterwards. */
export async function putBlobFile(store: ObjectStore, path: string, known?: string, owned = false): Promise<string> {
  const digest = known ?? (await digestFile(path));
  const { size } = await stat(path);
  const adopt = owned && known !== undefined ? store.adoptFile?.bind(store) : undefined;
  await createBlob(store, digest, size, (key, condition) =>
    adopt ? adopt(key, path, digestHex(digest), condition) : store.putFile(key, path, condition),
  );
  return digest;
}

/** Stores bytes by their sha256 (create-only). */
export async function putBlob(store: ObjectStore, body: Buffer | string): Promise<string> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const digest = digestBytes(bytes);
  await createBlob(store, digest, bytes.length, (key, condition) => store.put(key, bytes, condition));
  return digest;
}

// A blob that already exists, or that a concurrent writer created first, has the same bytes: both are success. One
// whose size is not that of its bytes is damaged (truncated, say): writing the same content again repairs it, so a
// re-run of a version whose record or artifact was cut short puts it right.
async function createBlob(
  store: ObjectStore,
  digest: string,
  size: number,
  write: (key: string, condition: PutCondition) => Promise<unknown>,
): Promise<void> {
  const key = blobKey(digest);
  const existing = await store.head(key);
  if (existing && existing.size === size) return;
  try {
    await write(key, existing ? {} : { ifNoneMatch: '*' });
  } catch (err) {
    if ((err as TtdError).code !== ErrorCode.preconditionFailed) throw err;
  }
}

/** Parses a stored JSON object through its schema; bytes that are not JSON, or do not fit, become `damaged(what)`. */
export function parseStored<T>(body: Buffer, schema: z.ZodType<T>, damaged: (what: string) => Error): T {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw damaged(`not JSON (${(err as Error).message}, ${body.length} bytes)`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw damaged(`${parsed.error.issues[0]?.path.join('.') || '(root)'}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** Reads a blob whole and checks that its bytes hash to its digest: for small records; artifacts go through
 * getBlobToFile or verifyBlob, which stream. */
export async function getBlob(store: ObjectStore, digest: string): Promise<Buffer> {
  const obj = await store.get(blobKey(digest));
  if (!obj) throw missingBlob(store, digest);
  const actual = digestBytes(obj.body);
  if (actual !== digest) throw new DigestMismatchError(digest, actual, `blob ${blobKey(digest)}`);
  return obj.body;
}

/** Writes a verified blob to a local file, streamed: the bytes go to a temp file beside `path` while they are hashed,
 * and only a file that matches the digest is renamed to `path` (a mismatch leaves nothing there); returns its size. */
export async function getBlobToFile(store: ObjectStore, digest: string, path: string): Promise<number> {
  const obj = await store.getStream(blobKey(digest));
  if (!obj) throw missingBlob(store, digest);
  const tmp = `${path}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(dirname(path), { recursive: true });
    // 'wx': never through something already at the temp name (a planted link).
    const size = await hashInto(obj, digest, createWriteStream(tmp, { flags: 'wx' }));
    await rename(tmp, path);
    return size;
  } catch (err) {
    obj.body.destroy();
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Reads a blob through to its end, streamed, and checks its digest without keeping the bytes; returns its size. */
export async function verifyBlob(store: ObjectStore, digest: string): Promise<number> {
  const obj = await store.getStream(blobKey(digest));
  if (!obj) throw missingBlob(store, digest);
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
  return hashInto(obj, digest, discard);
}

// Pipes a stored stream through sha256 into `sink`; throws DigestMismatchError when the bytes are not the digest's.
async function hashInto(obj: StoredStream, digest: string, sink: Writable): Promise<number> {
  const hash = new DigestStream();
  await pipeline(obj.body, hash, sink);
  const actual = hash.digest();
  if (actual !== digest) throw new DigestMismatchError(digest, actual, `blob ${blobKey(digest)}`);
  return hash.bytes;
}

function missingBlob(store: ObjectStore, digest: string): TtdError {
  return new TtdError(ErrorCode.blobMissing, `blob ${digest} is missing from the store at ${store.location}`, { digest });
}
