// Replays recorded histories of the pipeline workflow: a non-deterministic change to the workflow fails here.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';

// The replay workers log every state change at INFO; keep the suite's output readable.
Runtime.install({ logger: new DefaultLogger('WARN') });

const dir = join(__dirname, '..', 'fixtures', 'histories');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

describe('workflow replay', () => {
  it('has recorded histories of a promoted, a foreign-artifact, a rejected and a failed run', () => {
    expect(files).toEqual(['failed.json', 'foreign.json', 'promoted.json', 'rejected.json']);
  });

  it.each(files)('the pipeline workflow replays %s deterministically', async (file) => {
    // runReplayHistory converts the JSON itself (the SDK's own protobuf instance).
    const history: unknown = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    await expect(
      Worker.runReplayHistory({ workflowsPath: join(__dirname, '..', '..', 'workflows', 'index.ts') }, history, file),
    ).resolves.toBeUndefined();
  });
});

describe('workflow replay of a changed workflow', () => {
  it('rejects a reordered pipeline with a determinism violation, so the replay test can fail', async () => {
    const history: unknown = JSON.parse(readFileSync(join(dir, 'promoted.json'), 'utf8'));
    await expect(
      Worker.runReplayHistory({ workflowsPath: join(__dirname, '..', 'fixtures', 'workflows', 'reordered.ts') }, history, 'reordered'),
    ).rejects.toThrow(/[Nn]ondetermin/);
  });
});
