// Worker keys held outside the store: the ed25519 key pair that signs the audit trail and the HMAC key that
// authenticates step-cache entries. Store writers must not be able to read this directory (docs/trust-audit.md).
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  constants as fsConstants,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { canonicalJson, digestBytes, digestHex } from '../store/digest';
import { ErrorCode, TtdError } from '../contract/errors';

/** The files of a keys directory. */
export const KeyFile = {
  auditPrivate: 'audit-ed25519.key',
  auditPublic: 'audit-ed25519.pub',
  stepCache: 'step-cache.hmac',
  anchors: 'anchors',
  /** Keys retired by `ttd audit rotate-key`: one statement per key (`<key hex>.json`), with its public key and the
   * records it signed; never a private key, once the rotation is over. */
  retired: 'retired',
} as const;

/** Signs audit records and anchors with the workers' private key. */
export interface AuditSigner {
  /** sha256 of the public key (DER, SubjectPublicKeyInfo): what records name as `keyId`. */
  readonly keyId: string;
  sign(message: string): string;
}

/** Checks signatures with a public key (an auditor may hold only this). */
export interface AuditVerifier {
  readonly keyId: string;
  /** Where the key came from, for messages. */
  readonly source: string;
  verify(message: string, signature: string): boolean;
  /** Keys retired before this one: records (and anchors) they signed verify up to where each was retired. */
  readonly retired?: readonly RetiredKey[];
}

/** A retired signing key: its public half, and how far it signed each model's chain when it was retired. Records it
 * signs beyond that are refused: a retired key cannot sign new records, even if its private half leaked. */
export interface RetiredKey {
  readonly keyId: string;
  readonly source: string;
  readonly retiredAt: string;
  /** Per model, the last record of its chain when the key was retired. */
  readonly heads: Readonly<Record<string, number>>;
  verify(message: string, signature: string): boolean;
}

/** The key id of a public key: the sha256 of its DER SubjectPublicKeyInfo. */
export function keyIdOf(publicKey: KeyObject): string {
  return digestBytes(publicKey.export({ type: 'spki', format: 'der' }));
}

/** Creates the keys directory (mode 0700) when it does not exist yet. */
export function ensureKeysDir(dir: string): void {
  if (existsSync(dir)) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700); // mkdir's mode is filtered by the umask
}

/** Writes a file only if it does not exist, atomically (a temp file linked into place): two workers starting at once
 * on one host agree on one key. Returns false when another process wrote it first. */
export function createOnce(path: string, content: string, mode: number): boolean {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}`;
  writeFileSync(tmp, content, { mode });
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
}

// Per keys directory, the signer and the key file it was read from (inode, size, mtime): a rotation replaces the
// file, and a long-lived worker signs its next record with the new key.
const signers = new Map<string, { signer: AuditSigner; file: string }>();
const fileIdentity = (path: string) => {
  const st = statSync(path);
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
};

/** The audit signing key of a keys directory. With `create` (workers) a missing key pair is generated on first use;
 * without it (`ttd promote`, `ttd rollback`) a missing key is an audit_key_missing error. */
export function auditSigner(dir: string, opts: { create: boolean }): AuditSigner {
  const path = join(dir, KeyFile.auditPrivate);
  const known = signers.get(dir);
  if (known && existsSync(path) && known.file === fileIdentity(path)) return known.signer;
  if (!existsSync(path)) {
    if (!opts.create) {
      throw new TtdError(
        ErrorCode.auditKeyMissing,
        `no audit signing key at ${path}: audit records must be signed by the workers' key; run this where the workers' keys directory is, or set TTD_KEYS to it`,
        { path },
      );
    }
    ensureKeysDir(dir);
    const { privateKey } = generateKeyPairSync('ed25519');
    createOnce(path, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  }
  const privateKey = createPrivateKey(readFileSync(path));
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TtdError(ErrorCode.auditKeyInvalid, `${path} holds a ${privateKey.asymmetricKeyType} key; expected an ed25519 private key`, {
      path,
    });
  }
  const publicKey = createPublicKey(privateKey);
  // The public half beside it, for auditors to copy (derived, so it can never disagree with the private key).
  const pub = join(dir, KeyFile.auditPublic);
  if (!existsSync(pub)) createOnce(pub, publicKey.export({ type: 'spki', format: 'pem' }) as string, 0o644);
  const signer: AuditSigner = {
    keyId: keyIdOf(publicKey),
    sign: (message) => sign(null, Buffer.from(message, 'utf8'), privateKey).toString('base64'),
  };
  signers.set(dir, { signer, file: fileIdentity(path) });
  return signer;
}

/** The public key in a PEM file (SubjectPublicKeyInfo, or a private key's public half); `fail` makes the caller's
 * error for a file that cannot be read, and for one that holds no key. */
export function publicKeyFromFile(path: string, fail: { unreadable(err: Error): Error; notAKey(err: Error): Error }): KeyObject {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (err) {
    throw fail.unreadable(err as Error);
  }
  try {
    return createPublicKey(text);
  } catch (err) {
    throw fail.notAKey(err as Error);
  }
}

/** A verifier from a public key file (PEM, SubjectPublicKeyInfo); a private key file is accepted too. */
export function verifierFromFile(path: string): AuditVerifier {
  const publicKey = publicKeyFromFile(path, {
    unreadable: (err) => new TtdError(ErrorCode.auditKeyMissing, `cannot read the public key ${path}: ${err.message}`, { path }),
    notAKey: (err) => new TtdError(ErrorCode.auditKeyInvalid, `${path} is not a PEM public key: ${err.message}`, { path }),
  });
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    throw new TtdError(ErrorCode.auditKeyInvalid, `${path} holds a ${publicKey.asymmetricKeyType} key; expected an ed25519 public key`, {
      path,
    });
  }
  return {
    keyId: keyIdOf(publicKey),
    source: path,
    verify: (message, signature) => {
      try {
        return verify(null, Buffer.from(message, 'utf8'), publicKey, Buffer.from(signature, 'base64'));
      } catch {
        return false;
      }
    },
  };
}

/** The verifier a keys directory offers: its public key file, else the public half of its private key; undefined
 * when it has neither (an auditor then passes --public-key). */
export function verifierFromKeysDir(dir: string): AuditVerifier | undefined {
  for (const name of [KeyFile.auditPublic, KeyFile.auditPrivate]) {
    const path = join(dir, name);
    if (existsSync(path)) return verifierFromFile(path);
  }
  return undefined;
}

const cacheKeys = new Map<string, Buffer>();

/** The step cache's HMAC key (32 random bytes, hex in the file), generated on first use. */
export function stepCacheKey(dir: string): Buffer {
  const known = cacheKeys.get(dir);
  if (known) return known;
  const path = join(dir, KeyFile.stepCache);
  if (!existsSync(path)) {
    ensureKeysDir(dir);
    createOnce(path, `${randomBytes(32).toString('hex')}\n`, 0o600);
  }
  const hex = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64,}$/.test(hex)) {
    throw new TtdError(ErrorCode.auditKeyInvalid, `${path} does not hold a step-cache key: expected at least 64 hex digits`, { path });
  }
  const key = Buffer.from(hex, 'hex');
  cacheKeys.set(dir, key);
  return key;
}

/** What an audit append needs from a keys directory: its signing key and its anchors folder. */
export function auditWriter(dir: string, opts: { create: boolean }): { signer: AuditSigner; anchorsDir: string } {
  return { signer: auditSigner(dir, opts), anchorsDir: join(dir, KeyFile.anchors) };
}

/** The largest public key file read: a PEM ed25519 public key is 113 bytes. */
const PUBLIC_KEY_MAX_BYTES = 64 * 1024;

/** Checks a path an auditor gave (`--public-key`, `--anchors`, `--retired-keys`): it exists and is a `kind`, and a key
 * file is small; an argument_invalid error naming the flag and the path otherwise. */
function givenPath(flag: string, path: string, kind: 'file' | 'directory'): void {
  const fail = (what: string) =>
    new TtdError(
      ErrorCode.argumentInvalid,
      `${flag} '${path}' ${what}; expected ${kind === 'file' ? 'an ed25519 public key file (PEM)' : 'a directory'}`,
      { flag, value: path },
    );
  if (!path.trim()) throw fail('is an empty path');
  let stat;
  try {
    stat = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${code ?? (err as Error).message})`);
  }
  if (kind === 'directory' && !stat.isDirectory()) throw fail('is not a directory');
  if (kind === 'file' && !stat.isFile()) throw fail(stat.isDirectory() ? 'is a directory' : 'is not a regular file');
  if (kind === 'file' && stat.size > PUBLIC_KEY_MAX_BYTES) throw fail(`is ${stat.size} bytes, not a key`);
}

/** What a verification can use: the public key (`publicKey` file, else the keys directory's), and the anchors
 * (`anchorsDir`, else the keys directory's when it has them). */
export function auditReader(
  dir: string,
  opts: { publicKey?: string; anchorsDir?: string; retiredDir?: string } = {},
): { verifier?: AuditVerifier; anchorsDir?: string } {
  // A path given for an auditor's check must be there: a typo would otherwise verify without it, and say ok.
  if (opts.publicKey !== undefined) givenPath('--public-key', opts.publicKey, 'file');
  if (opts.anchorsDir !== undefined) givenPath('--anchors', opts.anchorsDir, 'directory');
  if (opts.retiredDir !== undefined) givenPath('--retired-keys', opts.retiredDir, 'directory');
  const current = opts.publicKey ? verifierFromFile(opts.publicKey) : verifierFromKeysDir(dir);
  const retired = current && retiredKeys(opts.retiredDir ?? join(dir, KeyFile.retired), current);
  const verifier = current && retired?.length ? { ...current, retired } : current;
  const anchors = opts.anchorsDir ?? join(dir, KeyFile.anchors);
  return { verifier, anchorsDir: opts.anchorsDir || existsSync(anchors) ? anchors : undefined };
}

const RETIRED_FORMAT = 'ttd-audit-retired-key/1';
const RetiredStatement = z.strictObject({
  format: z.literal(RETIRED_FORMAT),
  keyId: z.string(),
  publicKey: z.string(),
  retiredAt: z.string(),
  heads: z.record(z.string(), z.number().int().nonnegative()),
  successor: z.string(),
  signature: z.string(),
});
type RetiredStatement = z.infer<typeof RetiredStatement>;

/** What a retirement statement's signature (by the key that succeeded it) covers. */
function retiredMessage(s: Omit<RetiredStatement, 'signature' | 'format'>): string {
  return `ttd-audit-retired-key:${canonicalJson({ keyId: s.keyId, publicKey: s.publicKey, retiredAt: s.retiredAt, heads: s.heads, successor: s.successor })}`;
}

/** The retired keys of a folder, each statement checked: its public key has its key id, and its signature verifies
 * with its successor (the current key, or a key retired after it). A statement that does not is an error naming it. */
export function retiredKeys(dir: string, current: AuditVerifier): RetiredKey[] {
  if (!existsSync(dir)) return [];
  const bad = (path: string, why: string) =>
    new TtdError(ErrorCode.auditKeyInvalid, `${path} is not a retired audit key ttd can trust: ${why}`, { path });
  const statements = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const path = join(dir, f);
      let parsed;
      try {
        parsed = RetiredStatement.safeParse(JSON.parse(readFileSync(path, 'utf8')));
      } catch (err) {
        throw bad(path, `not JSON (${(err as Error).message})`);
      }
      if (!parsed.success) throw bad(path, `expected a ${RETIRED_FORMAT} statement (${parsed.error.issues[0]?.message})`);
      let publicKey: KeyObject;
      try {
        publicKey = createPublicKey(parsed.data.publicKey);
      } catch (err) {
        throw bad(path, `its publicKey is not a PEM public key (${(err as Error).message})`);
      }
      if (keyIdOf(publicKey) !== parsed.data.keyId)
        throw bad(path, `its publicKey has key id ${keyIdOf(publicKey)}, not ${parsed.data.keyId}`);
      return { path, statement: parsed.data, publicKey };
    });
  const verifyWith = (publicKey: KeyObject) => (message: string, signature: string) => {
    try {
      return verify(null, Buffer.from(message, 'utf8'), publicKey, Buffer.from(signature, 'base64'));
    } catch {
      return false;
    }
  };
  const byId = new Map(statements.map((s) => [s.statement.keyId, verifyWith(s.publicKey)]));
  return statements.map(({ path, statement, publicKey }) => {
    const successor = statement.successor === current.keyId ? current.verify.bind(current) : byId.get(statement.successor);
    if (!successor) throw bad(path, `it names successor key ${statement.successor}, which is neither the trusted key nor a retired one`);
    if (!successor(retiredMessage(statement), statement.signature))
      throw bad(path, `its signature does not verify with its successor ${statement.successor}`);
    return { keyId: statement.keyId, source: path, retiredAt: statement.retiredAt, heads: statement.heads, verify: verifyWith(publicKey) };
  });
}

/** What a rotation did: the new key, the retired one, and how far the retired key had signed each chain. */
export interface Rotation {
  keyId: string;
  retiredKeyId: string;
  retiredKeyFile: string;
  heads: Record<string, number>;
  resumed: boolean;
}

/** Rotates the audit signing key of a keys directory: a new key signs every record from now on; the old key's public
 * half is kept in `retired/`, with the length each model's chain had (`heads`, from `chainHeads`), signed by the new
 * key, and its private half is deleted. Records the old key signed up to there still verify; any it signs later do
 * not. Interrupted (a crash, a store that did not answer), it leaves the old private key in `retired/<hex>.key`, and
 * the next call finishes that rotation instead of starting another. `reSign(old, signer)` re-signs what the old key
 * signed outside the store (the anchors). */
export async function rotateAuditKey(
  dir: string,
  chainHeads: () => Promise<Record<string, number>>,
  reSign: (old: AuditVerifier, signer: AuditSigner) => void,
): Promise<Rotation> {
  const retiredDir = join(dir, KeyFile.retired);
  const path = join(dir, KeyFile.auditPrivate);
  let pending = existsSync(retiredDir) ? readdirSync(retiredDir).find((f) => f.endsWith('.key')) : undefined;
  const resumed = pending !== undefined;
  if (!pending) {
    const old = auditSigner(dir, { create: false });
    mkdirSync(retiredDir, { recursive: true, mode: 0o700 });
    pending = `${digestHex(old.keyId)}.key`;
    // The old private key is kept aside until its statement is written: a crash before that loses nothing.
    copyFileSync(path, join(retiredDir, pending), fsConstants.COPYFILE_EXCL);
  }
  const oldKeyPath = join(retiredDir, pending);
  const oldVerifier = verifierFromFile(oldKeyPath);
  if (auditSigner(dir, { create: false }).keyId === oldVerifier.keyId) {
    // The new key, in place of the old one (also when an interrupted rotation stopped before this).
    const { privateKey } = generateKeyPairSync('ed25519');
    const replace = (target: string, content: string, mode: number) => {
      const tmp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}`;
      writeFileSync(tmp, content, { mode });
      renameSync(tmp, target);
    };
    replace(path, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    replace(join(dir, KeyFile.auditPublic), createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string, 0o644);
  }
  const signer = auditSigner(dir, { create: false });
  // After the new key is in place: a record the old key signed is counted if it landed before this.
  const heads = await chainHeads();
  const unsigned = {
    keyId: oldVerifier.keyId,
    publicKey: createPublicKey(readFileSync(oldKeyPath)).export({ type: 'spki', format: 'pem' }) as string,
    retiredAt: new Date().toISOString(),
    heads,
    successor: signer.keyId,
  };
  const statement = { format: RETIRED_FORMAT, ...unsigned, signature: signer.sign(retiredMessage(unsigned)) };
  const retiredKeyFile = join(retiredDir, `${digestHex(oldVerifier.keyId)}.json`);
  const tmp = `${retiredKeyFile}.${process.pid}.${randomBytes(6).toString('hex')}`;
  writeFileSync(tmp, `${JSON.stringify(statement, null, 2)}\n`, { mode: 0o644 });
  renameSync(tmp, retiredKeyFile);
  reSign(oldVerifier, signer);
  rmSync(oldKeyPath); // from here the old key can sign nothing
  return { keyId: signer.keyId, retiredKeyId: oldVerifier.keyId, retiredKeyFile, heads, resumed };
}
