// Replays recorded histories of the pipeline workflow: a non-deterministic change to the workflow fails here.
// test/fixtures/histories/ holds runs of today's code; each vN/ below it, runs of older code that open runs may
// still have (docs/workflow-changes.md). Every set must replay against today's workflow.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';

// The replay workers log every state change at INFO; keep the suite's output readable.
const logger = new DefaultLogger('WARN');
Runtime.install({ logger });

const dir = join(__dirname, '..', 'fixtures', 'histories');
const fixtures = join(__dirname, '..', 'fixtures', 'workflows');
const jsonIn = (d: string) =>
  readdirSync(d)
    .filter((f) => f.endsWith('.json'))
    .sort();
// The current set and the older ones (v1, v2, ...), as paths relative to `dir`.
const older = readdirSync(dir, { withFileTypes: true })
  .filter((e) => e.isDirectory() && /^v\d+$/.test(e.name))
  .map((e) => e.name)
  .sort();
const sets = ['.', ...older];
const files = sets.flatMap((set) => jsonIn(join(dir, set)).map((f) => join(set, f)));
const history = (file: string): unknown => JSON.parse(readFileSync(join(dir, file), 'utf8'));

// Each workflow source is bundled once per file (webpack takes a second or two) and shared by its replays.
const bundles = new Map<string, Promise<WorkflowBundle>>();
const bundle = (workflowsPath: string) => {
  if (!bundles.has(workflowsPath)) {
    bundles.set(
      workflowsPath,
      bundleWorkflowCode({ workflowsPath, logger }).then(({ code }) => ({ code })),
    );
  }
  return bundles.get(workflowsPath)!;
};
const pipeline = () => bundle(join(__dirname, '..', '..', 'workflows', 'index.ts'));
const fixture = (name: string) => bundle(join(fixtures, `${name}.ts`));
const replay = async (code: Promise<WorkflowBundle>, file: string) =>
  Worker.runReplayHistory({ workflowBundle: await code }, history(file), file);

describe('workflow replay', () => {
  it.each(sets)('has recorded histories of a promoted, a foreign-artifact, a rejected and a failed run in %s', (set) => {
    expect(jsonIn(join(dir, set))).toEqual(['failed.json', 'foreign.json', 'promoted.json', 'rejected.json']);
  });

  it('keeps the histories recorded before the stage contract in v1', () => {
    expect(older).toContain('v1');
  });

  it.each(files)('the pipeline workflow replays %s deterministically', async (file) => {
    await expect(replay(pipeline(), file)).resolves.toBeUndefined();
  });
});

describe('workflow replay of a changed workflow', () => {
  it('rejects a reordered pipeline with a determinism violation, so the replay test can fail', async () => {
    await expect(replay(fixture('reordered'), 'promoted.json')).rejects.toThrow(/[Nn]ondetermin/);
  });

  // A timer added between the fusion and store stages: a new command where the history has the store activity.
  it.each(['promoted.json', 'v1/promoted.json'])('a change guarded by patched() replays %s deterministically', async (file) => {
    await expect(replay(fixture('patched'), file)).resolves.toBeUndefined();
  });

  it.each(['promoted.json', 'v1/promoted.json'])('the same change without patched() fails to replay %s', async (file) => {
    await expect(replay(fixture('unpatched'), file)).rejects.toThrow(
      /Nondeterminism error: Timer machine does not handle .*ActivityTaskScheduled/,
    );
  });

  it('the same change without patched() still replays rejected.json, which ends before the store: replay checks only the paths recorded', async () => {
    await expect(replay(fixture('unpatched'), 'rejected.json')).resolves.toBeUndefined();
  });
});
