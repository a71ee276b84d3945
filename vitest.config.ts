import { defineConfig } from 'vitest/config';

// Two projects. `unit`: no Temporal server, no torch, files in parallel (seconds). `integration`: one real Temporal
// dev server (global setup) and real torch processes, files one at a time: two files at once raced before (see
// `git log --grep race`) and each file already runs torch work that fills our 2 cores. The unit project runs first
// (groupOrder) so that timing-sensitive integration tests never share the cores with it.
export default defineConfig({
  test: {
    testTimeout: 180_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          sequence: { groupOrder: 0 },
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
