// A worker's capacity end to end: `ttd worker --concurrency N` runs N torch stages at once and no more, and every torch
// stage's process (in the sandbox, on the fork server or fresh) gets the worker's threads per stage.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { MAX_CONCURRENCY, threadsPerStage } from '../../lib/limits/capacity';
import { quickSeedSpec, runTtd, tempDir, testEnv, writeSpec } from '../helpers';
import { startWorker, type WorkerProcess } from '../hosts';

const address = inject('temporalAddress');

// Says, from inside the train stage's process, the pool sizes torch has and what OpenMP was told; then fails the run.
const THREADS_MODEL = `import os, torch
def build_model(params):
    raise RuntimeError("pools: intra %d inter %d omp %s" % (torch.get_num_threads(), torch.get_num_interop_threads(),
                                                             os.environ.get("OMP_NUM_THREADS")))
def dataset(params, split):
    return torch.ones(8, 3), torch.ones(8, 1)
`;
// Holds its train stage for a few seconds (so that stages overlap), then fails the run: nothing else to wait for.
const SLOW_MODEL = `import time, torch
def build_model(params):
    time.sleep(4)
    raise RuntimeError("held the train stage for 4 s")
def dataset(params, split):
    return torch.ones(8, 3), torch.ones(8, 1)
`;

function modelSpec(dir: string, name: string, source: string): string {
  const model = join(dir, `${name}.py`);
  writeFileSync(model, source);
  return writeSpec(dir, quickSeedSpec(name, { environment: 'torch-1.13' }), model, `${name}.yaml`);
}

// The live processes under `pid` (the sandbox's included: their names are visible from here) named `comm`; an ended
// child the fork server has not reaped yet (a zombie, which keeps its name) does not count, nor does one that has
// answered and is exiting (it renames itself ttd-done first: under load, its exit can overlap the next stage's start).
function descendantsNamed(pid: number, comm: string): number {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      parent.set(Number(d), Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${d}/status`, 'utf8'))![1]));
    } catch {
      /* gone meanwhile */
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [p, pp] of parent) if (pp === tree[i]) tree.push(p);
  return tree.filter((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === comm && !'ZX'.includes(stat[stat.lastIndexOf(')') + 2]);
    } catch {
      return false;
    }
  }).length;
}

const workers: WorkerProcess[] = [];
afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop();
});

describe('worker capacity', () => {
  it('each torch stage takes the worker threads per stage, on the fork server and in a fresh process, in the sandbox', async () => {
    const home = tempDir();
    const env = testEnv(home, address);
    const spec = modelSpec(home, 'threads-probe', THREADS_MODEL);
    const pools = async (extra: Record<string, string>) => {
      const r = await runTtd(['run', spec, '--json'], { ...env, ...extra });
      const train = JSON.parse(r.stdout).gates.find((g: { gate: string }) => g.gate === 'training');
      expect(train.code, train.message).toBe('model_error');
      return /pools: intra (\d+) inter (\d+) omp (\S+)/.exec(train.message)!.slice(1, 4).join(' ');
    };
    expect(await pools({ TTD_TORCH_THREADS: '3' })).toBe('3 3 3');
    expect(await pools({ TTD_TORCH_THREADS: '3', TTD_TORCH_PROCESS: 'fresh' })).toBe('3 3 3');
    // `ttd run` serves its one run: all the cores to each stage. Told how many stages at once, a stage that runs alone
    // still gets every core (the share, cores / concurrency, is the least a stage gets beside others: coreShare in
    // lib/limits/capacity.ts); the worker's OMP_NUM_THREADS stays that share, torch's pools are what the stage got.
    const cores = availableParallelism();
    expect(await pools({})).toBe(`${cores} ${cores} ${cores}`);
    expect(await pools({ TTD_WORKER_CONCURRENCY: String(2 * cores) })).toBe(`${cores} ${cores} 1`);
  }, 180_000);

  it('a worker runs as many torch stages at once as --concurrency says, and no more', async () => {
    for (const concurrency of [2, 3]) {
      const home = tempDir();
      const env = testEnv(home, address);
      const spec = modelSpec(home, 'slow-train', SLOW_MODEL);
      const worker = await startWorker(env, ['--concurrency', String(concurrency)]);
      workers.push(worker);
      const banner = worker.serving;
      const threads = threadsPerStage(availableParallelism(), concurrency);
      expect(banner).toContain(`; ${concurrency} torch activities at once, ${threads} thread${threads === 1 ? '' : 's'} each`);
      const started = await Promise.all([1, 2, 3, 4].map(() => runTtd(['run', spec, '--detach', '--json'], env)));
      const runIds = started.map((r) => JSON.parse(r.stdout).runId as string);
      // Sample the train stages under the worker until every run has ended.
      let most = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          most = Math.max(most, descendantsNamed(worker.pid, 'ttd:train'));
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const ended = await Promise.all(runIds.map((id) => runTtd(['wait', id, '--json'], env)));
      sampling = false;
      await sampler;
      for (const r of ended) expect(JSON.parse(r.stdout).gates[0]).toMatchObject({ gate: 'training', code: 'model_error' });
      expect(most).toBe(concurrency);
      await worker.stop();
    }
  }, 240_000);

  it('ttd worker refuses a bad --concurrency or TTD_WORKER_CONCURRENCY before it connects, naming the value', async () => {
    const env = { ...testEnv(tempDir(), '127.0.0.1:1') }; // nothing listens there: a refusal must come first
    const flag = await runTtd(['worker', '--concurrency', 'all'], env);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain(
      `ttd: --concurrency 'all' is not a whole number from 1 to ${MAX_CONCURRENCY}; expected the torch activities this worker runs at once, e.g. --concurrency 4 [argument_invalid]`,
    );
    const variable = await runTtd(['worker'], { ...env, TTD_WORKER_CONCURRENCY: '0' });
    expect(variable.code).toBe(2);
    expect(variable.stderr).toContain(
      `ttd: TTD_WORKER_CONCURRENCY='0'; expected a whole number from 1 to ${MAX_CONCURRENCY} [config_invalid]`,
    );
  });
});
