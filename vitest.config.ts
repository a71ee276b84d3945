import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Integration files at once. One file at a time kept about half a core busy (docs/benchmarks.md): most of a file's
// time is waiting on Temporal, on torch processes and servers starting. Files are race-free with each other: own
// homes, stores, task queues, ports and TMPDIRs, and process checks scoped to their own workers. Two, not more: with
// three beside the torch side and other sessions (load average 25), hook budgets ran out. On a quiet 2-core host a
// clean clone's suite took 36.3 min one at a time (about one core busy), 27.7 min two at once with the torch side
// beside (2026-12-04), 21-23 min with the other changes of that day. One of those runs failed on vitest's fixed 60 s
// worker RPC timeout ("Timeout calling onTaskUpdate"): a test that blocked its fork's event loop (a spawnSync of a whole
// `ttd run`, slower than 60 s on the loaded host) right after the fork sent an update; reproduced with a 65 s
// spawnSync, and gone now that tests never wait synchronously (test/helpers.ts `command`; ESLint refuses the sync
// forms). TTD_TEST_FORKS=1 runs one at a time.
const forks = Number(process.env.TTD_TEST_FORKS ?? 2);

// Files that assert wall-clock bounds ("refused at once", under 10 s; an environment found in under 5 s): they run
// after the others (and after the torch side, which ends well before), two at once as the others, so that the suite's
// own load does not decide them. One after another they kept a core idle for about 4 minutes; the bounds, all
// seconds where the tests take one or two, allow one file beside.
const alone = [
  'test/integration/temporal-connection.test.ts',
  'test/integration/cli-arguments.test.ts',
  'test/integration/store-identity.test.ts',
  'test/integration/store-damage.test.ts',
  'test/integration/declared-environment.test.ts',
];

// Three projects. `unit`: no Temporal server, no torch; files in parallel on worker threads (seconds). `integration`:
// one real Temporal dev server (global setup) and real torch processes; each file in a fresh process, `forks` files at
// once, with timeouts that allow for the files beside it and the torch side (make test runs it alongside).
// `integration-alone`: the files above, after the others (groupOrder). vitest 3 sizes each pool once for all projects
// (a project's own maxForks is not honoured): threads for unit, forks for both integration projects. The unit project
// runs first.
export default defineConfig({
  test: {
    testTimeout: 180_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    poolOptions: {
      threads: { maxThreads: Math.max(2, availableParallelism()), minThreads: 1 },
      forks: { maxForks: forks, minForks: 1 },
    },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          pool: 'threads',
          sequence: { groupOrder: 0 },
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          exclude: alone,
          pool: 'forks',
          globalSetup: ['test/global-setup.ts'],
          setupFiles: ['test/cpu-accounting.ts'],
          sequence: { groupOrder: 1 },
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration-alone',
          include: alone,
          pool: 'forks',
          globalSetup: ['test/global-setup.ts'],
          setupFiles: ['test/cpu-accounting.ts'],
          sequence: { groupOrder: 2 },
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
