// Store identity and task queue names: one id per store whatever the number of first writers, queues named after it
// and the pool, TTD_QUEUE_PREFIX's names exactly as before pools. A real filesystem store, no fakes.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTorchActivities, TORCH_ACTIVITY_TYPES } from '../../activities';
import { loadConfig } from '../../lib/config';
import { FsObjectStore } from '../../lib/store/fs-store';
import { Device, prefixEnvironment, queueNaming, queuesForRun, runQueues, workerEnvironments } from '../../temporal/queues';
import type { TorchEnv } from '../../lib/environments/environments';
import { formatIssues, validateSpec } from '../../lib/spec/spec';
import { readIdentity, STORE_IDENTITY_KEY, storeIdentity } from '../../lib/store/store-identity';
import { workerCommandFor } from '../../cli/queue-health';
import type { PipelineInput } from '../../workflows/definitions';
import { repoRoot, tempDir } from '../helpers';

describe('store identity', () => {
  it('twenty first writers at once agree on one id, written once', async () => {
    const dir = tempDir();
    const stores = Array.from({ length: 20 }, () => new FsObjectStore(dir));
    const ids = await Promise.all(stores.map((s) => storeIdentity(s)));
    expect(new Set(ids.map((i) => i.id)).size).toBe(1);
    expect(ids[0].id).toMatch(/^[0-9a-f]{16}$/);
    expect((await readIdentity(new FsObjectStore(dir)))?.id).toBe(ids[0].id);
  });

  it('two stores get different ids, so different queues', async () => {
    const [a, b] = [new FsObjectStore(tempDir()), new FsObjectStore(tempDir())];
    const pool = { environment: 'torch-2.13', device: 'cpu' as const };
    const qa = runQueues(await queueNaming(undefined, a), pool);
    const qb = runQueues(await queueNaming(undefined, b), pool);
    expect(qa.control).not.toBe(qb.control);
    expect(qa.torch).not.toBe(qb.torch);
  });

  it('a damaged identity is store_damaged naming the object, never replaced by a new id', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, STORE_IDENTITY_KEY), '{"id": "not hex"');
    const store = new FsObjectStore(dir);
    await expect(storeIdentity(store)).rejects.toMatchObject({
      code: 'store_damaged',
      message: expect.stringContaining(`the store identity ${STORE_IDENTITY_KEY} in ${store.location} is damaged`),
    });
  });
});

describe('task queues', () => {
  it('are named after the store and the pool: ttd-<id>-control and ttd-<id>-torch-<env>-<device>', async () => {
    const store = new FsObjectStore(tempDir());
    const { id } = await storeIdentity(store);
    expect(await queuesForRun(undefined, store, 'torch-1.13', undefined)).toEqual({
      control: `ttd-${id}-control`,
      torch: `ttd-${id}-torch-torch-1.13-cpu`,
    });
    expect((await queuesForRun(undefined, store, 'torch-2.13', 'cuda')).torch).toBe(`ttd-${id}-torch-torch-2.13-cuda`);
  });

  it('TTD_QUEUE_PREFIX names them as before pools, for every pool, and writes no identity', async () => {
    const dir = tempDir();
    const store = new FsObjectStore(dir);
    const config = loadConfig({ ...process.env, TTD_QUEUE_PREFIX: 'team-a' });
    expect(config.queuePrefix).toBe('team-a');
    for (const [env, device] of [
      ['torch-2.13', 'cpu'],
      ['torch-1.13', 'cuda'],
    ] as const) {
      expect(await queuesForRun(config.queuePrefix, store, env, device)).toEqual({ control: 'team-a-control', torch: 'team-a-torch' });
    }
    expect(await readIdentity(store)).toBeUndefined();
  });

  it('the torch activity types ttd status classifies by are exactly the torch queue activities', () => {
    const names = Object.keys(createTorchActivities({ config: loadConfig(), store: new FsObjectStore(tempDir()) }));
    expect([...TORCH_ACTIVITY_TYPES].sort()).toEqual(names.sort());
  });
});

describe('the command ttd status gives for an idle queue', () => {
  const input = (queues: PipelineInput['queues'], extra: Partial<PipelineInput> = {}) =>
    ({ queues, environment: 'torch-2.13', spec: { device: 'cuda' }, ...extra }) as PipelineInput;

  it("names the run's store and pool for queues named after the store", () => {
    const run = input(
      { control: 'ttd-0123456789abcdef-control', torch: 'ttd-0123456789abcdef-torch-torch-2.13-cuda' },
      { store: 's3://models/ttd' },
    );
    expect(workerCommandFor(run, 'torch')).toBe('TTD_STORE=s3://models/ttd ttd worker --queue torch --env torch-2.13 --device cuda');
    expect(workerCommandFor(run, 'control')).toBe('TTD_STORE=s3://models/ttd ttd worker --queue control');
  });

  it('names TTD_QUEUE_PREFIX for prefixed queues, and for runs started before pools (ttd-control, ttd-torch)', () => {
    expect(workerCommandFor(input({ control: 'team-a-control', torch: 'team-a-torch' }, { store: 'file:///s' }), 'torch')).toBe(
      'TTD_STORE=file:///s TTD_QUEUE_PREFIX=team-a ttd worker --queue torch',
    );
    expect(workerCommandFor(input({ control: 'ttd-control', torch: 'ttd-torch' }), 'control')).toBe(
      'TTD_QUEUE_PREFIX=ttd ttd worker --queue control',
    );
  });
});

describe('spec device', () => {
  it('is cpu or cuda, absent by default (so that specs written before it keep their digests)', () => {
    const absent = validateSpec({ name: 'm' });
    expect(absent.ok && absent.spec.device).toBeUndefined();
    const cuda = validateSpec({ name: 'm', device: 'cuda' });
    expect(cuda.ok && cuda.spec.device).toBe('cuda');
    const bad = validateSpec({ name: 'm', device: 'gpu' });
    expect(!bad.ok && formatIssues(bad.issues)).toContain('device: device must be cpu or cuda (got "gpu")');
  });
});

describe('worker environments', () => {
  const env = (name: string, python: string): TorchEnv => ({ name, python, libtorchRunner: '/nonexistent', device: 'cpu' });

  it('a worker with no --env serves the installed environments and skips one whose python is not a Python', async () => {
    const good = loadConfig({}).environments.find((e) => e.name === 'torch-1.13')!;
    const chosen = await workerEnvironments([env('broken', '/bin/true'), good], undefined, Device.cpu);
    expect(chosen.map((e) => e.name)).toEqual(['torch-1.13']);
  });

  it('a worker none of whose environments can serve is refused with the code of the newest, naming each python and what it did', async () => {
    const refused = workerEnvironments([env('a', '/bin/true'), env('b', '/nonexistent/python3')], undefined, Device.cpu);
    await expect(refused).rejects.toMatchObject({
      code: 'config_invalid',
      message:
        "none of this checkout's torch environments can serve torch stages (python '/bin/true' of environment 'a' is not a Python interpreter: asked to run a one-line Python probe (-c), it exited with status 0 and printed nothing; python '/nonexistent/python3' of environment 'b' does not exist); expected at least one Python interpreter with torch; make setup installs torch-2.13 (.torch/torch-2.13) and torch-1.13 (Debian python3-torch for /usr/bin/python3)",
    });
  });

  it('--env naming an environment whose python is a directory is config_invalid naming the flag, the python and what was expected', async () => {
    await expect(workerEnvironments([env('a', '/usr/bin')], 'a', Device.cpu)).rejects.toMatchObject({
      code: 'config_invalid',
      message: expect.stringMatching(
        /^--env 'a': python '\/usr\/bin' of environment 'a' is a directory; expected the path of a Python interpreter with torch/,
      ),
    });
  });

  it('under TTD_QUEUE_PREFIX the configured environment is probed: TTD_PYTHON without torch, or not a Python, is refused', async () => {
    const noTorch = join(repoRoot, '.venv', 'bin', 'python'); // the tools' virtualenv: a Python without torch
    const config = loadConfig({ TTD_PYTHON: noTorch });
    await expect(prefixEnvironment(config.environments, config.environment)).rejects.toMatchObject({
      code: 'torch_missing',
      message: expect.stringContaining(`TTD_PYTHON='${noTorch}' has no torch module`),
    });
    await expect(prefixEnvironment([env('custom', '/bin/echo')], 'custom')).rejects.toMatchObject({
      code: 'config_invalid',
      details: { setting: 'TTD_PYTHON' },
      message: expect.stringContaining("TTD_PYTHON='/bin/echo' is not a Python interpreter"),
    });
    const installed = loadConfig({});
    await expect(prefixEnvironment(installed.environments, installed.environment)).resolves.toBeUndefined();
  });
});
