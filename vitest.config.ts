import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Two projects. `unit`: no Temporal server, no torch; files in parallel on worker threads (seconds). `integration`:
// one real Temporal dev server (global setup) and real torch processes; files one at a time, each in a fresh process:
// two files at once raced before (see `git log --grep race`), and one file's torch work already fills our 2 cores.
// vitest 3 sizes each pool once for all projects, so the split is by pool: threads for unit, forks (one) for
// integration. The unit project runs first (groupOrder), so integration tests never share the cores with it.
export default defineConfig({
  test: {
    testTimeout: 180_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    poolOptions: {
      threads: { maxThreads: Math.max(2, availableParallelism()), minThreads: 1 },
      forks: { maxForks: 1, minForks: 1 },
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
          pool: 'forks',
          globalSetup: ['test/global-setup.ts'],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
