// A worker's capacity: torch activities at once from the host's cores (or --concurrency, TTD_WORKER_CONCURRENCY), and
// threads per torch stage (TTD_TORCH_THREADS, else the cores shared among the concurrent stages).
import { describe, expect, it } from 'vitest';
import { availableParallelism } from 'node:os';
import {
  capacityFrom,
  concurrencyArgument,
  defaultConcurrency,
  MAX_CONCURRENCY,
  STAGES_PER_CORE,
  stageThreads,
  threadsPerStage,
  torchThreadsFixed,
} from '../../lib/limits/capacity';
import { spinEnv } from '../../activities/torch-process';
import { loadConfig, withConcurrency } from '../../lib/config';
import { ErrorCode } from '../../lib/contract/errors';
import { thrownTtdError } from '../helpers';

describe('worker capacity', () => {
  it('derives concurrency from the cores and gives each stage an equal share of them, at least one thread', () => {
    expect(defaultConcurrency(2)).toBe(2 * STAGES_PER_CORE);
    expect(defaultConcurrency(16)).toBe(16 * STAGES_PER_CORE);
    expect(threadsPerStage(16, 4)).toBe(4);
    expect(threadsPerStage(16, 5)).toBe(3);
    expect(threadsPerStage(2, 4)).toBe(1);
    expect(threadsPerStage(1, 1)).toBe(1);
    // Stages at once times threads each never exceeds the cores, unless one thread each already does.
    for (const cores of [1, 2, 3, 8, 64]) {
      for (const n of [1, 2, 3, 7, 64, 200]) expect(n * threadsPerStage(cores, n)).toBeLessThanOrEqual(Math.max(cores, n));
    }
  });

  it('takes --concurrency over TTD_WORKER_CONCURRENCY over the cores, and TTD_TORCH_THREADS over the share', () => {
    expect(capacityFrom({}, 8)).toEqual({ concurrency: 8 * STAGES_PER_CORE, torchThreads: 1 });
    expect(capacityFrom({ TTD_WORKER_CONCURRENCY: '3' }, 8)).toEqual({ concurrency: 3, torchThreads: 2 });
    expect(capacityFrom({ TTD_WORKER_CONCURRENCY: '3' }, 8, 2)).toEqual({ concurrency: 2, torchThreads: 4 });
    expect(capacityFrom({ TTD_WORKER_CONCURRENCY: '3', TTD_TORCH_THREADS: '5' }, 8, 2)).toEqual({ concurrency: 2, torchThreads: 5 });
    expect(capacityFrom({ TTD_WORKER_CONCURRENCY: '' }, 2)).toEqual({ concurrency: 2 * STAGES_PER_CORE, torchThreads: 1 });
  });

  it('loadConfig carries the capacity, and withConcurrency recomputes the threads from the new concurrency', () => {
    const cores = availableParallelism();
    const config = loadConfig({ TTD_WORKER_CONCURRENCY: '1' });
    expect(config).toMatchObject({ concurrency: 1, torchThreads: cores });
    expect(withConcurrency(config, cores, {})).toMatchObject({ concurrency: cores, torchThreads: 1 });
    expect(withConcurrency(config, cores, { TTD_TORCH_THREADS: '3' })).toMatchObject({ concurrency: cores, torchThreads: 3 });
    expect(loadConfig({})).toMatchObject({ concurrency: defaultConcurrency(cores), torchThreads: 1 });
  });

  it('refuses a variable that is not a whole number from 1 to the maximum, naming it, its value and what was expected', () => {
    for (const [name, value] of [
      ['TTD_WORKER_CONCURRENCY', '0'],
      ['TTD_WORKER_CONCURRENCY', 'lots'],
      ['TTD_WORKER_CONCURRENCY', '2.5'],
      ['TTD_WORKER_CONCURRENCY', String(MAX_CONCURRENCY + 1)],
      ['TTD_TORCH_THREADS', '-1'],
      ['TTD_TORCH_THREADS', '1e3'],
    ]) {
      const err = thrownTtdError(() => loadConfig({ [name]: value }));
      expect(err.code).toBe(ErrorCode.configInvalid);
      expect(err.message).toBe(`${name}='${value}'; expected a whole number from 1 to ${MAX_CONCURRENCY}`);
    }
  });

  it('refuses a --concurrency that is not a whole number from 1 to the maximum, with the flag and an example', () => {
    expect(concurrencyArgument('6')).toBe(6);
    expect(concurrencyArgument(' 6 ')).toBe(6);
    for (const value of ['0', '', 'four', '3.5', '-2', String(MAX_CONCURRENCY + 1)]) {
      const err = thrownTtdError(() => concurrencyArgument(value));
      expect(err.code).toBe(ErrorCode.argumentInvalid);
      expect(err.message).toBe(
        `--concurrency '${value}' is not a whole number from 1 to ${MAX_CONCURRENCY}; expected the torch activities this worker runs at once, e.g. --concurrency 4`,
      );
      expect(err.details).toEqual({ flag: '--concurrency', value });
    }
  });
});

describe('threads of a torch stage starting now', () => {
  it('gives a stage alone every core, and stages side by side an equal share, never less than the configured one', () => {
    const capacity = capacityFrom({}, 8); // 8 stages at once, 1 thread each
    expect([1, 2, 3, 4, 8, 20].map((running) => stageThreads(capacity, 8, running))).toEqual([8, 4, 2, 2, 1, 1]);
    expect(stageThreads(capacity, 8, 0)).toBe(8); // outside a work dir: as if alone
    expect(stageThreads(capacityFrom({ TTD_WORKER_CONCURRENCY: '2' }, 8), 8, 8)).toBe(4);
  });

  it('keeps TTD_TORCH_THREADS when the operator set it, alone or not', () => {
    const env = { TTD_TORCH_THREADS: '3' };
    const capacity = { ...capacityFrom(env, 8), torchThreadsFixed: torchThreadsFixed(env) };
    expect([1, 4, 16].map((running) => stageThreads(capacity, 8, running))).toEqual([3, 3, 3]);
    expect(torchThreadsFixed({})).toBe(false);
    expect(() => torchThreadsFixed({ TTD_TORCH_THREADS: 'two' })).toThrow(/TTD_TORCH_THREADS='two'/); // as loadConfig says
  });

  it("bounds OpenMP's spinning unless the worker's environment chooses", () => {
    expect(spinEnv({})).toEqual({ GOMP_SPINCOUNT: '10000' });
    expect(spinEnv({ OMP_WAIT_POLICY: 'ACTIVE' })).toEqual({});
    expect(spinEnv({ GOMP_SPINCOUNT: '300000' })).toEqual({});
  });
});
