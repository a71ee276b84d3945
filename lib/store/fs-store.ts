// The filesystem backend of ObjectStore: the embedded default under $TTD_HOME/store.
import { createHash } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DigestStream, digestHex } from './digest';
import { PreconditionFailedError } from '../contract/errors';
import type { ObjectStore, PutCondition, StoredObject, StoredStream } from './store';

const LOCK_WAIT_MS = 10_000;

/** Stores objects as files; create-only writes use link(2), compare-and-swap holds a lock file. */
export class FsObjectStore implements ObjectStore {
  readonly location: string;

  constructor(private readonly root: string) {
    this.location = `file://${root}`;
  }

  private path(key: string): string {
    if (key.split('/').some((part) => part === '..' || part === '')) throw new Error(`invalid store key '${key}'`);
    return join(this.root, ...key.split('/'));
  }

  async get(key: string): Promise<StoredObject | undefined> {
    try {
      const body = await readFile(this.path(key));
      return { body, etag: etagOf(body) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async getStream(key: string): Promise<StoredStream | undefined> {
    const handle = await open(this.path(key), 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!handle) return undefined;
    try {
      // One descriptor for the size and the bytes: a replaced object is read as it was when opened.
      const { size } = await handle.stat();
      return { body: handle.createReadStream(), size };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    try {
      return { size: (await stat(this.path(key))).size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async put(key: string, body: Buffer, condition: PutCondition = {}): Promise<{ etag: string }> {
    const tmp = await this.tempFile(key);
    await writeFile(tmp, body);
    return this.commit(key, tmp, etagOf(body), condition);
  }

  async putFile(key: string, path: string, condition: PutCondition = {}): Promise<{ etag: string }> {
    const tmp = await this.tempFile(key);
    const hash = new DigestStream();
    try {
      await pipeline(createReadStream(path), hash, createWriteStream(tmp, { flags: 'wx' }));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return this.commit(key, tmp, digestHex(hash.digest()), condition);
  }

  // A rename into the store's temp directory, then the same commit as putFile; on another filesystem, putFile's copy.
  async adoptFile(key: string, path: string, etag: string, condition: PutCondition = {}): Promise<{ etag: string }> {
    const tmp = await this.tempFile(key);
    try {
      await rename(path, tmp);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EXDEV') return this.putFile(key, path, condition);
      throw err;
    }
    return this.commit(key, tmp, etag, condition);
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const full = join(dir, e.name);
        if (e.isDirectory()) {
          if (e.name !== '.tmp') await walk(full);
        } else if (!e.name.endsWith('.lock')) {
          const key = relative(this.root, full).split(sep).join('/');
          if (key.startsWith(prefix)) out.push(key);
        }
      }
    };
    // From the prefix's folder, not the root: listing one blob's references need not walk the whole store.
    const parts = prefix.split('/').slice(0, -1);
    await walk(parts.some((p) => p === '..' || p === '') ? this.root : join(this.root, ...parts));
    return out.sort();
  }

  private async tempFile(key: string): Promise<string> {
    const dir = join(this.root, '.tmp');
    await mkdir(dir, { recursive: true });
    return join(dir, `${key.replace(/[^a-zA-Z0-9]/g, '_').slice(-80)}.${process.pid}.${Math.random().toString(36).slice(2)}`);
  }

  // Moves a fully written temp file into place, so a reader never sees a partial object.
  private async commit(key: string, tmp: string, etag: string, condition: PutCondition): Promise<{ etag: string }> {
    const dest = this.path(key);
    await mkdir(dirname(dest), { recursive: true });
    try {
      if (condition.ifNoneMatch === '*') {
        try {
          await link(tmp, dest); // atomic create-only: fails with EEXIST if the key exists
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new PreconditionFailedError(key);
          throw err;
        }
        return { etag };
      }
      if (condition.ifMatch !== undefined) {
        await this.withLock(dest, async () => {
          const current = await this.get(key);
          if (!current || current.etag !== condition.ifMatch) throw new PreconditionFailedError(key);
          await rename(tmp, dest);
        });
        return { etag };
      }
      await rename(tmp, dest);
      return { etag };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private async withLock(dest: string, fn: () => Promise<void>): Promise<void> {
    const lock = `${dest}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const handle = await open(lock, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY);
        await handle.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // A lock older than the wait is left by a crashed writer: take it over.
        const age = await stat(lock).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (age > LOCK_WAIT_MS) await rm(lock, { force: true });
        else if (Date.now() > deadline) throw new Error(`timed out waiting for the lock ${lock}`);
        else await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
      }
    }
    try {
      await fn();
    } finally {
      await rm(lock, { force: true });
    }
  }
}

/** The filesystem etag: sha256 of the content, so it changes whenever the bytes do. */
function etagOf(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}
