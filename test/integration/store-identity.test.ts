// Store identity and worker pools on the suite's real server: two homes with two stores, each a worker; a run of one
// store waits for a worker of its store and pool (ttd status names the queue and the command), never taken by the
// other store's worker or by a worker of another pool; and a cuda spec is refused where torch sees no CUDA.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { hasCuda, knownEnvironments } from '../../lib/environments/environments';
import type { RunResult } from '../../lib/contract/results';
import { quickSeedSpec, repoRoot, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';
import { startWorker, type WorkerProcess } from '../hosts';

// A home of its own, its store inside it, and queues named after that store (no TTD_QUEUE_PREFIX).
const hostEnv = (home: string) => ({ ...testEnv(home, inject('temporalAddress')), TTD_QUEUE_PREFIX: undefined });
const storeId = (home: string) => JSON.parse(readFileSync(join(home, 'store', 'ttd-store.json'), 'utf8')).id as string;

describe('store identity and worker pools', () => {
  const workers: WorkerProcess[] = [];
  const worker = async (env: Record<string, string | undefined>, args: string[]) => {
    const w = await startWorker(env, args);
    workers.push(w);
    return w;
  };
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });

  /** `ttd status RUN --json` until `until` holds. */
  const statusUntil = async (env: Record<string, string | undefined>, runId: string, until: (v: any) => boolean) => {
    const deadline = Date.now() + 90_000;
    for (;;) {
      const r = await runTtd(['status', runId, '--json'], env);
      const view = r.code === 0 ? JSON.parse(r.stdout) : {};
      if (until(view)) return view;
      if (Date.now() > deadline) throw new Error(`status of ${runId} never matched: ${r.stdout}${r.stderr}`);
      await new Promise((res) => setTimeout(res, 1000));
    }
  };

  it("a run waits for a worker of its own store and pool: another store's worker and another pool's never take it", async () => {
    const [homeA, homeB] = [tempDir(), tempDir()];
    const [envA, envB] = [hostEnv(homeA), hostEnv(homeB)];
    // Store B's worker serves every queue of its store, torch-2.13 included; store A has only a torch-1.13 pool.
    const b = await worker(envB, ['--env', 'torch-2.13']);
    await worker(envA, ['--queue', 'control']);
    await worker(envA, ['--queue', 'torch', '--env', 'torch-1.13']);
    const spec = writeSpec(tempDir(), quickSeedSpec('pool-a', { environment: 'torch-2.13' }), join(seedDir, 'model.py'));
    const started = await runTtd(['run', spec, '--detach', '--json'], envA);
    expect(started.code, started.stderr).toBe(0);
    const { runId } = JSON.parse(started.stdout);
    const [idA, idB] = [storeId(homeA), storeId(homeB)];
    expect(idA).not.toBe(idB);
    expect(b.serving).toContain(`ttd-${idB}-control, ttd-${idB}-torch-torch-2.13-cpu`);

    const view = await statusUntil(envA, runId, (v) => v.idleQueues?.length > 0);
    expect(view.stage).toBe('train');
    expect(view.idleQueues).toEqual([
      {
        queue: `ttd-${idA}-torch-torch-2.13-cpu`,
        kind: 'torch',
        waitingFor: 'train',
        waitingSeconds: expect.any(Number),
        lastPolledAt: null,
        command: `TTD_STORE=file://${join(homeA, 'store')} ttd worker --queue torch --env torch-2.13 --device cpu`,
      },
    ]);
    const human = await runTtd(['status', runId], envA);
    expect(human.stdout).toContain(`train on task queue 'ttd-${idA}-torch-torch-2.13-cpu', and no worker polls it`);
    // Store B's worker took nothing of store A's run: its store holds no model.
    expect(existsSync(join(homeB, 'store', 'registry'))).toBe(false);

    await worker(envA, ['--queue', 'torch', '--env', 'torch-2.13']);
    const waited = await runTtd(['wait', runId, '--json'], envA);
    expect(waited.code, waited.stderr).toBe(0);
    const result: RunResult = JSON.parse(waited.stdout);
    expect(result.status).toBe('promoted');
    expect(result.parity?.every((p) => p.environment === 'torch-2.13')).toBe(true);
    expect(existsSync(join(homeB, 'store', 'registry'))).toBe(false);
    expect(existsSync(join(homeA, 'store', 'registry', 'pool-a.json'))).toBe(true);
  }, 240_000);

  it("ttd run serves its run in-process on its store's queues, and writes the store's identity once", async () => {
    const home = tempDir();
    const env = hostEnv(home);
    const spec = writeSpec(tempDir(), quickSeedSpec('in-process'), join(seedDir, 'model.py'));
    const first = await runTtd(['run', spec, '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).status).toBe('promoted');
    const id = storeId(home);
    const again = await runTtd(['run', spec, '--json'], env); // every stage from the step cache: quick
    expect(again.code, again.stderr).toBe(0);
    expect(storeId(home)).toBe(id);
  }, 180_000);

  it('a run with no worker at all is named as waiting on its control queue, and ttd status does not hang on it', async () => {
    const home = tempDir();
    const env = hostEnv(home);
    const spec = writeSpec(tempDir(), quickSeedSpec('nobody'), join(seedDir, 'model.py'));
    const { runId } = JSON.parse((await runTtd(['run', spec, '--detach', '--json'], env)).stdout);
    const started = Date.now();
    const view = await statusUntil(env, runId, (v) => v.idleQueues?.length > 0);
    expect(view.status).toBe('running');
    expect(view.idleQueues[0]).toMatchObject({
      queue: `ttd-${storeId(home)}-control`,
      kind: 'control',
      waitingFor: 'workflow task',
      command: `TTD_STORE=file://${join(home, 'store')} ttd worker --queue control`,
    });
    expect(Date.now() - started).toBeLessThan(60_000);
    expect((await runTtd(['cancel', runId], env)).code).toBe(0);
  }, 120_000);

  it('a cuda spec is refused before anything is stored where torch sees no CUDA, and a cuda worker likewise', async () => {
    const home = tempDir();
    const env = hostEnv(home);
    const cuda = await hasCuda(knownEnvironments(repoRoot)[0]);
    const spec = writeSpec(tempDir(), quickSeedSpec('on-gpu', { environment: 'torch-2.13', device: 'cuda' }), join(seedDir, 'model.py'));
    if (cuda) {
      // A host with a GPU serves the cuda pool: the worker starts, and says the queue.
      const w = await worker(env, ['--env', 'torch-2.13', '--device', 'cuda']);
      expect(w.serving).toMatch(/ttd-[0-9a-f]{16}-torch-torch-2\.13-cuda/);
      return;
    }
    const run = await runTtd(['run', spec, '--json'], env);
    expect(run.code).toBe(2);
    const out = JSON.parse(run.stdout);
    expect(out.error.code).toBe('device_unavailable');
    expect(out.error.message).toContain("device: cuda, but torch of environment 'torch-2.13' sees no CUDA device on this host");
    expect(existsSync(join(home, 'store'))).toBe(false);
    const w = await runTtd(['worker', '--env', 'torch-2.13', '--device', 'cuda'], env);
    expect(w.code).toBe(2);
    expect(w.stderr).toContain("--device cuda, but torch of 'torch-2.13' sees no CUDA device on this host; serve the cpu pool here");
    expect(w.stderr).toContain('[device_unavailable]');
  }, 120_000);
});
