// The key that signs each version for tools that are not ttd's: the OpenSSF model signature (`model_signing verify key`)
// and the SLSA provenance's DSSE envelope. An ECDSA key (P-256 by default), because model_signing refuses ed25519: it
// lives beside the ed25519 audit key in the keys directory, or where TTD_SIGNING_KEY names an operator's own key.
// Checked before a run trains (docs/trust-provenance.md), so a run never does its work and then cannot be signed.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { ErrorCode, TtdError } from '../contract/errors';
import { createOnce, ensureKeysDir, publicKeyFromFile } from './keys';

/** The files of the model signing key in a keys directory. */
export const SigningKeyFile = {
  private: 'model-signing-p256.key',
  /** The public half, for auditors and serving platforms: `model_signing verify key --public_key` takes it as it is. */
  public: 'model-signing-p256.pub',
  /** Public keys of replaced signing keys (`<key id>.pub`): versions they signed still verify (docs/trust-provenance.md). */
  retired: 'retired-signing',
} as const;

/** The curves model_signing accepts, and the hash it signs with on each (the Sigstore bundle's rule). */
const CURVES: Record<string, { name: string; hash: 'sha256' | 'sha384' | 'sha512'; scheme: string }> = {
  prime256v1: { name: 'P-256', hash: 'sha256', scheme: 'ecdsa-sha2-nistp256' },
  secp384r1: { name: 'P-384', hash: 'sha384', scheme: 'ecdsa-sha2-nistp384' },
  secp521r1: { name: 'P-521', hash: 'sha512', scheme: 'ecdsa-sha2-nistp521' },
};

/** Where the signing key is: an operator's key (TTD_SIGNING_KEY), or the keys directory's, created on first use. The
 * fields are named as the configuration names them (lib/config.ts), so a Config is a source. */
export interface SigningKeySource {
  keysDir: string;
  /** TTD_SIGNING_KEY: a PEM private key the operator manages; it is never created. */
  signingKey?: string | undefined;
}

/** Signs with the model signing key. */
export interface ModelSigner {
  /** The key's hint in a Sigstore bundle: the hex sha256 of its PEM public key (what model_signing compares). */
  readonly keyId: string;
  readonly publicKeyPem: string;
  /** P-256, P-384 or P-521. */
  readonly curve: string;
  /** The key id a DSSE envelope names it by: the one securesystemslib (in-toto's library) gives this public key by
   * default, the sha256 of its canonical JSON, so its `Envelope.verify` matches the signature to the key unaided. */
  readonly dsseKeyId: string;
  /** Where the key was read from, for messages. */
  readonly source: string;
  /** An ECDSA signature (DER) of `data` with the curve's hash. */
  sign(data: Buffer): Buffer;
}

/** Checks a signature with a model signing public key. */
export interface ModelVerifier {
  readonly keyId: string;
  readonly source: string;
  verify(data: Buffer, signature: Buffer): boolean;
}

/** The hint model_signing records for a public key: the hex sha256 of its PEM (SubjectPublicKeyInfo). */
export function keyHint(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'pem' }) as string)
    .digest('hex');
}

// securesystemslib's default key id: sha256 of the OLPC canonical JSON of {keytype, scheme, keyval} (keys sorted, no
// spaces, strings with only backslash and quote escaped).
function dsseKeyId(pem: string, scheme: string): string {
  const str = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const canonical = `{"keytype":"ecdsa","keyval":{"public":${str(pem)}},"scheme":${str(scheme)}}`;
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

const missing = (path: string, why: string) => new TtdError(ErrorCode.signingKeyMissing, why, { path });
const invalid = (path: string, why: string) =>
  new TtdError(
    ErrorCode.signingKeyInvalid,
    `${path}: ${why}; expected an unencrypted PEM ECDSA private key on P-256 (or P-384, P-521), the kind \`model_signing sign key\` takes`,
    { path },
  );

// The curve of an EC key, or a TtdError naming what the key is instead.
function curveOf(key: KeyObject, path: string): (typeof CURVES)[string] {
  if (key.asymmetricKeyType !== 'ec') {
    throw invalid(path, `it holds a ${key.asymmetricKeyType} key, which model_signing refuses`);
  }
  const named = key.asymmetricKeyDetails?.namedCurve ?? 'an unnamed curve';
  const curve = CURVES[named];
  if (!curve) throw invalid(path, `it holds an EC key on ${named}, which model_signing refuses`);
  return curve;
}

function readPrivateKey(path: string): KeyObject {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw missing(path, `no model signing key at ${path}`);
    throw invalid(path, `it cannot be read (${code ?? (err as Error).message})`);
  }
  if (/ENCRYPTED/.test(text.toString('latin1'))) throw invalid(path, 'it is encrypted with a passphrase, which a worker cannot type');
  try {
    return createPrivateKey(text);
  } catch (err) {
    const isPublic = (() => {
      try {
        createPublicKey(text);
        return true;
      } catch {
        return false;
      }
    })();
    throw invalid(path, isPublic ? 'it holds a public key, not a private one' : `it is not a PEM private key (${(err as Error).message})`);
  }
}

// Per key file, the signer and the file's content it was made from: a replaced key is read again.
const signers = new Map<string, { signer: ModelSigner; text: string }>();

/** The model signing key. With `create` (workers), the keys directory's key is generated on first use; an operator's
 * key (TTD_SIGNING_KEY) never is. Throws signing_key_missing or signing_key_invalid, naming the file and the reason. */
export function modelSigner(source: SigningKeySource, opts: { create: boolean }): ModelSigner {
  const given = source.signingKey;
  const path = given ?? join(source.keysDir, SigningKeyFile.private);
  if (!existsSync(path)) {
    if (given) {
      throw missing(
        path,
        `TTD_SIGNING_KEY names ${path}, which does not exist; expected the PEM ECDSA P-256 private key that signs versions`,
      );
    }
    if (!opts.create) {
      throw missing(
        path,
        `no model signing key at ${path}: versions are signed by the workers' key; run this where the workers' keys directory is, or set TTD_KEYS to it`,
      );
    }
    try {
      ensureKeysDir(source.keysDir);
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      createOnce(path, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    } catch (err) {
      if (err instanceof TtdError) throw err;
      throw missing(
        path,
        `no model signing key at ${path}, and it cannot be created (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); expected the keys directory (TTD_KEYS, ${source.keysDir}) to be a directory this process can write, or TTD_SIGNING_KEY to name a key`,
      );
    }
  }
  const read = (file: string) => {
    try {
      return readFileSync(file, 'latin1');
    } catch {
      return '';
    }
  };
  // What the signer was made from: the key, and the public half published beside it (checked against it below).
  const text = read(path) + (given ? '' : `\n${read(join(source.keysDir, SigningKeyFile.public))}`);
  const known = signers.get(path);
  if (known && known.text === text) return known.signer;
  const privateKey = readPrivateKey(path);
  const curve = curveOf(privateKey, path);
  const publicKey = createPublicKey(privateKey);
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  if (!given) {
    // The public half beside it, for auditors to copy; one that disagrees with the private key would make every
    // signature fail to verify where it is used, so it is refused here rather than discovered there.
    const pub = join(source.keysDir, SigningKeyFile.public);
    if (!existsSync(pub)) createOnce(pub, publicKeyPem, 0o644);
    else if (readFileSync(pub, 'utf8') !== publicKeyPem) {
      throw invalid(
        path,
        `the public key published beside it (${pub}) is not its public half: restore ${pub}, or remove it to publish this key's`,
      );
    }
  }
  const signer: ModelSigner = {
    keyId: keyHint(publicKey),
    publicKeyPem,
    curve: curve.name,
    dsseKeyId: dsseKeyId(publicKeyPem, curve.scheme),
    source: path,
    sign: (data) => sign(curve.hash, data, privateKey),
  };
  // A key that cannot sign what it must (a broken key file OpenSSL still parses) is refused now, not at promotion.
  const probe = Buffer.from('ttd signing key check');
  if (!verify(curve.hash, probe, publicKey, signer.sign(probe))) throw invalid(path, 'a signature made with it does not verify');
  signers.set(path, { signer, text });
  return signer;
}

/** A verifier of a model signing public key in a PEM file (a private key file gives its public half). */
export function modelVerifierFromFile(path: string): ModelVerifier {
  const publicKey = publicKeyFromFile(path, {
    unreadable: (err) => missing(path, `cannot read the public key ${path} (${(err as NodeJS.ErrnoException).code ?? err.message})`),
    notAKey: (err) => invalid(path, `it is not a PEM public key (${err.message})`),
  });
  return modelVerifier(publicKey, path);
}

/** A verifier of a public key. */
export function modelVerifier(publicKey: KeyObject, source: string): ModelVerifier {
  const curve = curveOf(publicKey, source);
  return {
    keyId: keyHint(publicKey),
    source,
    verify: (data, signature) => {
      try {
        return verify(curve.hash, data, publicKey, signature);
      } catch {
        return false;
      }
    },
  };
}

/** The verifier of the workers' model signing key, from TTD_SIGNING_KEY or the keys directory (its public file, else its
 * private key); undefined where neither is here (an auditor then passes --public-key). */
export function modelVerifierFrom(source: SigningKeySource): ModelVerifier | undefined {
  const candidates = source.signingKey
    ? [source.signingKey]
    : [join(source.keysDir, SigningKeyFile.public), join(source.keysDir, SigningKeyFile.private)];
  const path = candidates.find((p) => existsSync(p));
  return path ? modelVerifierFromFile(path) : undefined;
}

/** Every model signing public key an auditor here has: `--public-key` alone when given, else the workers' current key
 * and the retired ones beside it (TTD_KEYS/retired-signing/*.pub). */
export function modelVerifiers(source: SigningKeySource, publicKey?: string): ModelVerifier[] {
  if (publicKey) return [modelVerifierFromFile(publicKey)];
  const current = modelVerifierFrom(source);
  const dir = join(source.keysDir, SigningKeyFile.retired);
  const retired = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.pub'))
        .sort()
        .map((f) => modelVerifierFromFile(join(dir, f)))
    : [];
  return [...(current ? [current] : []), ...retired];
}

/** Replaces the keys directory's model signing key by a new one; the old public key is kept in retired-signing/, so
 * versions it signed still verify. Each step leaves a usable directory if the process dies after it: the old key
 * retired (still current), its public file removed (republished from the private key on next use), the new private key
 * renamed into place, its public half published. Refused for an operator's key (TTD_SIGNING_KEY). */
export function rotateModelSigningKey(source: SigningKeySource): { retired: ModelSigner; current: ModelSigner; retiredFile: string } {
  if (source.signingKey) {
    throw new TtdError(
      ErrorCode.argumentInvalid,
      `TTD_SIGNING_KEY names ${source.signingKey}, a key ttd does not manage; rotate it by pointing TTD_SIGNING_KEY at the new key, and keep the old public key in ${join(source.keysDir, SigningKeyFile.retired)}/ so versions it signed still verify`,
    );
  }
  const retired = modelSigner(source, { create: true });
  const dir = join(source.keysDir, SigningKeyFile.retired);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const retiredFile = join(dir, `${retired.keyId}.pub`);
  if (!existsSync(retiredFile)) createOnce(retiredFile, retired.publicKeyPem, 0o644);
  rmSync(join(source.keysDir, SigningKeyFile.public), { force: true });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const tmp = join(source.keysDir, `${SigningKeyFile.private}.${process.pid}.new`);
  writeFileSync(tmp, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  renameSync(tmp, join(source.keysDir, SigningKeyFile.private));
  return { retired, current: modelSigner(source, { create: false }), retiredFile };
}

/** Checks, writing nothing, that a worker here could sign: the key there is usable, or the keys directory could hold a
 * new one (its nearest existing folder is a writable directory). For commands that may still refuse after it and must
 * then leave nothing behind (`ttd run`); the worker creates the key when it first signs. */
export function checkSigningKey(source: SigningKeySource): void {
  const path = source.signingKey ?? join(source.keysDir, SigningKeyFile.private);
  if (source.signingKey || existsSync(path)) {
    modelSigner(source, { create: false });
    return;
  }
  let dir = source.keysDir;
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  let why: string | null = null;
  try {
    if (!statSync(dir).isDirectory()) why = `${dir} is not a directory`;
    else accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    why = `${dir} cannot be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  if (why) {
    throw missing(
      path,
      `no model signing key at ${path}, and it cannot be created: ${why}; expected the keys directory (TTD_KEYS, ${source.keysDir}) to be a directory this process can write, or TTD_SIGNING_KEY to name a key`,
    );
  }
}
