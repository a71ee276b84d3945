// Starts one real Temporal dev server (the project's own temporal binary) for the whole suite.
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { TestProject } from 'vitest/node';
import { devServerFeatureArgs } from '../temporal/search-attributes';

let env: TestWorkflowEnvironment | undefined;

export async function setup(project: TestProject): Promise<void> {
  env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: join(__dirname, '..', '.venv', 'bin', 'temporal') },
      ip: '127.0.0.1',
      // What the embedded server has: ttd's search attributes, priority and fairness.
      extraArgs: ['--headless', '--log-level', 'error', ...devServerFeatureArgs()],
    },
  });
  project.provide('temporalAddress', env.address);
}

export async function teardown(): Promise<void> {
  await env?.teardown();
}

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
  }
}
