// The audit trail against a store writer (on the real filesystem store, with real ed25519 keys): a consistent rewrite,
// stripped signatures, truncation, deletion, a registry pointed at an uploaded blob, and promotions whose record
// append or alias move fails part-way. Each attack is performed and shown to be found.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { anchoredModels } from '../../lib/registry/anchors';
import {
  appendAudit,
  assertBacked,
  auditKey,
  readAudit,
  recordHash,
  rotateSigningKey,
  verifyTrail,
  type AuditEntry,
  type AuditRecord,
  type TrustOptions,
} from '../../lib/registry/audit';
import { ErrorCode } from '../../lib/contract/errors';
import { FsObjectStore } from '../../lib/store/fs-store';
import { auditReader, auditSigner, auditWriter, KeyFile, verifierFromFile } from '../../lib/registry/keys';
import { recordAliasMove, type AliasMoveRequest } from '../../lib/registry/promotion';
import { readModel, registerAndPromote, registryKey } from '../../lib/registry/registry';
import { repairRegistry } from '../../lib/registry/repair';
import { putBlob } from '../../lib/store/store';
import { tempDir } from '../helpers';

/** A store with `n` signed promotions of model 'm' to 'production', each of a new artifact. */
async function promoted(n: number) {
  const root = tempDir();
  const keys = join(tempDir(), 'keys');
  const store = new FsObjectStore(root);
  const writer = auditWriter(keys, { create: true });
  for (let i = 1; i <= n; i++) await recordAliasMove(store, writer, await request(store, i));
  const reader: TrustOptions = auditReader(keys);
  const file = (key: string) => join(root, ...key.split('/'));
  const read = (seq: number) => JSON.parse(readFileSync(file(auditKey('m', seq)), 'utf8')) as AuditRecord;
  const write = (r: AuditRecord) => writeFileSync(file(auditKey('m', r.seq)), JSON.stringify(r, null, 2));
  return { root, keys, store, writer, reader, file, read, write, verify: (opts: TrustOptions = reader) => verifyTrail(store, 'm', opts) };
}

async function request(store: FsObjectStore, i: number, runId = `run-${i}`): Promise<AliasMoveRequest> {
  return {
    action: 'promote',
    model: 'm',
    digest: await putBlob(store, `artifact ${i}`),
    record: await putBlob(store, `version record ${i}`),
    alias: 'production',
    runId,
    actor: 'ci',
    trigger: 'manual',
    commit: null,
    checks: [{ gate: 'parity', passed: true, code: null }],
    at: '2026-11-28T00:00:00.000Z',
  };
}

/** What a store writer without the key can do: change record `from`, then rewrite it and every later record with prev
 * and hash recomputed (`each`: what else is changed in each, e.g. its signature dropped). */
function rewriteConsistently(
  t: Awaited<ReturnType<typeof promoted>>,
  n: number,
  from: number,
  change: (r: AuditRecord) => void,
  each: (r: AuditRecord) => void = () => undefined,
) {
  let prev = from > 1 ? t.read(from - 1).hash : null;
  for (let seq = from; seq <= n; seq++) {
    const r = t.read(seq);
    if (seq === from) change(r);
    each(r);
    r.prev = prev;
    r.hash = recordHash(r);
    t.write(r);
    prev = r.hash;
  }
}

describe('audit trail against a store writer', () => {
  it('signed promotions verify: every record signed, the chain anchored, the registry agreeing', async () => {
    const t = await promoted(3);
    const v = await t.verify();
    expect(v).toMatchObject({ model: 'm', records: 3, problem: null, problems: [], signed: 3, unsigned: 0 });
    expect(v.anchor).toEqual({ seq: 3, hash: t.read(3).hash });
    expect(t.read(1).keyId).toBe(t.writer.signer.keyId);
    expect(statSync(t.keys).mode & 0o777).toBe(0o700);
    expect(statSync(join(t.keys, KeyFile.auditPrivate)).mode & 0o777).toBe(0o600);
    expect(statSync(join(t.keys, KeyFile.stepCache), { throwIfNoEntry: false })).toBeUndefined(); // made by torch workers
    const state = (await readModel(t.store, 'm'))!.state;
    expect(state.aliases.production).toMatchObject({ version: 3, auditSeq: 3 });
    expect((await readAudit(t.store, 'm')).map((r) => [r.version, r.previousVersion])).toEqual([
      [1, null],
      [2, 1],
      [3, 2],
    ]);
  });

  it('a consistent rewrite (a record changed, prev and hash recomputed onwards) is named by its signature', async () => {
    const t = await promoted(3);
    rewriteConsistently(t, 3, 2, (r) => (r.actor = 'mallory'));
    expect((await t.verify()).problem).toEqual({
      key: auditKey('m', 2),
      code: ErrorCode.auditSignatureInvalid,
      reason: 'signature does not match its hash: the record was written or rewritten without the signing key',
    });
  });

  it('a rewrite that strips the signatures is found: after a signed record, by the anchor, or by --require-signed', async () => {
    const t = await promoted(3);
    const unsign = (r: AuditRecord) => {
      delete r.signature;
      delete r.keyId;
    };
    // Records 2 and 3 rewritten unsigned: record 1 before them is signed.
    rewriteConsistently(t, 3, 2, (r) => (r.actor = 'mallory'), unsign);
    expect((await t.verify()).problem).toMatchObject({ key: auditKey('m', 2), code: ErrorCode.auditSignatureMissing });

    // Every record rewritten unsigned: the chain looks like one from before signing; the anchor says otherwise.
    const u = await promoted(2);
    rewriteConsistently(u, 2, 1, (r) => (r.actor = 'mallory'), unsign);
    expect((await u.verify()).problems.map((p) => p.code)).toEqual([ErrorCode.auditAnchorMismatch]);
    // An auditor with only the public key (no anchors) names it with --require-signed.
    const pubOnly: TrustOptions = { verifier: verifierFromFile(join(u.keys, KeyFile.auditPublic)), requireSigned: true };
    expect((await u.verify(pubOnly)).problem).toMatchObject({ key: auditKey('m', 1), code: ErrorCode.auditUnsigned });
  });

  it('records signed by another key, or checked without any key, are not accepted', async () => {
    const t = await promoted(2);
    const other = join(tempDir(), 'keys');
    auditSigner(other, { create: true });
    const v = await t.verify({ verifier: verifierFromFile(join(other, KeyFile.auditPublic)) });
    expect(v.problem).toMatchObject({ key: auditKey('m', 1), code: ErrorCode.auditSignatureInvalid });
    expect(v.problem!.reason).toMatch(/^signed by key sha256:[0-9a-f]{64}, expected the trusted key sha256:[0-9a-f]{64} \(/);
    const keyless = await t.verify({});
    expect(keyless.problem).toMatchObject({ key: auditKey('m', 1), code: ErrorCode.auditKeyMissing });
  });

  it('deleting the last record is truncation, found by the anchor', async () => {
    const t = await promoted(3);
    rmSync(t.file(auditKey('m', 3)));
    const v = await t.verify();
    expect(v.problem).toEqual({
      key: auditKey('m', 3),
      code: ErrorCode.auditTruncated,
      reason: 'the chain has 2 records, but its anchor says it reached record 3: records were removed from its end',
    });
    await expect(
      assertBacked(t.store, 'm', { alias: 'production', version: 2, digest: t.read(2).digest! }, t.reader),
    ).rejects.toMatchObject({
      code: ErrorCode.auditTruncated,
    });
  });

  it('deleting the whole chain is found through the registry, and through the anchor when the registry is gone too', async () => {
    const t = await promoted(2);
    rmSync(t.file('audit/m'), { recursive: true });
    expect((await t.verify()).problems.map((p) => p.code)).toEqual([ErrorCode.auditMissing, ErrorCode.auditMissing]);
    rmSync(t.file(registryKey('m')));
    expect(anchoredModels(t.reader.anchorsDir!)).toEqual(['m']);
    expect((await t.verify()).problem).toEqual({
      key: 'audit/m/',
      code: ErrorCode.auditMissing,
      reason: 'no audit records, but the anchor says the chain reached record 2: the chain was deleted',
    });
  });

  it('an alias pointed at an uploaded blob is unbacked: verify names it and nothing serves it', async () => {
    const t = await promoted(1);
    const evil = await putBlob(t.store, 'uploaded by mallory');
    const state = (await readModel(t.store, 'm'))!.state;
    state.versions.push({ version: 2, digest: evil, record: evil, runId: 'x', createdAt: 'now' });
    state.aliases.production = { version: 2, digest: evil, updatedAt: 'now' };
    writeFileSync(t.file(registryKey('m')), JSON.stringify(state));
    const v = await t.verify();
    expect(v.problems).toEqual([
      {
        key: registryKey('m'),
        code: ErrorCode.registryUnbacked,
        reason: `version 2 (${evil}) is registered, but no audit record names it`,
      },
      {
        key: registryKey('m'),
        code: ErrorCode.registryUnbacked,
        reason: `alias 'production' points at version 2 (${evil}), but the latest audit record moving it (1) names version 1 (${t.read(1).digest})`,
      },
    ]);
    await expect(assertBacked(t.store, 'm', { alias: 'production', version: 2, digest: evil }, t.reader)).rejects.toMatchObject({
      code: ErrorCode.registryUnbacked,
      message: `refusing 'm@production' (version 2): the latest audit record moving 'production' (record 1) names version 1 (${t.read(1).digest}), not version 2 (${evil}); see \`ttd audit verify m\``,
    });
    await expect(assertBacked(t.store, 'm', { version: 2, digest: evil }, t.reader)).rejects.toMatchObject({
      code: ErrorCode.registryUnbacked,
    });
  });

  it('a chain from before signing still verifies, reported as unsigned', async () => {
    const store = new FsObjectStore(tempDir());
    const entry = (i: number): AuditEntry => ({
      action: 'keep',
      model: 'm',
      version: i,
      digest: null,
      alias: null,
      previousVersion: null,
      record: null,
      runId: `r${i}`,
      actor: 'old',
      trigger: null,
      commit: null,
      checks: [],
      reason: 'kept',
      at: 'then',
    });
    for (let i = 1; i <= 2; i++) await appendAudit(store, entry(i));
    expect(await verifyTrail(store, 'm')).toMatchObject({ records: 2, problem: null, signed: 0, unsigned: 2 });
    // A signed record may follow unsigned ones; an unsigned one may not follow a signed one.
    const keys = join(tempDir(), 'keys');
    await appendAudit(store, entry(3), auditWriter(keys, { create: true }));
    expect(await verifyTrail(store, 'm', auditReader(keys))).toMatchObject({ problem: null, signed: 1, unsigned: 2 });
    await appendAudit(store, entry(4));
    expect((await verifyTrail(store, 'm', auditReader(keys))).problem).toMatchObject({
      key: auditKey('m', 4),
      code: ErrorCode.auditSignatureMissing,
    });
  });

  it('twenty concurrent promotions leave the alias, and its history, as the chain records them', async () => {
    const t = await promoted(0);
    await Promise.all(Array.from({ length: 20 }, async (_, i) => recordAliasMove(t.store, t.writer, await request(t.store, i + 1))));
    const records = await readAudit(t.store, 'm');
    const state = (await readModel(t.store, 'm'))!.state;
    expect(records).toHaveLength(20);
    expect(state.aliases.production.version).toBe(records[19].version);
    // The registry's history is the chain's: every move, in record order, each from the one before.
    expect(state.aliasHistory.map((m) => [m.auditSeq, m.previousVersion, m.version])).toEqual(
      records.map((r) => [r.seq, r.previousVersion, r.version]),
    );
    expect((await t.verify()).problems).toEqual([]);
  });
});

describe('audit key rotation', () => {
  it('a rotated key signs new records, records the retired key signed still verify, and it cannot sign new ones', async () => {
    const t = await promoted(2);
    const leaked = readFileSync(join(t.keys, KeyFile.auditPrivate));
    const oldId = auditSigner(t.keys, { create: false }).keyId;
    const rotation = await rotateSigningKey(t.store, t.keys);
    expect(rotation).toMatchObject({ retiredKeyId: oldId, heads: { m: 2 }, resumed: false });
    expect(rotation.keyId).not.toBe(oldId);
    expect(readdirSync(join(t.keys, KeyFile.retired))).toEqual([`${oldId.slice('sha256:'.length)}.json`]); // no private key
    expect(verifierFromFile(join(t.keys, KeyFile.auditPublic)).keyId).toBe(rotation.keyId);
    // The next promotion (a worker builds its writer per activity) is signed by the new key.
    await recordAliasMove(t.store, auditWriter(t.keys, { create: true }), await request(t.store, 3));
    expect(t.read(3).keyId).toBe(rotation.keyId);
    const reader = auditReader(t.keys);
    expect(await t.verify(reader)).toMatchObject({ problems: [], signed: 3, anchor: { seq: 3 } });
    // An auditor with the public key and a copy of retired/ verifies as well; without retired/ the old records fail.
    const auditor = auditReader(join(tempDir(), 'none'), {
      publicKey: join(t.keys, KeyFile.auditPublic),
      retiredDir: join(t.keys, KeyFile.retired),
    });
    expect((await t.verify(auditor)).problems).toEqual([]);
    const withoutRetired = await t.verify(auditReader(join(tempDir(), 'none'), { publicKey: join(t.keys, KeyFile.auditPublic) }));
    expect(withoutRetired.problem).toMatchObject({ code: ErrorCode.auditSignatureInvalid, key: auditKey('m', 1) });
    // Whoever holds the retired private key (it leaked before the rotation) signs record 4: refused.
    const thief = join(tempDir(), 'thief');
    mkdirSync(thief);
    writeFileSync(join(thief, KeyFile.auditPrivate), leaked);
    await recordAliasMove(t.store, { signer: auditSigner(thief, { create: false }) }, await request(t.store, 4));
    const stolen = await t.verify(reader);
    expect(stolen.problem).toMatchObject({ code: ErrorCode.auditSignatureInvalid, key: auditKey('m', 4) });
    expect(stolen.problem!.reason).toMatch(
      new RegExp(
        `^signed by key ${oldId}, retired at .+ when it had signed up to record 2 of model 'm' \\(.+\\): a retired key cannot sign new records$`,
      ),
    );
    // A retirement statement edited to let the key sign further is not trusted at all.
    const statement = join(t.keys, KeyFile.retired, `${oldId.slice('sha256:'.length)}.json`);
    const edited = JSON.parse(readFileSync(statement, 'utf8'));
    writeFileSync(statement, JSON.stringify({ ...edited, heads: { m: 10 } }));
    expect(() => auditReader(t.keys)).toThrow(
      expect.objectContaining({
        code: ErrorCode.auditKeyInvalid,
        message: expect.stringContaining('its signature does not verify with its successor'),
      }),
    );
  });

  it('a rotation interrupted after the old key was put aside is finished by the next one, and the old key is gone', async () => {
    const t = await promoted(1);
    const oldId = auditSigner(t.keys, { create: false }).keyId;
    mkdirSync(join(t.keys, KeyFile.retired));
    copyFileSync(join(t.keys, KeyFile.auditPrivate), join(t.keys, KeyFile.retired, `${oldId.slice('sha256:'.length)}.key`));
    const rotation = await rotateSigningKey(t.store, t.keys);
    expect(rotation).toMatchObject({ retiredKeyId: oldId, heads: { m: 1 }, resumed: true });
    expect(auditSigner(t.keys, { create: false }).keyId).toBe(rotation.keyId);
    expect(readdirSync(join(t.keys, KeyFile.retired))).toEqual([`${oldId.slice('sha256:'.length)}.json`]);
    expect((await t.verify(auditReader(t.keys))).problems).toEqual([]);
  });
});

describe('a damaged registry state', () => {
  /** Two promotions to production and one to staging, then registry/m.json cut in half. */
  async function truncated() {
    const t = await promoted(2);
    await recordAliasMove(t.store, t.writer, { ...(await request(t.store, 1, 'staging-run')), alias: 'staging' });
    const path = t.file(registryKey('m'));
    const genuine = JSON.parse(readFileSync(path, 'utf8'));
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length >> 1));
    await expect(readModel(t.store, 'm')).rejects.toMatchObject({ code: ErrorCode.storeDamaged });
    return { ...t, path, genuine };
  }

  it('is rebuilt from the audit chain exactly as it was, and the next promotion goes on from it', async () => {
    const t = await truncated();
    expect(await repairRegistry(t.store, 'm', t.reader)).toEqual({ repaired: true });
    expect((await readModel(t.store, 'm'))!.state).toEqual(t.genuine);
    expect(await repairRegistry(t.store, 'm', t.reader)).toEqual({ repaired: false });
    const next = await recordAliasMove(t.store, t.writer, await request(t.store, 3));
    expect(next).toMatchObject({ version: 3, previousVersion: 2, moved: true });
    expect((await t.verify()).problems).toEqual([]);
  });

  it('two promotions repairing it at once write it once, and both go on', async () => {
    const t = await truncated();
    const outcomes = await Promise.all([repairRegistry(t.store, 'm', t.reader), repairRegistry(t.store, 'm', t.reader)]);
    expect(outcomes.filter((o) => o.repaired).length).toBeGreaterThanOrEqual(1);
    expect((await readModel(t.store, 'm'))!.state).toEqual(t.genuine);
  });

  it('is refused with registry_damaged, saying how to repair it, when the chain does not verify or names no version', async () => {
    const t = await truncated();
    const damagedBytes = readFileSync(t.path);
    const r = t.read(1);
    t.write({ ...r, actor: 'mallory' }); // an edit the chain's hash finds
    await expect(repairRegistry(t.store, 'm', t.reader)).rejects.toMatchObject({
      code: ErrorCode.registryDamaged,
      message: expect.stringMatching(
        /^the registry state of model 'm' \(registry\/m\.json in file:\/\/.+\) is damaged: not JSON \(.+\), and it cannot be rebuilt from the audit trail: the chain does not verify at audit\/m\/00000001\.json \(edited: .+\) \[audit_broken\]; repair the chain first \(ttd audit verify m\), or restore registry\/m\.json from a backup or an earlier version of the bucket$/,
      ),
    });
    expect(readFileSync(t.path)).toEqual(damagedBytes); // nothing written
    // A model registered without any record (a store from before the audit trail): nothing to rebuild from.
    const bare = new FsObjectStore(tempDir());
    await registerAndPromote(bare, {
      model: 'm',
      digest: await putBlob(bare, 'a'),
      record: await putBlob(bare, 'r'),
      alias: 'production',
      runId: 'r',
      actor: 't',
      at: 'now',
    });
    writeFileSync(join(bare.location.slice('file://'.length), 'registry', 'm.json'), '{"model": "m", "vers');
    await expect(repairRegistry(bare, 'm', {})).rejects.toMatchObject({
      code: ErrorCode.registryDamaged,
      message: expect.stringContaining('no audit record names a version of it; restore registry/m.json from a backup'),
    });
  });
});

describe('atomic promotion', () => {
  it('when the audit append fails, the alias does not move; a retry promotes with one record', async () => {
    const t = await promoted(1);
    const req = await request(t.store, 2);
    // The audit directory replaced by a file: every append fails.
    const dir = t.file('audit/m');
    const saved = readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))] as const);
    rmSync(dir, { recursive: true });
    writeFileSync(dir, 'not a directory');
    await expect(recordAliasMove(t.store, t.writer, req)).rejects.toThrow();
    expect((await readModel(t.store, 'm'))!.state.aliases.production.version).toBe(1);
    rmSync(dir);
    mkdirSync(dir);
    for (const [f, body] of saved) writeFileSync(join(dir, f), body);
    const done = await recordAliasMove(t.store, t.writer, req);
    expect(done).toMatchObject({ version: 2, previousVersion: 1, moved: true });
    expect((await t.verify()).problems).toEqual([]);
  });

  it('an alias name that escapes its folder is refused before anything is written: no version, no record, no anchor', async () => {
    const t = await promoted(1);
    const snapshot = () =>
      ['registry/m.json', 'audit/m'].map((k) =>
        statSync(t.file(k)).isDirectory() ? readdirSync(t.file(k)) : readFileSync(t.file(k), 'utf8'),
      );
    const before = snapshot();
    const anchor = readFileSync(join(t.keys, KeyFile.anchors, 'm.json'), 'utf8');
    for (const alias of ['../../x', 'Prod', '']) {
      await expect(recordAliasMove(t.store, t.writer, { ...(await request(t.store, 2)), alias })).rejects.toMatchObject({
        code: ErrorCode.invalidName,
        message: `alias name ${JSON.stringify(alias)} is invalid: expected [a-z0-9][a-z0-9._-]{0,63} without '..'`,
      });
    }
    expect(snapshot()).toEqual(before);
    expect(readFileSync(join(t.keys, KeyFile.anchors, 'm.json'), 'utf8')).toBe(anchor);
    expect((await t.verify()).problems).toEqual([]);
  });

  it('when the alias move fails after the record, production stays, verify and pull say so, and a retry rolls forward', async () => {
    const t = await promoted(1);
    const req = await request(t.store, 2);
    // Register version 2 first (a kept candidate), so that only the alias move writes the registry.
    await recordAliasMove(t.store, t.writer, { ...(await request(t.store, 2, 'keep-run')), alias: 'staging' });
    // A held lock on the registry (a writer that never lets go): the compare-and-swap of the alias move times out.
    const lock = `${t.file(registryKey('m'))}.lock`;
    writeFileSync(lock, '');
    const fresh = setInterval(() => existsSync(lock) && utimesSync(lock, new Date(), new Date()), 1000);
    try {
      await expect(recordAliasMove(t.store, t.writer, req)).rejects.toThrow(/timed out waiting for the lock/);
    } finally {
      clearInterval(fresh);
      rmSync(lock, { force: true });
    }
    const state = (await readModel(t.store, 'm'))!.state;
    expect(state.aliases.production.version).toBe(1);
    const records = await readAudit(t.store, 'm');
    expect(records.at(-1)).toMatchObject({ seq: 3, version: 2, alias: 'production', previousVersion: 1 });
    expect((await t.verify()).problem).toMatchObject({ code: ErrorCode.aliasPending, key: registryKey('m') });
    await expect(
      assertBacked(t.store, 'm', { alias: 'production', version: 1, digest: state.aliases.production.digest }, t.reader),
    ).rejects.toMatchObject({ code: ErrorCode.aliasPending });
    // Temporal retries the activity: the record is found (not appended again) and the alias moves.
    const done = await recordAliasMove(t.store, t.writer, req);
    expect(done).toMatchObject({ version: 2, previousVersion: 1, moved: true });
    expect(done.audit.seq).toBe(3);
    expect(await readAudit(t.store, 'm')).toHaveLength(3);
    expect((await t.verify()).problems).toEqual([]);
  }, 30_000);
});
