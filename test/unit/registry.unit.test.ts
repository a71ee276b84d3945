// Registry and audit chain on the filesystem store: races, idempotent retries, and tampering found.
import { readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendAudit, auditKey, verifyChain, type AuditEntry } from '../../lib/registry/audit';
import { FsObjectStore } from '../../lib/store/fs-store';
import { parseRef, readModel, registerAndPromote, resolveRef } from '../../lib/registry/registry';
import { getBlob, putBlob } from '../../lib/store/store';
import { tempDir } from '../helpers';

const digest = (n: number) => `sha256:${String(n).padStart(64, '0')}`;
const entry = (version: number, runId: string): AuditEntry => ({
  action: 'promote',
  model: 'm',
  version,
  digest: digest(version),
  alias: 'production',
  previousVersion: null,
  record: digest(100 + version),
  runId,
  actor: 'tester',
  trigger: 'manual',
  commit: null,
  checks: [{ gate: 'parity', passed: true, code: null }],
  at: '2026-11-28T00:00:00.000Z',
});

describe('registry', () => {
  it('twenty concurrent promotions of different artifacts lose no version and leave the alias on one of them', async () => {
    const store = new FsObjectStore(tempDir());
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        registerAndPromote(store, {
          model: 'm',
          digest: digest(i + 1),
          record: digest(500),
          alias: 'production',
          runId: `r${i}`,
          actor: 't',
          at: 'now',
        }),
      ),
    );
    expect(new Set(outcomes.map((o) => o.version)).size).toBe(20);
    const state = (await readModel(store, 'm'))!.state;
    expect(state.versions.map((v) => v.version)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(state.aliasHistory).toHaveLength(20);
    expect(state.aliasHistory[19].version).toBe(state.aliases.production.version);
  });

  it('promoting the same digest again reuses its version and does not move or re-record the alias', async () => {
    const store = new FsObjectStore(tempDir());
    const req = { model: 'm', digest: digest(1), record: digest(2), alias: 'production', runId: 'r', actor: 't', at: 'now' };
    const first = await registerAndPromote(store, req);
    const again = await registerAndPromote(store, { ...req, runId: 'r2' });
    expect(first).toEqual({ version: 1, created: true, previousVersion: null, moved: true });
    expect(again).toEqual({ version: 1, created: false, previousVersion: 1, moved: false });
    expect((await readModel(store, 'm'))!.state.aliasHistory).toHaveLength(1);
  });

  it('references resolve by alias, by version and to the latest, and bad ones are named', async () => {
    const store = new FsObjectStore(tempDir());
    await registerAndPromote(store, {
      model: 'm',
      digest: digest(1),
      record: digest(9),
      alias: 'production',
      runId: 'r',
      actor: 't',
      at: 'now',
    });
    await registerAndPromote(store, {
      model: 'm',
      digest: digest(2),
      record: digest(9),
      alias: 'staging',
      runId: 'r',
      actor: 't',
      at: 'now',
    });
    expect((await resolveRef(store, parseRef('m@production'))).version.version).toBe(1);
    expect((await resolveRef(store, parseRef('m:2'))).version.digest).toBe(digest(2));
    expect((await resolveRef(store, parseRef('m'))).version.version).toBe(2);
    await expect(resolveRef(store, parseRef('m@canary'))).rejects.toThrow(
      "model 'm' has no alias 'canary' (aliases: 'production', 'staging')",
    );
    await expect(resolveRef(store, parseRef('m:7'))).rejects.toThrow("model 'm' has no version 7 (versions 1..2)");
    expect(() => parseRef('../etc@x')).toThrow('model name "../etc" is invalid');
    expect(() => parseRef('m@a/b')).toThrow('alias name "a/b" is invalid');
    expect(() => parseRef('m@x@y')).toThrow("model reference 'm@x@y' is invalid: expected MODEL, MODEL@ALIAS or MODEL:VERSION");
  });
});

describe('blobs', () => {
  it('a blob whose bytes changed on disk is refused with both digests named', async () => {
    const root = tempDir();
    const store = new FsObjectStore(root);
    const d = await putBlob(store, 'hello');
    expect((await getBlob(store, d)).toString()).toBe('hello');
    writeFileSync(join(root, 'blobs', 'sha256', d.slice(7)), 'hellO');
    await expect(getBlob(store, d)).rejects.toThrow(`expected digest ${d} but the bytes hash to sha256:`);
  });

  it('writing an existing blob again is success, and create-only writes never replace content', async () => {
    const store = new FsObjectStore(tempDir());
    const [a, b] = await Promise.all([putBlob(store, 'same'), putBlob(store, 'same')]);
    expect(a).toBe(b);
    await expect(store.put('k', Buffer.from('1'), { ifNoneMatch: '*' })).resolves.toBeDefined();
    await expect(store.put('k', Buffer.from('2'), { ifNoneMatch: '*' })).rejects.toThrow("conditional write to 'k' failed");
    expect((await store.get('k'))!.body.toString()).toBe('1');
  });
});

describe('audit chain', () => {
  async function chain(n: number) {
    const root = tempDir();
    const store = new FsObjectStore(root);
    for (let i = 1; i <= n; i++) await appendAudit(store, entry(i, `run-${i}`));
    return { root, store, path: (seq: number) => join(root, ...auditKey('m', seq).split('/')) };
  }

  it('concurrent appends take distinct sequence numbers and the chain verifies', async () => {
    const store = new FsObjectStore(tempDir());
    const records = await Promise.all(Array.from({ length: 10 }, (_, i) => appendAudit(store, entry(i + 1, `run-${i}`))));
    expect(new Set(records.map((r) => r.seq)).size).toBe(10);
    expect(await verifyChain(store, 'm')).toBeNull();
  });

  it('a retried append of the same run is a no-op', async () => {
    const { store } = await chain(1);
    const again = await appendAudit(store, entry(1, 'run-1'));
    expect(again.seq).toBe(1);
    expect(await store.list('audit/m/')).toHaveLength(1);
  });

  it('an edited record is named', async () => {
    const { store, path } = await chain(3);
    const rec = JSON.parse(readFileSync(path(2), 'utf8'));
    rec.actor = 'mallory';
    writeFileSync(path(2), JSON.stringify(rec));
    expect(await verifyChain(store, 'm')).toEqual({
      key: auditKey('m', 2),
      reason: 'edited: its content does not hash to its recorded hash',
    });
  });

  it('a deleted record is named as the gap', async () => {
    const { store, path } = await chain(3);
    rmSync(path(2));
    expect(await verifyChain(store, 'm')).toEqual({
      key: auditKey('m', 2),
      reason: `missing: the chain jumps from record 1 to ${auditKey('m', 3)}`,
    });
  });

  it('swapped records are named', async () => {
    const { store, path } = await chain(3);
    renameSync(path(2), `${path(2)}.x`);
    renameSync(path(3), path(2));
    renameSync(`${path(2)}.x`, path(3));
    expect(await verifyChain(store, 'm')).toEqual({ key: auditKey('m', 2), reason: 'out of order: record says seq 3, expected 2' });
  });
});
