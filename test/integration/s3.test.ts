// The S3 backend on a real S3 wire protocol (moto_server on loopback): the same pipeline, conditional
// writes under contention, a tamper-evident trail that `ttd audit verify` checks, and an endpoint outage.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Connection, Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { appendAudit, auditKey, type AuditEntry } from '../../lib/registry/audit';
import { PreconditionFailedError } from '../../lib/contract/errors';
import { auditWriter } from '../../lib/registry/keys';
import { recordAliasMove } from '../../lib/registry/promotion';
import { readModel } from '../../lib/registry/registry';
import type { RunResult } from '../../lib/contract/results';
import { S3ObjectStore } from '../../lib/store/s3-store';
import { checkpointIndexKey, readCheckpointIndex, storeCheckpoint } from '../../lib/store/checkpoints';
import { digestBytes } from '../../lib/store/digest';
import { blobKey, putBlob } from '../../lib/store/store';
import { quickSeedSpec, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';
import { startMoto, type Moto } from '../moto';
import { startProxy } from '../tcp-proxy';

const BUCKET = 'models';

describe('S3 store', () => {
  let moto: Moto;
  let s3: S3Client;
  const store = (prefix: string) => moto.store(BUCKET, prefix);
  const keys = async (prefix: string) =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!).sort();
  const body = async (key: string) =>
    Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray());

  beforeAll(async () => {
    moto = await startMoto();
    await moto.createBucket(BUCKET);
    s3 = moto.client();
  });
  afterAll(async () => {
    s3?.destroy();
    await moto?.stop();
  });

  it('create-only and compare-and-swap writes refuse the loser with a precondition failure', async () => {
    const st = store('contract');
    await st.put('k', Buffer.from('1'), { ifNoneMatch: '*' });
    await expect(st.put('k', Buffer.from('2'), { ifNoneMatch: '*' })).rejects.toBeInstanceOf(PreconditionFailedError);
    const current = (await st.get('k'))!;
    await st.put('k', Buffer.from('3'), { ifMatch: current.etag });
    await expect(st.put('k', Buffer.from('4'), { ifMatch: current.etag })).rejects.toBeInstanceOf(PreconditionFailedError);
    expect((await st.get('k'))!.body.toString()).toBe('3');
    expect(await st.list('')).toEqual(['k']);
  });

  it('runs storing the same checkpoints at once keep every blob an index lists, and delete those nobody lists', async () => {
    // Deterministic training: every run's epoch k is the same bytes, one blob; runs end at epochs 4, 5 or 6, two kept.
    const st = store('checkpoints');
    const file = (epoch: number) => {
      const path = join(tempDir(), `checkpoint-${epoch}.pt`);
      writeFileSync(path, `checkpoint of epoch ${epoch}`);
      return path;
    };
    const blob = (epoch: number) => blobKey(digestBytes(Buffer.from(`checkpoint of epoch ${epoch}`)));
    const runs = Array.from({ length: 8 }, (_, i) => checkpointIndexKey(`wf-${i}`, 'run'));
    await Promise.all(
      runs.map(async (key, i) => {
        for (let epoch = 1; epoch <= 4 + (i % 3); epoch++) await storeCheckpoint(st, key, epoch, file(epoch), 2);
      }),
    );
    for (const key of runs) {
      for (const e of await readCheckpointIndex(st, key)) expect(await st.head(blobKey(e.digest)), `${key} ${e.epoch}`).toBeDefined();
    }
    for (const epoch of [1, 2]) expect(await st.head(blob(epoch)), `epoch ${epoch}`).toBeUndefined();
    for (const epoch of [3, 4, 5, 6]) expect(await st.head(blob(epoch)), `epoch ${epoch}`).toBeDefined();
    expect(await keys('checkpoints/checkpoint-deletions/')).toEqual([]);
  });

  it('twenty promotions of one model at once lose no alias update, and the chain verifies', async () => {
    const st = store('race');
    const keys = join(tempDir(), 'keys');
    const writer = auditWriter(keys, { create: true });
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const digest = await putBlob(st, `artifact ${i}`);
        const record = await putBlob(st, `record ${i}`);
        const { version: _v, previousVersion: _p, ...rest } = entry(1, digest, record, `r${i}`, null);
        await recordAliasMove(st, writer, { ...rest, action: 'promote', alias: 'production', digest, record });
      }),
    );
    const state = (await readModel(st, 'm'))!.state;
    expect(state.versions).toHaveLength(20);
    expect(state.aliasHistory).toHaveLength(20);
    state.aliasHistory.forEach((move, i) => expect(move.previousVersion).toBe(i === 0 ? null : state.aliasHistory[i - 1].version));
    const verified = await runTtd(['audit', 'verify', 'm', '--json'], { ...moto.env, TTD_STORE: `s3://${BUCKET}/race`, TTD_KEYS: keys });
    expect(verified.code, verified.stdout).toBe(0);
    expect(JSON.parse(verified.stdout).models).toMatchObject([{ model: 'm', records: 20, problem: null, signed: 20, anchor: { seq: 20 } }]);
  });

  it('the pipeline promotes with TTD_STORE=s3://…: blobs and audit records are in the bucket, and no credential leaks', async () => {
    const env = { ...testEnv(tempDir(), inject('temporalAddress')), ...moto.env, TTD_STORE: `s3://${BUCKET}/prod` };
    const run = await runTtd(['run', writeSpec(tempDir(), quickSeedSpec('s3-seed'), join(seedDir, 'model.py')), '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.status).toBe('promoted');
    const blobKey = `prod/blobs/sha256/${result.digest!.slice(7)}`;
    expect(await keys('prod/blobs/')).toContain(blobKey);
    expect(
      `sha256:${createHash('sha256')
        .update(await body(blobKey))
        .digest('hex')}`,
    ).toBe(result.digest);
    expect(await keys('prod/audit/s3-seed/')).toEqual(['prod/audit/s3-seed/00000001.json']);
    expect(await keys('prod/registry/')).toEqual(['prod/registry/s3-seed.json']);
    const verified = await runTtd(['audit', 'verify', '--json'], env);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, models: [{ model: 's3-seed', records: 1, problem: null }] });
    // Never in output, reports or workflow history.
    const secret = moto.env.AWS_SECRET_ACCESS_KEY;
    const shown = await runTtd(['show', 's3-seed@production', '--json'], env);
    const connection = await Connection.connect({ address: inject('temporalAddress') });
    const history = await new Client({ connection }).workflow.getHandle(result.runId).fetchHistory();
    await connection.close();
    for (const text of [run.stdout, run.stderr, shown.stdout, JSON.stringify(history)]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(moto.env.AWS_ACCESS_KEY_ID);
    }
  });

  describe('tampering with the trail is caught and named by ttd audit verify', () => {
    // Unsigned records (as written before signing), checked with no keys or anchors at hand.
    const verify = (prefix: string) =>
      runTtd(['audit', 'verify', 'm', '--json'], { ...moto.env, TTD_STORE: `s3://${BUCKET}/${prefix}`, TTD_KEYS: join(tempDir(), 'none') });
    async function chain(prefix: string): Promise<S3ObjectStore> {
      const st = store(prefix);
      for (let i = 1; i <= 3; i++) {
        const digest = await putBlob(st, `artifact ${i}`);
        const record = await putBlob(st, `record ${i}`);
        await appendAudit(st, entry(i, digest, record, `run-${i}`, i === 1 ? null : i - 1));
      }
      expect((await verify(prefix)).code).toBe(0);
      return st;
    }
    const problem = async (prefix: string) => {
      const r = await verify(prefix);
      expect(r.code).toBe(1);
      const found = JSON.parse(r.stdout).models[0].problem as { key: string; reason: string; code: string };
      expect(found.code).toBe('audit_broken');
      return { key: found.key, reason: found.reason };
    };

    it('an edited record', async () => {
      await chain('t-edit');
      const key = `t-edit/${auditKey('m', 2)}`;
      const rec = JSON.parse((await body(key)).toString());
      rec.actor = 'mallory';
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: JSON.stringify(rec) }));
      expect(await problem('t-edit')).toEqual({ key: auditKey('m', 2), reason: 'edited: its content does not hash to its recorded hash' });
    });

    it('a deleted record', async () => {
      await chain('t-delete');
      await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `t-delete/${auditKey('m', 2)}` }));
      expect(await problem('t-delete')).toEqual({
        key: auditKey('m', 2),
        reason: `missing: the chain jumps from record 1 to ${auditKey('m', 3)}`,
      });
    });

    it('reordered records', async () => {
      await chain('t-order');
      const [a, b] = [await body(`t-order/${auditKey('m', 2)}`), await body(`t-order/${auditKey('m', 3)}`)];
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `t-order/${auditKey('m', 2)}`, Body: b }));
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `t-order/${auditKey('m', 3)}`, Body: a }));
      expect(await problem('t-order')).toEqual({ key: auditKey('m', 2), reason: 'out of order: record says seq 3, expected 2' });
    });

    it('a blob that was altered or removed', async () => {
      const st = await chain('t-blob');
      const rec = (await st.get(auditKey('m', 2)))!;
      const digest = JSON.parse(rec.body.toString()).digest as string;
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `t-blob/blobs/sha256/${digest.slice(7)}`, Body: 'altered' }));
      expect(await problem('t-blob')).toEqual({ key: auditKey('m', 2), reason: `blob altered: digest ${digest}` });
      await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `t-blob/blobs/sha256/${digest.slice(7)}` }));
      expect(await problem('t-blob')).toEqual({ key: auditKey('m', 2), reason: `blob missing: digest ${digest}` });
    });
  });

  it('a stalled S3 connection is cut after TTD_S3_IDLE_TIMEOUT_S of silence: a live host fails store_unreachable, never hangs', async () => {
    const proxy = await startProxy(moto.port);
    const saved = { ...process.env };
    let st: S3ObjectStore;
    try {
      Object.assign(process.env, moto.env, {
        AWS_ENDPOINT_URL: `http://127.0.0.1:${proxy.port}`,
        TTD_S3_IDLE_TIMEOUT_S: '1',
        TTD_S3_MAX_ATTEMPTS: '2',
      });
      st = new S3ObjectStore(BUCKET, 'stalled', {
        credentials: { accessKeyId: moto.env.AWS_ACCESS_KEY_ID!, secretAccessKey: moto.env.AWS_SECRET_ACCESS_KEY! },
      });
    } finally {
      process.env = saved;
    }
    try {
      // A transfer that answers is not cut, however short the timeout.
      await st.put('k', Buffer.alloc(4 * 2 ** 20, 7));
      expect((await st.get('k'))!.body.length).toBe(4 * 2 ** 20);
      proxy.stall(); // the endpoint accepts connections and never answers: without a timeout, a read waits forever
      const started = Date.now();
      const error = await st.get('k').then(
        () => undefined,
        (err: unknown) => err as { code: string; message: string },
      );
      expect(error?.code).toBe('store_unreachable');
      expect(error?.message).toMatch(/cannot be reached \(reading k\): .*timed out after 1000 ms of inactivity/);
      expect(Date.now() - started).toBeLessThan(30_000); // two attempts of 1 s silence each, and the SDK's backoff
    } finally {
      await proxy.down();
    }
  }, 60_000);

  it('a run rides out an S3 endpoint that is down for about 20 seconds, and no partial blob is ever stored', async () => {
    const proxy = await startProxy(moto.port);
    const env = {
      ...testEnv(tempDir(), inject('temporalAddress')),
      ...moto.env,
      AWS_ENDPOINT_URL: `http://127.0.0.1:${proxy.port}`,
      TTD_STORE: `s3://${BUCKET}/outage`,
    };
    const running = runTtd(['run', writeSpec(tempDir(), quickSeedSpec('outage'), join(seedDir, 'model.py')), '--json'], env);
    // Down once the run is under way (training has stored nothing yet; the stages after it store files): ttd run's
    // last write before it starts the workflow is the store's identity (a fixed wait lost this race under load).
    for (let i = 0; i < 600 && !(await keys('outage/ttd-store.json')).length; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await keys('outage/ttd-store.json')).toEqual(['outage/ttd-store.json']);
    await new Promise((r) => setTimeout(r, 500));
    await proxy.down();
    await new Promise((r) => setTimeout(r, 20_000));
    await proxy.up();
    const run = await running;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().startsWith('{'), run.stdout.slice(0, 500)).toBe(true);
    expect(JSON.parse(run.stdout).status).toBe('promoted');
    for (const key of await keys('outage/blobs/sha256/')) {
      expect(
        `sha256:${createHash('sha256')
          .update(await body(key))
          .digest('hex')}`,
      ).toBe(`sha256:${key.split('/').pop()}`);
    }
  }, 240_000);
});

function entry(version: number, digest: string, record: string, runId: string, previousVersion: number | null): AuditEntry {
  return {
    action: 'promote',
    model: 'm',
    version,
    digest,
    alias: 'production',
    previousVersion,
    record,
    runId,
    actor: 'tester',
    trigger: 'manual',
    commit: null,
    checks: [],
    at: '2026-11-28T00:00:00.000Z',
  };
}
