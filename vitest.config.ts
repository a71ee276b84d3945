import { defineConfig } from 'vitest/config';

// Integration tests share one Temporal dev server (global setup) and spawn torch processes:
// run files one at a time on our 2-core machines.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
