// The audit trail and promotion through `ttd run` on the real Temporal dev server, real torch and the filesystem store,
// against a store writer who does not hold the workers' keys: each attack is performed and shown to be found, and a
// promotion whose audit append or alias move fails part-way never leaves production moved without its record.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { auditKey, recordHash, type AuditRecord } from '../../lib/registry/audit';
import { KeyFile } from '../../lib/registry/keys';
import type { RunResult } from '../../lib/contract/results';
import { quickSeedSpec, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

describe('audit trail and promotion against a store writer', () => {
  const home = tempDir();
  const env = testEnv(home, inject('temporalAddress'));
  const store = join(home, 'store');
  const keys = join(home, 'keys');
  const file = (key: string) => join(store, ...key.split('/'));
  const read = (model: string, seq: number) => JSON.parse(readFileSync(file(auditKey(model, seq)), 'utf8')) as AuditRecord;
  const write = (r: AuditRecord) => writeFileSync(file(auditKey(r.model, r.seq)), JSON.stringify(r, null, 2));
  const run = async (name: string, seed = 0, extra: Record<string, unknown> = {}) => {
    const spec = writeSpec(
      tempDir(),
      quickSeedSpec(name, { train: { epochs: 1, batch_size: 32, seed }, ...extra }),
      join(seedDir, 'model.py'),
    );
    const r = await runTtd(['run', spec, '--json'], env);
    return { code: r.code, stderr: r.stderr, result: JSON.parse(r.stdout) as RunResult };
  };
  const verify = async (model: string, args: string[] = [], extraEnv: Record<string, string> = {}) => {
    const r = await runTtd(['audit', 'verify', model, ...args, '--json'], { ...env, ...extraEnv });
    return { code: r.code, out: JSON.parse(r.stdout), stdout: r.stdout, stderr: r.stderr };
  };
  const pull = async (ref: string) => {
    const r = await runTtd(['pull', ref, '-o', join(tempDir(), 'model.pt'), '--json'], env);
    return { code: r.code, out: JSON.parse(r.stdout), stderr: r.stderr };
  };
  /** Saves files of the store and puts them back after `attack`, so each attack starts from the genuine trail. */
  const restoring = async (paths: string[], attack: () => Promise<void>) => {
    const saved = new Map(paths.map((p) => [p, readFileSync(p)]));
    try {
      await attack();
    } finally {
      for (const [p, body] of saved) {
        mkdirSync(join(p, '..'), { recursive: true });
        writeFileSync(p, body);
      }
    }
  };

  it('a run signs its audit record and anchors the chain; verify checks both, also for an auditor with only the public key', async () => {
    for (const seed of [0, 1]) {
      const r = await run('trusted', seed);
      expect(r.code, r.stderr).toBe(0);
      expect(r.result.status).toBe('promoted');
    }
    expect(statSync(keys).mode & 0o777).toBe(0o700);
    for (const f of [KeyFile.auditPrivate, KeyFile.stepCache]) expect(statSync(join(keys, f)).mode & 0o777).toBe(0o600);
    const v = await verify('trusted');
    expect(v.code, v.stdout).toBe(0);
    expect(v.out.models).toEqual([
      expect.objectContaining({
        model: 'trusted',
        records: 2,
        problem: null,
        problems: [],
        signed: 2,
        unsigned: 0,
        anchor: { seq: 2, hash: read('trusted', 2).hash },
      }),
    ]);
    expect(v.out.publicKey.keyId).toBe(read('trusted', 1).keyId);
    // An auditor holds only the public key: no private key, no anchors.
    const auditor = tempDir();
    copyFileSync(join(keys, KeyFile.auditPublic), join(auditor, 'workers.pub'));
    const a = await verify('trusted', ['--public-key', join(auditor, 'workers.pub')], { TTD_KEYS: join(auditor, 'none') });
    expect(a.code, a.stdout).toBe(0);
    expect(a.out).toMatchObject({ ok: true, anchors: null, models: [{ model: 'trusted', signed: 2, anchor: null }] });
    // Without the key, a signed trail cannot be checked, and that is not a pass.
    const keyless = await verify('trusted', [], { TTD_KEYS: join(auditor, 'none') });
    expect(keyless.code).toBe(1);
    expect(keyless.out.models[0].problem.code).toBe('audit_key_missing');
    expect((await pull('trusted@production')).code).toBe(0);
  });

  it('a consistent rewrite (a record changed, prev and hash recomputed onwards) fails verify, and pull refuses the alias', async () => {
    await restoring([file(auditKey('trusted', 1)), file(auditKey('trusted', 2))], async () => {
      const first = read('trusted', 1);
      first.actor = 'mallory';
      first.hash = recordHash(first);
      write(first);
      const second = read('trusted', 2);
      second.prev = first.hash;
      second.hash = recordHash(second);
      write(second);
      const v = await verify('trusted');
      expect(v.code).toBe(1);
      expect(v.out.models[0].problem).toEqual({
        key: auditKey('trusted', 1),
        code: 'audit_signature_invalid',
        reason: 'signature does not match its hash: the record was written or rewritten without the signing key',
      });
      const p = await pull('trusted@production');
      expect(p.code).toBe(2);
      expect(p.out.error.code).toBe('audit_signature_invalid');
      expect(p.out.error.message).toContain(
        `refusing 'trusted@production' (version 2): its audit trail does not verify at ${auditKey('trusted', 1)}`,
      );
    });
    expect((await verify('trusted')).code).toBe(0);
  });

  it('an alias pointed at an uploaded blob fails verify, and pull serves neither the alias nor the version', async () => {
    const registry = file('registry/trusted.json');
    await restoring([registry], async () => {
      const bytes = Buffer.from('not a model: uploaded by a store writer');
      const { createHash } = await import('node:crypto');
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      mkdirSync(file('blobs/sha256'), { recursive: true });
      writeFileSync(file(`blobs/sha256/${digest.slice(7)}`), bytes);
      const state = JSON.parse(readFileSync(registry, 'utf8'));
      const genuine = state.versions[1];
      state.versions.push({ version: 3, digest, record: genuine.record, runId: 'mallory', createdAt: 'now' });
      state.aliases.production = { version: 3, digest, updatedAt: 'now' };
      writeFileSync(registry, JSON.stringify(state));
      const v = await verify('trusted');
      expect(v.code).toBe(1);
      expect(v.out.models[0].problems.map((p: { code: string }) => p.code)).toEqual(['registry_unbacked', 'registry_unbacked']);
      for (const ref of ['trusted@production', 'trusted:3']) {
        const p = await pull(ref);
        expect(p.code, ref).toBe(2);
        expect(p.out.error.code).toBe('registry_unbacked');
      }
    });
  });

  it('removing the last record, or the whole chain, fails verify (truncated, missing) and pull refuses', async () => {
    const last = file(auditKey('trusted', 2));
    await restoring([file(auditKey('trusted', 1)), last], async () => {
      rmSync(last);
      const v = await verify('trusted');
      expect(v.out.models[0].problem).toMatchObject({ code: 'audit_truncated', key: auditKey('trusted', 2) });
      expect((await pull('trusted@production')).out.error.code).toBe('audit_truncated');
      rmSync(file('audit/trusted'), { recursive: true });
      const all = await runTtd(['audit', 'verify', '--json'], env); // every model, the anchored ones included
      const gone = JSON.parse(all.stdout).models.find((m: { model: string }) => m.model === 'trusted');
      expect(gone.problem).toMatchObject({ code: 'audit_missing' });
      expect(all.code).toBe(1);
    });
    expect((await verify('trusted')).code).toBe(0);
  });

  it('when the audit append fails, production does not move; once it can append, the retried promotion succeeds', async () => {
    const first = await run('unrecorded');
    expect(first.code, first.stderr).toBe(0);
    // The audit folder replaced by a file: every append fails until it is put back.
    const dir = file('audit/unrecorded');
    renameSync(dir, `${dir}.saved`);
    writeFileSync(dir, 'not a folder');
    const second = run('unrecorded', 1);
    const registry = file('registry/unrecorded.json');
    // The version is registered before its record is appended: then the promotion is failing at the append.
    await until(() => JSON.parse(readFileSync(registry, 'utf8')).versions.length === 2);
    await new Promise((r) => setTimeout(r, 3000));
    expect(JSON.parse(readFileSync(registry, 'utf8')).aliases.production.version).toBe(1);
    rmSync(dir);
    renameSync(`${dir}.saved`, dir);
    const r = await second;
    expect(r.code, r.stderr).toBe(0);
    expect(r.result).toMatchObject({ status: 'promoted', version: 2 });
    expect(read('unrecorded', 2)).toMatchObject({ action: 'promote', version: 2, previousVersion: 1 });
    expect(existsSync(file(auditKey('unrecorded', 3)))).toBe(false);
    expect((await verify('unrecorded')).code).toBe(0);
  });

  it('when the alias move fails after the record, production does not move and is not served until the retry rolls it forward', async () => {
    // A held registry lock (a writer that never lets go): the first write (create-only) needs no lock, the alias
    // move's compare-and-swap does, and times out.
    mkdirSync(file('registry'), { recursive: true });
    const lock = `${file('registry/stuck.json')}.lock`;
    writeFileSync(lock, '');
    const fresh = setInterval(() => existsSync(lock) && utimesSync(lock, new Date(), new Date()), 1000);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearInterval(fresh);
      rmSync(lock, { force: true });
    };
    try {
      const running = run('stuck');
      await until(() => existsSync(file(auditKey('stuck', 1))));
      await new Promise((r) => setTimeout(r, 2000));
      expect(JSON.parse(readFileSync(file('registry/stuck.json'), 'utf8')).aliases).toEqual({});
      const v = await verify('stuck');
      expect(v.code).toBe(1);
      expect(v.out.models[0].problem).toMatchObject({ code: 'alias_pending', key: 'registry/stuck.json' });
      expect((await pull('stuck@production')).out.error.code).toBe('alias_not_found');
      release();
      const r = await running;
      expect(r.code, r.stderr).toBe(0);
      expect(r.result).toMatchObject({ status: 'promoted', version: 1 });
    } finally {
      release();
    }
    expect(existsSync(file(auditKey('stuck', 2)))).toBe(false);
    expect((await verify('stuck')).code).toBe(0);
    expect((await pull('stuck@production')).code).toBe(0);
  });

  it('promote refuses a bad alias before writing anything, and a truncated registry is rebuilt by the next promotion', async () => {
    const records = () => readdirSync(file('audit/trusted')).sort();
    const registry = file('registry/trusted.json');
    const before = { records: records(), registry: readFileSync(registry, 'utf8') };
    const bad = await runTtd(['promote', 'trusted:1', '--alias', '../../x', '--json'], env);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout).error).toMatchObject({
      code: 'invalid_name',
      message: expect.stringContaining('alias name "../../x" is invalid'),
    });
    expect({ records: records(), registry: readFileSync(registry, 'utf8') }).toEqual(before);
    // The registry state cut in half: ttd promote rebuilds it from the chain, then moves the alias.
    const cut = (text: string) => writeFileSync(registry, text.slice(0, text.length >> 1));
    cut(before.registry);
    const shown = await runTtd(['show', 'trusted@production', '--json'], env);
    expect(JSON.parse(shown.stdout).error).toMatchObject({
      code: 'store_damaged',
      message: expect.stringContaining('the next promotion of the model'),
    });
    const promoted = await runTtd(['promote', 'trusted:1', '--alias', 'staging', '--json'], env);
    expect(promoted.code, promoted.stdout).toBe(0);
    expect(JSON.parse(promoted.stdout)).toMatchObject({ model: 'trusted', alias: 'staging', version: 1, moved: true });
    const state = JSON.parse(readFileSync(registry, 'utf8'));
    expect(state).toMatchObject({
      versions: JSON.parse(before.registry).versions,
      aliases: { production: { version: 2 }, staging: { version: 1 } },
    });
    expect((await verify('trusted')).code).toBe(0);
    // And a run's promotion repairs it as well.
    cut(readFileSync(registry, 'utf8'));
    const r = await run('trusted', 2);
    expect(r.code, r.stderr).toBe(0);
    expect(r.result).toMatchObject({ status: 'promoted', version: 3 });
    expect((await verify('trusted')).code).toBe(0);
  });

  it('ttd audit rotate-key: the next records are signed by the new key, and the old records still verify', async () => {
    const oldKeyId = read('trusted', 1).keyId;
    const rotated = await runTtd(['audit', 'rotate-key', '--json'], env);
    expect(rotated.code, rotated.stdout).toBe(0);
    const rotation = JSON.parse(rotated.stdout);
    expect(rotation).toMatchObject({ retiredKeyId: oldKeyId, resumed: false });
    expect(rotation.heads.trusted).toBeGreaterThanOrEqual(3);
    const promoted = await runTtd(['promote', 'trusted:2', '--alias', 'staging', '--json'], env);
    expect(promoted.code, promoted.stdout).toBe(0);
    expect(read('trusted', rotation.heads.trusted + 1).keyId).toBe(rotation.keyId);
    const v = await verify('trusted');
    expect(v.code, v.stdout).toBe(0);
    expect(v.out.retiredKeys).toEqual([expect.objectContaining({ keyId: oldKeyId })]);
  });
});

async function until(check: () => boolean, timeoutMs = 150_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (check()) return;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error('timed out waiting for the promotion to reach the store');
    await new Promise((r) => setTimeout(r, 200));
  }
}
