// `model:` names something that is not a model file: a directory, a FIFO, a device, a socket, a link to a secret or to
// /proc, a file of another kind or one too large. The real CLI refuses each before anything is read whole or stored,
// with model_invalid (model_file_not_found when missing) and the path; the shared S3 store (moto) is left as it was.
// eslint-disable-next-line @typescript-eslint/no-restricted-imports -- mkfifo answers at once
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { digestBytes } from '../../lib/store/digest';
import { runTtd, seedDir, tempDir, testEnv } from '../helpers';
import { startMoto, type Moto } from '../moto';

const BUCKET = 'ttd-model-path';

describe('model: must be a regular .py file before anything is stored', () => {
  const dir = tempDir();
  let moto: Moto;
  let s3: S3Client;
  let socket: Server;
  let env: Record<string, string | undefined>;

  /** Every key in the bucket. */
  const keys = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))).Contents ?? []).map((o) => o.Key).sort();

  beforeAll(async () => {
    moto = await startMoto();
    await moto.createBucket(BUCKET);
    s3 = moto.client();
    // The store is shared and already holds something: a refused run must add nothing to it.
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'team/blobs/sha256/existing', Body: 'x' }));
    env = { ...testEnv(tempDir(), inject('temporalAddress')), ...moto.env, TTD_STORE: `s3://${BUCKET}/team` };

    mkdirSync(join(dir, 'package.py'));
    execFileSync('mkfifo', [join(dir, 'fifo.py')]);
    socket = createServer();
    await new Promise<void>((resolve) => socket.listen(join(dir, 'socket.py'), resolve));
    writeFileSync(join(dir, 'model.txt'), 'def build_model(params): ...\n');
    writeFileSync(join(dir, 'huge.py'), '');
    truncateSync(join(dir, 'huge.py'), 16 * 1024 * 1024 + 1);
    writeFileSync(join(dir, 'credentials'), '[default]\naws_secret_access_key = not-a-real-one\n');
    symlinkSync(join(dir, 'credentials'), join(dir, 'creds.py'));
    symlinkSync('/proc/self/environ', join(dir, 'environ.py'));
    mkdirSync(join(dir, 'shared'));
    copyFileSync(join(seedDir, 'model.py'), join(dir, 'shared', 'seed.py'));
    symlinkSync(join(dir, 'shared', 'seed.py'), join(dir, 'linked.py'));
  });
  afterAll(async () => {
    socket?.close();
    s3?.destroy();
    await moto?.stop();
  });

  /** Writes a spec naming `model` (or the given fields) and runs it; returns the error of --json. */
  const refuse = async (name: string, fields: string) => {
    const spec = join(dir, `${name}.yaml`);
    writeFileSync(spec, `name: ${name}\n${fields}\n`);
    const r = await runTtd(['run', spec, '--json'], env);
    expect(r.code, r.stderr).toBe(2);
    return JSON.parse(r.stdout).error as { code: string; message: string };
  };

  it('a directory, a FIFO, /dev/zero, /dev/stdin and a socket are refused naming what they are', async () => {
    const cases: [string, string, string][] = [
      ['dir', './package.py', 'is a directory, not a regular file'],
      ['fifo', './fifo.py', 'is a named pipe (FIFO), not a regular file'],
      ['zero', '/dev/zero', 'is a character device, not a regular file'],
      ['stdin', '/dev/stdin', 'is a character device, not a regular file'], // stdin is /dev/null here
      ['socket', './socket.py', 'is a socket, not a regular file'],
    ];
    for (const [name, model, what] of cases) {
      const error = await refuse(name, `model: ${model}`);
      expect(error.code, name).toBe('model_invalid');
      expect(error.message).toContain(`model: file '${model}' (resolved to `);
      expect(error.message).toContain(`) ${what}; expected a Python file (.py), or a TorchScript archive with references`);
    }
    expect(await keys()).toEqual(['team/blobs/sha256/existing']);
  });

  it('a missing file, another kind of file and a .py above 16 MiB are refused with their code and reason', async () => {
    expect(await refuse('missing', 'model: ./missing.py')).toMatchObject({
      code: 'model_file_not_found',
      message: expect.stringContaining(`model: file './missing.py' (resolved to ${join(dir, 'missing.py')}) does not exist`),
    });
    expect(await refuse('text', 'model: ./model.txt')).toMatchObject({
      code: 'model_invalid',
      message: expect.stringContaining('is not a Python file: its name does not end in .py, and it is not a TorchScript archive (a zip)'),
    });
    expect(await refuse('huge', 'model: ./huge.py')).toMatchObject({
      code: 'model_invalid',
      message: expect.stringContaining('is 16777217 bytes, more than the 16777216 bytes (16 MiB) a model file may have'),
    });
    expect(await keys()).toEqual(['team/blobs/sha256/existing']);
  });

  it('a link named .py that leads to a credentials file or to /proc/self/environ is refused, and neither is uploaded', async () => {
    expect(await refuse('creds', 'model: ./creds.py')).toMatchObject({
      code: 'model_invalid',
      message: expect.stringContaining(`is not a Python file (a link to ${join(dir, 'credentials')})`),
    });
    expect(await refuse('environ', 'model: ./environ.py')).toMatchObject({
      code: 'model_invalid',
      message: expect.stringMatching(/is \/proc\/\d+\/environ, a kernel pseudo-file, not a file on disk/),
    });
    expect(await refuse('artifact-dir', 'artifact: ./package.py\nreferences: ./model.txt')).toMatchObject({
      code: 'artifact_invalid',
      message: expect.stringContaining("artifact: file './package.py'"),
    });
    expect(await keys()).toEqual(['team/blobs/sha256/existing']);
  });

  it('a link to a regular .py file is accepted: its bytes are what the run stores', async () => {
    const spec = join(dir, 'linked.yaml');
    writeFileSync(spec, 'name: linked\nmodel: ./linked.py\n');
    const started = await runTtd(['run', spec, '--detach', '--json'], env);
    expect(started.code, started.stderr).toBe(0);
    const { runId } = JSON.parse(started.stdout);
    try {
      const added = (await keys()).filter((k) => k !== 'team/blobs/sha256/existing');
      const seed = digestBytes(readFileSync(join(seedDir, 'model.py'))).slice('sha256:'.length);
      expect(added).toContain(`team/blobs/sha256/${seed}`);
    } finally {
      // No worker serves this test's queues: the run is cancelled, not left waiting on the shared server.
      expect((await runTtd(['cancel', runId], env)).code).toBe(0);
    }
  });
});
