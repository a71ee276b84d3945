// `ttd audit verify` against a store writer who tampers with what a version carries for other tools: the signing and
// promote activities write a real version into a filesystem store, and each tampering is named with its code.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { promoteActivity, type VersionFacts } from '../../activities/promote-model';
import { signingActivities } from '../../activities/sign-version';
import { backedVersion, verifyTrail } from '../../lib/registry/audit';
import { auditReader } from '../../lib/registry/keys';
import { loadModelCard } from '../../lib/registry/model-card';
import { writeManifest } from '../../lib/registry/records';
import { readModel, registryKey } from '../../lib/registry/registry';
import { modelSigner, modelVerifiers } from '../../lib/registry/signing-key';
import { FsObjectStore } from '../../lib/store/fs-store';
import { blobKey, putBlob } from '../../lib/store/store';
import { digestBytes } from '../../lib/store/digest';
import { tempDir } from '../helpers';

// A store with `versions` signed and promoted versions of model 'm', each with a TorchScript and an AOTInductor file.
async function signedStore(versions: number, keysDir?: string) {
  const root = tempDir();
  const store = new FsObjectStore(join(root, 'store'));
  const keys = keysDir ?? join(root, 'keys');
  for (let i = 1; i <= versions; i++) {
    const ts = await putBlob(store, `torchscript ${i}`);
    const aoti = await putBlob(store, `aoti ${i}`);
    const refs = await putBlob(store, `references ${i}`);
    const manifestDigest = await writeManifest(store, {
      format: 'ttd-manifest/2',
      model: 'm',
      runId: `run-${i}`,
      artifact: { digest: ts, format: 'torchscript' },
      files: { artifact: ts, references: refs },
      specDigest: digestBytes('spec'),
      spec: { name: 'm', formats: ['torchscript', 'aoti'] },
      stages: {},
      formats: { torchscript: { digest: ts, references: refs }, aoti: { digest: aoti, references: refs } },
    });
    const facts: VersionFacts = {
      model: 'm',
      artifactDigest: ts,
      manifestDigest,
      runId: `run-${i}`,
      actor: 'tester',
      trigger: 'manual',
      commit: null,
      gates: [{ gate: 'training', passed: true, code: null, message: 'ok' }],
      parity: null,
    };
    const signed = await signingActivities({ store, keys: { keysDir: keys } }).signVersion({
      ...facts,
      modelFile: null,
      startedOn: new Date(0).toISOString(),
    });
    await promoteActivity({ store, keysDir: keys })({ ...facts, signed, alias: 'production' });
  }
  const verify = (verifierKeys = keys) =>
    verifyTrail(store, 'm', { ...auditReader(keys), modelVerifiers: modelVerifiers({ keysDir: verifierKeys }) });
  const record = async (version: number) => {
    const v = (await readModel(store, 'm'))!.state.versions[version - 1];
    return JSON.parse(readFileSync(join(root, 'store', blobKey(v.record)), 'utf8')) as { signature: string; provenance: string };
  };
  return { root, store, keys, verify, record, path: (key: string) => join(root, 'store', key) };
}

describe('audit verify of model signatures and provenance', () => {
  it('counts each signed version that verifies, with the public key and without one', async () => {
    const s = await signedStore(2);
    const verdict = await s.verify();
    expect(verdict.problem).toBeNull();
    expect(verdict.attested).toBe(2);
    const keyless = await verifyTrail(s.store, 'm', { ...auditReader(s.keys), modelVerifiers: [] });
    expect(keyless.attested).toBe(2);
  });

  it('names a provenance or signature blob a store writer altered, or one that is gone', async () => {
    const s = await signedStore(1);
    const { provenance, signature } = await s.record(1);
    const file = s.path(blobKey(provenance));
    const saved = readFileSync(file);
    writeFileSync(file, Buffer.concat([saved, Buffer.from(' ')])); // any byte: the blob no longer has its digest
    const altered = await s.verify();
    expect(altered.problem).toMatchObject({
      code: 'signature_invalid',
      key: blobKey(provenance),
      reason: 'version 1: its provenance blob is altered',
    });
    writeFileSync(file, saved);
    expect((await s.verify()).problem).toBeNull();
    // The signature's bytes replaced under its digest: named too.
    writeFileSync(s.path(blobKey(signature)), '{}');
    expect((await s.verify()).problem).toMatchObject({
      code: 'signature_invalid',
      reason: 'version 1: its model signature blob is altered',
    });
  });

  it('names a version record swapped in the registry (say, one naming a forged signature)', async () => {
    const s = await signedStore(2);
    const key = s.path(registryKey('m'));
    const state = JSON.parse(readFileSync(key, 'utf8'));
    state.versions[0].record = state.versions[1].record;
    writeFileSync(key, JSON.stringify(state));
    // ttd pull, --signature and ttd provenance refuse it before reading the record.
    await expect(backedVersion(s.store, 'm:1', auditReader(s.keys))).rejects.toMatchObject({
      code: 'registry_unbacked',
      message: expect.stringContaining('audit record 1 registered version 1 with version record'),
    });
    await expect(backedVersion(s.store, 'm@production', auditReader(s.keys))).resolves.toMatchObject({ version: { version: 2 } });
    // The card says its record is not the one the audit trail backs.
    const found = (await readModel(s.store, 'm'))!.state;
    const card = await loadModelCard(s.store, found, found.versions[0], auditReader(s.keys));
    expect(card.audit).toMatchObject({ verified: false, problem: { code: 'registry_unbacked' } });
    const verdict = await s.verify();
    expect(verdict.problems).toContainEqual(
      expect.objectContaining({
        code: 'registry_unbacked',
        reason: expect.stringMatching(/^version 1 points at version record sha256:\w+, but audit record 1 registered/),
      }),
    );
  });

  it('names versions signed by a key that is none of the public keys here', async () => {
    const s = await signedStore(1);
    const other = join(tempDir(), 'keys');
    modelSigner({ keysDir: other }, { create: true });
    const verdict = await s.verify(other);
    expect(verdict.problem).toMatchObject({
      code: 'signature_invalid',
      reason: expect.stringContaining('none of the model signing public keys here'),
    });
  });
});
