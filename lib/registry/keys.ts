// Worker keys held outside the store: the ed25519 key pair that signs the audit trail and the HMAC key that
// authenticates step-cache entries. Store writers must not be able to read this directory (docs/trust-audit.md).
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { digestBytes } from '../store/digest';
import { ErrorCode, TtdError } from '../contract/errors';

/** The files of a keys directory. */
export const KeyFile = {
  auditPrivate: 'audit-ed25519.key',
  auditPublic: 'audit-ed25519.pub',
  stepCache: 'step-cache.hmac',
  anchors: 'anchors',
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

// Writes a file only if it does not exist, atomically (a temp file linked into place): two workers starting at once
// on one host agree on one key. Returns false when another process wrote it first.
function createOnce(path: string, content: string, mode: number): boolean {
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

const signers = new Map<string, AuditSigner>();

/** The audit signing key of a keys directory. With `create` (workers) a missing key pair is generated on first use;
 * without it (`ttd promote`, `ttd rollback`) a missing key is an audit_key_missing error. */
export function auditSigner(dir: string, opts: { create: boolean }): AuditSigner {
  const known = signers.get(dir);
  if (known) return known;
  const path = join(dir, KeyFile.auditPrivate);
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
  signers.set(dir, signer);
  return signer;
}

/** A verifier from a public key file (PEM, SubjectPublicKeyInfo); a private key file is accepted too. */
export function verifierFromFile(path: string): AuditVerifier {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (err) {
    throw new TtdError(ErrorCode.auditKeyMissing, `cannot read the public key ${path}: ${(err as Error).message}`, { path });
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(text);
  } catch (err) {
    throw new TtdError(ErrorCode.auditKeyInvalid, `${path} is not a PEM public key: ${(err as Error).message}`, { path });
  }
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

/** What a verification can use: the public key (`publicKey` file, else the keys directory's), and the anchors
 * (`anchorsDir`, else the keys directory's when it has them). */
export function auditReader(
  dir: string,
  opts: { publicKey?: string; anchorsDir?: string } = {},
): { verifier?: AuditVerifier; anchorsDir?: string } {
  const verifier = opts.publicKey ? verifierFromFile(opts.publicKey) : verifierFromKeysDir(dir);
  const anchors = opts.anchorsDir ?? join(dir, KeyFile.anchors);
  return { verifier, anchorsDir: opts.anchorsDir || existsSync(anchors) ? anchors : undefined };
}
