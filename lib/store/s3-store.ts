// The S3 backend of ObjectStore (AWS S3, MinIO, any S3-compatible store): conditional writes on ETags.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ErrorCode, PreconditionFailedError, TtdError } from '../contract/errors';
import type { ObjectStore, PutCondition, StoredObject, StoredStream } from './store';

// Files above this go up in parts (lib-storage); below it one conditional PutObject.
const MULTIPART_THRESHOLD = 16 * 1024 * 1024;

/** Stores objects under s3://bucket/prefix; credentials come from the standard AWS chain, never from us. */
export class S3ObjectStore implements ObjectStore {
  readonly location: string;
  private readonly client: S3Client;
  private readonly endpoint: string | undefined;

  constructor(
    private readonly bucket: string,
    private readonly prefix: string,
    config: S3ClientConfig = {},
  ) {
    this.location = `s3://${bucket}/${prefix}`;
    const endpoint = process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    this.endpoint = endpoint;
    this.client = new S3Client({
      region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      // S3-compatible servers (MinIO, moto) on a custom endpoint usually want path-style addressing.
      ...(endpoint ? { endpoint, forcePathStyle: process.env.TTD_S3_VIRTUAL_HOSTED !== '1' } : {}),
      // Connection errors are retried with backoff: about 25 s of endpoint outage is ridden out by one call.
      maxAttempts: Number(process.env.TTD_S3_MAX_ATTEMPTS ?? 10),
      // A connection that stalls (an endpoint that accepts and never answers, a link that stops mid-blob) is cut after
      // this long without a byte either way, and retried like a refused one: a live host never hangs on it, whatever
      // the blob's size (a transfer that moves data is never cut).
      requestHandler: { connectionTimeout: 10_000, socketTimeout: idleTimeoutMs(process.env.TTD_S3_IDLE_TIMEOUT_S) },
      // Every blob read is checked against its sha256 by us (getBlobToFile, verifyBlob). The SDK's own check of a
      // response's CRC mistakes a multipart object's composite checksum (as moto sends it) for a whole-object one.
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...config,
    });
  }

  /** Sends one request; an error that is not an answer about the object (404, 412) becomes a TtdError naming
   * TTD_STORE, the endpoint and the bucket. */
  private async send<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (notFound(err) && !bucketMissing(err)) throw err;
      if (preconditionFailed(err)) throw err;
      throw storeError(err, what, this.location, this.bucket, this.endpoint);
    }
  }

  private key(key: string): string {
    if (key.split('/').some((part) => part === '..' || part === '')) throw new Error(`invalid store key '${key}'`);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async get(key: string): Promise<StoredObject | undefined> {
    try {
      const out = await this.send(`reading ${key}`, () =>
        this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) })),
      );
      const body = Buffer.from(await out.Body!.transformToByteArray());
      return { body, etag: out.ETag ?? '' };
    } catch (err) {
      if (notFound(err)) return undefined;
      throw err;
    }
  }

  async getStream(key: string): Promise<StoredStream | undefined> {
    try {
      const out = await this.send(`reading ${key}`, () =>
        this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) })),
      );
      // In Node the SDK's body is an http.IncomingMessage, pulled from the socket as it is consumed. A connection lost
      // mid-body fails the reader with the same store error (naming TTD_STORE) as a failed request.
      const body = new PassThrough();
      pipeline(out.Body as Readable, body).catch((err: unknown) =>
        body.destroy(storeError(err, `reading ${key}`, this.location, this.bucket, this.endpoint)),
      );
      return { body, size: Number(out.ContentLength ?? 0) };
    } catch (err) {
      if (notFound(err)) return undefined;
      throw err;
    }
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    try {
      const out = await this.send(`reading ${key}`, () =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) })),
      );
      return { size: Number(out.ContentLength ?? 0) };
    } catch (err) {
      if (notFound(err)) return undefined;
      throw err;
    }
  }

  async put(key: string, body: Buffer, condition: PutCondition = {}): Promise<{ etag: string }> {
    try {
      const out = await this.send(`writing ${key}`, () =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.key(key),
            Body: body,
            ContentLength: body.length,
            ...(condition.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
            ...(condition.ifMatch !== undefined ? { IfMatch: condition.ifMatch } : {}),
          }),
        ),
      );
      return { etag: out.ETag ?? '' };
    } catch (err) {
      if (preconditionFailed(err)) throw new PreconditionFailedError(key);
      throw err;
    }
  }

  async putFile(key: string, path: string, condition: PutCondition = {}): Promise<{ etag: string }> {
    const { size } = await stat(path);
    // A small file in one conditional PutObject; at most MULTIPART_THRESHOLD bytes are held.
    if (size <= MULTIPART_THRESHOLD) return this.put(key, await readFile(path), condition);
    // Multipart: S3 makes the object visible only when the upload completes, so no partial blob is ever seen.
    try {
      const upload = new Upload({
        client: this.client,
        params: {
          Bucket: this.bucket,
          Key: this.key(key),
          Body: createReadStream(path),
          ...(condition.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        },
      });
      const out = await this.send(`writing ${key}`, () => upload.done());
      return { etag: out.ETag ?? '' };
    } catch (err) {
      if (preconditionFailed(err)) throw new PreconditionFailedError(key);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    // Through send: a refused delete (a policy without s3:DeleteObject) is store_access_denied naming TTD_STORE.
    await this.send(`deleting ${key}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) })));
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    do {
      const page = await this.send(`listing ${prefix || 'the store'}`, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: `${this.prefix ? `${this.prefix}/` : ''}${prefix}`, // our own prefixes, never user input
            ContinuationToken: token,
          }),
        ),
      );
      for (const obj of page.Contents ?? []) if (obj.Key) out.push(obj.Key.slice(strip));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  }
}

function bucketMissing(err: unknown): boolean {
  return (err as Error)?.name === 'NoSuchBucket';
}

/** An S3 failure in words: TTD_STORE, the endpoint, the bucket, what we were doing and what to check. */
/** TTD_S3_IDLE_TIMEOUT_S (seconds, default 120) in milliseconds; anything but a positive number is config_invalid. */
export function idleTimeoutMs(value: string | undefined): number {
  if (value === undefined || value === '') return 120_000;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400)
    throw new TtdError(
      ErrorCode.configInvalid,
      `TTD_S3_IDLE_TIMEOUT_S='${value}'; expected the seconds an S3 connection may stay silent before it is cut and retried, a positive number up to 86400 (default 120)`,
      { setting: 'TTD_S3_IDLE_TIMEOUT_S' },
    );
  return Math.round(seconds * 1000);
}

function storeError(err: unknown, what: string, location: string, bucket: string, endpoint: string | undefined): TtdError {
  const name = (err as Error)?.name ?? 'Error';
  const code = (err as NodeJS.ErrnoException)?.code;
  const where = `TTD_STORE '${location}' (endpoint ${endpoint ? `'${endpoint}' from AWS_ENDPOINT_URL` : 'AWS S3'}, bucket '${bucket}')`;
  const detail = ((err as Error)?.message ?? String(err)).split('\n')[0].slice(0, 200);
  if (bucketMissing(err))
    return new TtdError(ErrorCode.storeBucketMissing, `${where}: the bucket does not exist (${what}); create it or fix TTD_STORE`, {
      bucket,
      endpoint,
    });
  if (status(err) === 403 || ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken'].includes(name))
    return new TtdError(
      ErrorCode.storeAccessDenied,
      `${where}: access denied (${what}): ${name}; check the AWS credentials and the bucket's policy`,
      { bucket, endpoint },
    );
  if (status(err) === undefined || ['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN'].includes(code ?? name))
    return new TtdError(
      ErrorCode.storeUnreachable,
      `${where} cannot be reached (${what}): ${detail}; check that the endpoint is up and AWS_ENDPOINT_URL is right`,
      { bucket, endpoint },
    );
  return new TtdError(ErrorCode.storeUnreachable, `${where} failed (${what}): ${name} (HTTP ${status(err)}): ${detail}`, {
    bucket,
    endpoint,
  });
}

function status(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
}

function notFound(err: unknown): boolean {
  return status(err) === 404 || (err as Error)?.name === 'NoSuchKey' || (err as Error)?.name === 'NotFound';
}

function preconditionFailed(err: unknown): boolean {
  // 412 for a failed If-None-Match/If-Match; 409 when a concurrent conditional write is in flight.
  return status(err) === 412 || status(err) === 409 || (err as Error)?.name === 'PreconditionFailed';
}

/** Parses s3://bucket/prefix. */
export function parseS3Url(url: string): { bucket: string; prefix: string } | undefined {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) return undefined;
  return { bucket: m[1], prefix: (m[2] ?? '').replace(/\/+$/, '') };
}
