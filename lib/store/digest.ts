// sha256 digests in the one form we store and print: "sha256:<hex>".
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

/** sha256 of bytes, as "sha256:<hex>". */
export function digestBytes(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** sha256 of a file, streamed, as "sha256:<hex>". */
export async function digestFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** A pass-through stream that hashes the bytes going through it, so a copy and its digest take one read. */
export class DigestStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  /** Bytes seen so far. */
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  /** The digest of everything that went through, as "sha256:<hex>"; call once, after the stream ended. */
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/** The hex part of a digest, after checking its form. */
export function digestHex(digest: string): string {
  if (!DIGEST_RE.test(digest)) throw new Error(`not a sha256 digest: '${digest}' (expected sha256:<64 hex>)`);
  return digest.slice('sha256:'.length);
}

/** Whether a string is a well-formed digest. */
export function isDigest(value: string): boolean {
  return DIGEST_RE.test(value);
}

/** JSON with object keys sorted at every level, so equal content always hashes the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
