// The committed IAM policies (docs/deploy/s3-*-policy.json) against moto enforcing IAM: a worker host promotes with
// the worker policy; a reader with the reader policy shows, pulls, verifies and reports, and is refused every write
// with store_access_denied, leaving the store as it was; a key with no policy reads nothing. What moto does not
// enforce (conditions such as s3:prefix, 403 for a missing key without s3:ListBucket) is in docs/deploy-s3.md.
import { cpSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { ApplicationFailure } from '@temporalio/activity';
import { createControlActivities } from '../../activities';
import { NON_RETRYABLE_TYPES } from '../../lib/contract/gate-codes';
import { S3ObjectStore } from '../../lib/store/s3-store';
import { quickSeedSpec, repoRoot, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';
import { startMoto, type Moto } from '../moto';

const BUCKET = 'models';
const PREFIX = 'ttd';
const MODEL = 'policy-seed';

/** A committed policy with its placeholders filled in, as an operator would before attaching it. */
function policy(name: 'worker' | 'reader'): object {
  const text = readFileSync(join(repoRoot, 'docs', 'deploy', `s3-${name}-policy.json`), 'utf8');
  return JSON.parse(text.replaceAll('BUCKET_NAME', BUCKET).replaceAll('STORE_PREFIX', PREFIX));
}

describe('the S3 policies of docs/deploy, on moto enforcing IAM', () => {
  let moto: Moto;
  let admin: S3Client;
  let workerKeys: string;
  let promoted: RunResult;

  /** The environment of one party: its own home, the store, and the access key of the IAM user it is. */
  const as = (user: string, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
    ...testEnv(tempDir(), inject('temporalAddress')),
    TTD_QUEUE_PREFIX: undefined, // queues named after the store's identity, which the first writer creates
    AWS_ENDPOINT_URL: moto.env.AWS_ENDPOINT_URL,
    AWS_REGION: moto.env.AWS_REGION,
    AWS_ACCESS_KEY_ID: moto.keys[user]?.accessKeyId ?? 'AKIANOSUCHUSER000000',
    AWS_SECRET_ACCESS_KEY: moto.keys[user]?.secretAccessKey ?? 'no-such-secret',
    TTD_STORE: `s3://${BUCKET}/${PREFIX}`,
    ...extra,
  });
  /** Every object in the bucket with its ETag, read by a user allowed everything: what changed, if anything. */
  const bucket = async () => {
    const out = await admin.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    return (out.Contents ?? []).map((o) => `${o.Key} ${o.ETag}`).sort();
  };
  const refused = (r: { code: number | null; stdout: string; stderr: string }) => {
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(2);
    return JSON.parse(r.stdout).error as { code: string; message: string };
  };

  beforeAll(async () => {
    moto = await startMoto({ iam: { users: { worker: policy('worker'), reader: policy('reader'), nobody: null } } });
    await moto.createBucket(BUCKET);
    admin = moto.client();
  });
  afterAll(async () => {
    admin?.destroy();
    await moto?.stop();
  });

  it('a worker host with the worker policy creates the store identity, prunes checkpoints and promotes', async () => {
    // Two epochs with one checkpoint kept: the first epoch's checkpoint is deleted (s3:DeleteObject).
    const env = as('worker', { TTD_CHECKPOINTS_KEPT: '1' });
    const spec = quickSeedSpec(MODEL, { train: { epochs: 2, batch_size: 32, optimizer: 'adam', lr: 0.01, loss: 'mse', seed: 0 } });
    const run = await runTtd(['run', writeSpec(tempDir(), spec, join(seedDir, 'model.py')), '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    promoted = JSON.parse(run.stdout);
    expect(promoted.status).toBe('promoted');
    expect(promoted.training).toEqual({ attempts: 1, resumedFromEpoch: 0 }); // no store write was refused and retried
    workerKeys = join(env.TTD_HOME!, 'keys');
    const keys = (await bucket()).map((line) => line.split(' ')[0]);
    expect(keys).toContain(`${PREFIX}/ttd-store.json`);
    expect(keys).toContain(`${PREFIX}/audit/${MODEL}/00000001.json`);
    expect(keys.every((k) => k.startsWith(`${PREFIX}/`))).toBe(true);
    const index = keys.find((k) => k.startsWith(`${PREFIX}/checkpoints/`))!;
    const body = await (await admin.send(new GetObjectCommand({ Bucket: BUCKET, Key: index }))).Body!.transformToString();
    expect(JSON.parse(body).checkpoints).toEqual([{ epoch: 2, digest: expect.stringMatching(/^sha256:/) }]);
  });

  it("the worker's key reaches only its prefix: another prefix of the bucket is refused to ttd and to a direct write", async () => {
    const before = await bucket();
    const shown = refused(await runTtd(['show', `${MODEL}@production`, '--json'], as('worker', { TTD_STORE: `s3://${BUCKET}/other` })));
    expect(shown.code).toBe('store_access_denied');
    expect(shown.message).toContain("TTD_STORE 's3://models/other'");
    const worker = moto.client(moto.keys.worker);
    const put = worker.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'other/planted.json', Body: '{}' }));
    await expect(put).rejects.toMatchObject({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    worker.destroy();
    expect(await bucket()).toEqual(before);
  });

  it('a reader with the reader policy shows, pulls, verifies and reports, and writes nothing to the store', async () => {
    // A consumer holds the public key only, and a copy of the worker's anchors.
    const consumerKeys = tempDir();
    cpSync(join(workerKeys, 'audit-ed25519.pub'), join(consumerKeys, 'audit-ed25519.pub'));
    const env = as('reader', { TTD_KEYS: consumerKeys });
    const before = await bucket();

    const shown = await runTtd(['show', `${MODEL}@production`, '--json'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ model: MODEL, version: 1, digest: promoted.digest, aliases: ['production'] });

    const out = join(tempDir(), 'model.pt');
    const pulled = await runTtd(['pull', `${MODEL}@production`, '-o', out, '--json'], env);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(JSON.parse(pulled.stdout)).toMatchObject({ model: MODEL, version: 1, path: out });

    const verified = await runTtd(['audit', 'verify', '--anchors', join(workerKeys, 'anchors'), '--require-signed', '--json'], env);
    expect(verified.code, verified.stdout).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, models: [{ model: MODEL, records: 1, signed: 1, anchor: { seq: 1 } }] });

    const report = await runTtd(['report', promoted.runId, '--json'], env);
    expect(report.code, report.stderr).toBe(0);
    expect(JSON.parse(report.stdout)).toMatchObject({ runId: promoted.runId, status: 'promoted' });

    const page = await uiPage(env, [`/models/${MODEL}/audit`, '/']);
    expect(page[0]).toContain('chain intact');
    expect(page[1]).toContain(MODEL);

    expect(await bucket()).toEqual(before);
  });

  it('a reader is refused ttd run with store_access_denied, and nothing reaches the store or the server', async () => {
    // The seed's model file is in the store already (the worker ran it): the run has no new input to write, and
    // would start and fail in training at its first checkpoint, were it not made to prove it may write first.
    const before = await bucket();
    const env = as('reader');
    const spec = quickSeedSpec('reader-run');
    const run = await runTtd(['run', writeSpec(tempDir(), spec, join(seedDir, 'model.py')), '--json'], env);
    const error = refused(run);
    expect(error.code).toBe('store_access_denied');
    expect(error.message).toMatch(
      /^TTD_STORE 's3:\/\/models\/ttd' \(endpoint '.+' from AWS_ENDPOINT_URL, bucket 'models'\): access denied \(writing ttd-store\.json\): AccessDenied; check the AWS credentials and the bucket's policy$/,
    );
    expect(await bucket()).toEqual(before);
    const runs = await runTtd(['runs', '--model', 'reader-run', '--json'], env);
    expect(runs.code, runs.stderr).toBe(0);
    expect(JSON.parse(runs.stdout).runs).toEqual([]);
  });

  it('a reader holding the signing keys is refused ttd promote with store_access_denied: no record, no alias, no anchor moves', async () => {
    // An operator whose S3 credentials are read-only: the keys would sign, the store refuses the write.
    const operatorKeys = tempDir();
    cpSync(workerKeys, operatorKeys, { recursive: true });
    const anchor = () => readFileSync(join(operatorKeys, 'anchors', `${MODEL}.json`), 'utf8');
    const anchorBefore = anchor();
    const before = await bucket();
    const promote = await runTtd(['promote', `${MODEL}:1`, '--alias', 'staging', '--json'], as('reader', { TTD_KEYS: operatorKeys }));
    const error = refused(promote);
    expect(error.code).toBe('store_access_denied');
    expect(error.message).toMatch(/access denied \(writing (registry|audit)\//);
    expect(await bucket()).toEqual(before);
    expect(anchor()).toBe(anchorBefore);
    expect(readdirSync(join(operatorKeys, 'anchors'))).toEqual([`${MODEL}.json`]);
  });

  it('a control activity whose write is refused fails at once as store_access_denied, marked not to be retried', async () => {
    // The activity as the worker builds it, on the reader's credentials: the refusal is final, so Temporal must not
    // retry it (ten attempts that meet the same 403), and the run's gate carries the code.
    const reader = new S3ObjectStore(BUCKET, PREFIX, {
      credentials: moto.keys.reader,
      endpoint: moto.env.AWS_ENDPOINT_URL,
      forcePathStyle: true,
      maxAttempts: 1,
    });
    const before = await bucket();
    const activities = createControlActivities({ store: reader, keysDir: tempDir() });
    const failure = await activities
      .recordAudit({ action: 'approval_rejected', model: 'denied-model', runId: 'run-denied', actor: 'test', reason: null })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(failure).toBeInstanceOf(ApplicationFailure);
    const { type, nonRetryable, message } = failure as ApplicationFailure;
    expect({ type, nonRetryable }).toEqual({ type: 'store_access_denied', nonRetryable: true });
    expect(message).toMatch(/access denied \(writing audit\/denied-model\/00000001\.json\): AccessDenied; check the AWS credentials/);
    expect(NON_RETRYABLE_TYPES).toContain('store_access_denied');
    expect(await bucket()).toEqual(before);
  });

  it('a key whose user has no policy, and a key moto never issued, are refused every read', async () => {
    for (const user of ['nobody', 'stranger']) {
      const env = as(user);
      const shown = refused(await runTtd(['show', `${MODEL}@production`, '--json'], env));
      expect(shown.code, user).toBe('store_access_denied');
      expect(shown.message).toContain(user === 'nobody' ? 'AccessDenied' : 'InvalidAccessKeyId');
      const verified = refused(await runTtd(['audit', 'verify', '--json'], env));
      expect(verified.code, user).toBe('store_access_denied');
    }
  });
});

/** Starts `ttd ui` on a free port with `env`, fetches `paths`, and stops it. */
async function uiPage(env: Record<string, string | undefined>, paths: string[]): Promise<string[]> {
  mkdirSync(env.TTD_HOME!, { recursive: true });
  const ui = spawn(process.execPath, [join(repoRoot, 'bin', 'ttd'), 'ui', '--port', '0'], {
    cwd: repoRoot,
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const base = await new Promise<string>((resolve, reject) => {
      let out = '';
      ui.stdout!.on('data', (d) => {
        out += d;
        const m = /ttd ui: (http:\/\/\S+\/)/.exec(out);
        if (m) resolve(m[1]);
      });
      ui.on('exit', (code) => reject(new Error(`ttd ui exited ${code}: ${out}`)));
    });
    const pages = [];
    for (const path of paths) {
      const res = await fetch(new URL(path.slice(1), base));
      expect(res.status, path).toBe(200);
      pages.push(await res.text());
    }
    return pages;
  } finally {
    const exited = new Promise((r) => ui.once('exit', r));
    ui.kill('SIGTERM');
    await exited;
  }
}
