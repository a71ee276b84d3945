// The model signing key (lib/registry/signing-key.ts) and what it signs (lib/registry/attestations.ts): each key that
// cannot sign is refused with its code and the reason, and a signature or provenance that names other bytes, or was
// changed after signing, does not check. The stock verifiers' side is tested on a real run (seed-pipeline.test.ts).
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../lib/contract/errors';
import {
  artifactFiles,
  checkModelSignature,
  checkProvenance,
  modelSignatureBundle,
  modelSignatureStatement,
  pae,
  provenanceStatement,
  signStatement,
  type ProvenanceFacts,
} from '../../lib/registry/attestations';
import {
  checkSigningKey,
  modelSigner,
  modelVerifierFromFile,
  modelVerifiers,
  rotateModelSigningKey,
  SigningKeyFile,
} from '../../lib/registry/signing-key';
import { digestBytes } from '../../lib/store/digest';
import { tempDir, thrownTtdError } from '../helpers';

const pem = (key: KeyObject, type: 'pkcs8' | 'spki' | 'sec1' = 'pkcs8') =>
  key.export({ type, format: 'pem' } as never) as unknown as string;

const files = [
  { name: 'model.pt', digest: digestBytes('torchscript bytes') },
  { name: 'model.pt2', digest: digestBytes('aoti bytes') },
];

describe('the model signing key', () => {
  it('is created in the keys directory on first use (mode 0600, its public half beside it) and read again after', () => {
    const keysDir = join(tempDir(), 'keys');
    const signer = modelSigner({ keysDir }, { create: true });
    expect(signer.curve).toBe('P-256');
    expect(signer.keyId).toMatch(/^[0-9a-f]{64}$/);
    expect((statSync(join(keysDir, SigningKeyFile.private)).mode & 0o777).toString(8)).toBe('600');
    expect(readFileSync(join(keysDir, SigningKeyFile.public), 'utf8')).toBe(signer.publicKeyPem);
    expect(modelSigner({ keysDir }, { create: false }).keyId).toBe(signer.keyId);
  });

  it('is not created where the caller may not create it, nor where TTD_SIGNING_KEY names a missing file', () => {
    const keysDir = join(tempDir(), 'keys');
    const none = thrownTtdError(() => modelSigner({ keysDir }, { create: false }));
    expect(none.code).toBe(ErrorCode.signingKeyMissing);
    expect(none.message).toContain(join(keysDir, SigningKeyFile.private));
    const given = join(tempDir(), 'nowhere.pem');
    const missing = thrownTtdError(() => modelSigner({ keysDir, signingKey: given }, { create: true }));
    expect(missing.code).toBe(ErrorCode.signingKeyMissing);
    expect(missing.message).toMatch(/TTD_SIGNING_KEY names .*nowhere\.pem, which does not exist/);
    expect(existsSync(given)).toBe(false);
  });

  const dir = tempDir();
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const cases: [string, () => string, RegExp][] = [
    [
      'an ed25519 key',
      () => write('ed.pem', pem(generateKeyPairSync('ed25519').privateKey)),
      /holds a ed25519 key, which model_signing refuses/,
    ],
    ['an RSA key', () => write('rsa.pem', pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey)), /holds a rsa key/],
    [
      'an EC key on secp256k1',
      () => write('k1.pem', pem(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey)),
      /on secp256k1/,
    ],
    ['a public key', () => write('pub.pem', pem(ec.publicKey, 'spki')), /holds a public key, not a private one/],
    [
      'an encrypted key',
      () => write('enc.pem', ec.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string),
      /encrypted with a passphrase/,
    ],
    ['garbage', () => write('junk.pem', 'not a key\n'), /not a PEM private key/],
    ['an empty file', () => write('empty.pem', ''), /not a PEM private key/],
  ];
  it.each(cases)('refuses %s with signing_key_invalid, naming the file and what was expected', (_what, make, why) => {
    const path = make();
    const err = thrownTtdError(() => modelSigner({ keysDir: join(tempDir(), 'keys'), signingKey: path }, { create: true }));
    expect(err.code).toBe(ErrorCode.signingKeyInvalid);
    expect(err.message).toContain(path);
    expect(err.message).toMatch(why);
    expect(err.message).toContain('expected an unencrypted PEM ECDSA private key on P-256');
  });

  it('refuses an unreadable key file as invalid, and takes a P-384 or SEC1 key an operator gives', () => {
    if (process.getuid?.() !== 0) {
      const path = write('locked.pem', pem(ec.privateKey));
      chmodSync(path, 0o000);
      expect(thrownTtdError(() => modelSigner({ keysDir: dir, signingKey: path }, { create: true })).message).toMatch(
        /cannot be read \(EACCES\)/,
      );
    }
    const p384 = write('p384.pem', pem(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey));
    expect(modelSigner({ keysDir: dir, signingKey: p384 }, { create: true }).curve).toBe('P-384');
    const sec1 = write('sec1.pem', pem(ec.privateKey, 'sec1'));
    expect(modelSigner({ keysDir: dir, signingKey: sec1 }, { create: true }).curve).toBe('P-256');
  });

  it('refuses a keys directory whose published public key is not its private key’s public half', () => {
    const keysDir = join(tempDir(), 'keys');
    modelSigner({ keysDir }, { create: true });
    writeFileSync(join(keysDir, SigningKeyFile.public), pem(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey, 'spki'));
    const err = thrownTtdError(() => modelSigner({ keysDir }, { create: true }));
    expect(err.code).toBe(ErrorCode.signingKeyInvalid);
    expect(err.message).toContain('is not its public half');
  });

  it('offers the current key and the retired ones to verifiers, or only the --public-key given', () => {
    const keysDir = join(tempDir(), 'keys');
    const current = modelSigner({ keysDir }, { create: true });
    const retiredDir = join(keysDir, SigningKeyFile.retired);
    mkdirSync(retiredDir);
    writeFileSync(join(retiredDir, 'old.pub'), pem(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey, 'spki'));
    const all = modelVerifiers({ keysDir });
    expect(all).toHaveLength(2);
    expect(all[0].keyId).toBe(current.keyId);
    expect(modelVerifiers({ keysDir }, join(retiredDir, 'old.pub'))).toHaveLength(1);
  });
});

describe('the OpenSSF model signature', () => {
  const keysDir = join(tempDir(), 'keys');
  const signer = modelSigner({ keysDir }, { create: true });
  const verifier = modelVerifierFromFile(join(keysDir, SigningKeyFile.public));

  it("lists the files sorted, with a subject digest over theirs, as model_signing's v1.0 predicate does", () => {
    const statement = modelSignatureStatement('seed', [...files].reverse()) as {
      subject: { digest: { sha256: string } }[];
      predicate: { resources: { name: string }[]; serialization: Record<string, unknown> };
    };
    expect(statement.predicate.resources.map((r) => r.name)).toEqual(['model.pt', 'model.pt2']);
    expect(statement.predicate.serialization).toEqual({
      method: 'files',
      hash_type: 'sha256',
      allow_symlinks: false,
      ignore_paths: ['model.sig'],
    });
    const root = createHash('sha256');
    for (const f of files) root.update(Buffer.from(f.digest.slice(7), 'hex'));
    expect(statement.subject[0].digest.sha256).toBe(root.digest('hex'));
  });

  it('checks with the key and these files; not with another key, other bytes, a file more or less, or a changed payload', () => {
    const bundle = modelSignatureBundle('seed', files, signer);
    expect(checkModelSignature(bundle, verifier, files)).toBeNull();
    const otherKeys = join(tempDir(), 'keys');
    modelSigner({ keysDir: otherKeys }, { create: true });
    expect(checkModelSignature(bundle, modelVerifierFromFile(join(otherKeys, SigningKeyFile.public)), files)).toMatch(/names key/);
    expect(checkModelSignature(bundle, verifier, [files[0], { ...files[1], digest: digestBytes('other') }])).toMatch(/model\.pt2/);
    expect(checkModelSignature(bundle, verifier, files.slice(0, 1))).toMatch(/model\.pt2/);
    expect(checkModelSignature(bundle, verifier, [...files, { name: 'model.onnx', digest: digestBytes('onnx') }])).toMatch(/model\.onnx/);
    const parsed = JSON.parse(bundle);
    const payload = JSON.parse(Buffer.from(parsed.dsseEnvelope.payload, 'base64').toString('utf8'));
    payload.predicate.resources[0].digest = digestBytes('forged').slice(7);
    parsed.dsseEnvelope.payload = Buffer.from(JSON.stringify(payload)).toString('base64');
    expect(checkModelSignature(JSON.stringify(parsed), verifier, files)).toMatch(/signature does not verify/);
    expect(checkModelSignature('{"mediaType": 1', verifier, files)).toBe('it is not JSON');
  });

  it('signs the payload type with the payload (DSSE pre-authentication encoding)', () => {
    expect(pae('application/vnd.in-toto+json', Buffer.from('{}')).toString()).toBe('DSSEv1 28 application/vnd.in-toto+json 2 {}');
  });
});

describe('the SLSA provenance', () => {
  const keysDir = join(tempDir(), 'keys');
  const signer = modelSigner({ keysDir }, { create: true });
  const verifier = modelVerifierFromFile(join(keysDir, SigningKeyFile.public));
  const facts: ProvenanceFacts = {
    model: 'seed',
    files: artifactFiles({ torchscript: { digest: files[0].digest }, aoti: { digest: files[1].digest } }),
    spec: { digest: digestBytes('spec'), formats: ['torchscript', 'aoti'], alias: 'production', environment: 'torch-2.13' },
    modelFile: { digest: digestBytes('model.py'), path: 'model.py' },
    foreign: null,
    params: { hidden: 8 },
    trigger: 'ci',
    commit: 'abc123',
    actor: 'ci-bot',
    environment: {
      name: 'torch-2.13',
      torchVersion: '2.13.0+cpu',
      declared: null,
      packages: { onnx: '1.23.2' },
    },
    gates: [{ gate: 'training', passed: true, code: null, message: 'ok' }],
    parity: null,
    manifest: digestBytes('manifest'),
    builder: { identity: '1@host', deployment: 'ttd-x', buildId: '0.1.0+abc', ttdVersion: '0.1.0' },
    runId: 'seed-run',
    startedOn: '2026-12-05T00:00:00.000Z',
    finishedOn: '2026-12-05T00:01:00.000Z',
  };

  it('names the artifacts as subjects and holds the spec, model file, environment, commit, trigger, gates and builder', () => {
    const s = provenanceStatement(facts) as {
      subject: { name: string }[];
      predicate: { buildDefinition: Record<string, unknown>; runDetails: { builder: { id: string }; metadata: { invocationId: string } } };
    };
    expect(s.subject.map((x) => x.name)).toEqual(['model.pt', 'model.pt2']);
    expect(s.predicate.buildDefinition).toMatchObject({
      externalParameters: { commit: 'abc123', trigger: 'ci', spec: { digest: facts.spec.digest }, modelFile: facts.modelFile },
      internalParameters: { gates: facts.gates, environment: { torchVersion: '2.13.0+cpu', packages: { onnx: '1.23.2' } } },
    });
    expect(s.predicate.runDetails.builder.id).toBe('urn:ttd:worker:1@host');
    expect(s.predicate.runDetails.metadata.invocationId).toBe('seed-run');
  });

  it('checks with the key and the version’s files; not after a changed field, nor for other files', () => {
    const envelope = signStatement(provenanceStatement(facts), signer, signer.dsseKeyId);
    expect(checkProvenance(JSON.stringify(envelope), verifier, facts.files).ok).toBe(true);
    const changed = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8'));
    changed.predicate.buildDefinition.externalParameters.commit = 'forged';
    const forged = { ...envelope, payload: Buffer.from(JSON.stringify(changed)).toString('base64') };
    const refused = checkProvenance(JSON.stringify(forged), verifier, facts.files);
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.why).toMatch(/signature does not verify/);
    const other = checkProvenance(JSON.stringify(envelope), verifier, [{ name: 'model.pt', digest: digestBytes('x') }]);
    expect(!other.ok && other.why).toMatch(/subjects are not this version's files/);
  });
});

describe('rotating the model signing key', () => {
  it('signs with a new key after, keeps the old public key where verifiers find it, and refuses an operator key', () => {
    const keysDir = join(tempDir(), 'keys');
    const old = modelSigner({ keysDir }, { create: true });
    const bundle = modelSignatureBundle('seed', files, old);
    const r = rotateModelSigningKey({ keysDir });
    expect(r.retired.keyId).toBe(old.keyId);
    expect(r.current.keyId).not.toBe(old.keyId);
    expect(modelSigner({ keysDir }, { create: false }).keyId).toBe(r.current.keyId);
    expect(readFileSync(join(keysDir, SigningKeyFile.public), 'utf8')).toBe(r.current.publicKeyPem);
    const verifiers = modelVerifiers({ keysDir });
    expect(verifiers.map((v) => v.keyId)).toEqual([r.current.keyId, old.keyId]);
    expect(checkModelSignature(bundle, verifiers[1], files)).toBeNull();
    const err = thrownTtdError(() => rotateModelSigningKey({ keysDir, signingKey: join(keysDir, SigningKeyFile.private) }));
    expect(err.code).toBe(ErrorCode.argumentInvalid);
    expect(err.message).toContain('a key ttd does not manage');
  });
});

describe('checking the signing key without writing (ttd run)', () => {
  it('creates nothing where no key is yet, refuses a keys directory under a file, and checks a key that is there', () => {
    const root = tempDir();
    const keysDir = join(root, 'home', 'keys');
    checkSigningKey({ keysDir });
    expect(existsSync(join(root, 'home'))).toBe(false);
    writeFileSync(join(root, 'file'), '');
    const under = thrownTtdError(() => checkSigningKey({ keysDir: join(root, 'file', 'keys') }));
    expect(under.code).toBe(ErrorCode.signingKeyMissing);
    expect(under.message).toContain(`${join(root, 'file')} is not a directory`);
    modelSigner({ keysDir }, { create: true });
    writeFileSync(join(keysDir, SigningKeyFile.private), 'junk\n');
    expect(thrownTtdError(() => checkSigningKey({ keysDir })).code).toBe(ErrorCode.signingKeyInvalid);
  });
});
