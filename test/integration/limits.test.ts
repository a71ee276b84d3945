// Limits with clear errors (issue 14, item 7; docs/trust-limits.md): each test performs an attack from the audit and
// shows it refused with its code, a message naming the thing, the value and the limit, and nothing left behind.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { describe, expect, inject, it } from 'vitest';
import { checkpointIndexKey, latestCheckpoint, readCheckpointIndex, storeCheckpoint } from '../../lib/store/checkpoints';
import type { RunResult } from '../../lib/contract/results';
import { S3ObjectStore } from '../../lib/store/s3-store';
import { blobKey } from '../../lib/store/store';
import { checkpointBlobs, mustRun, fixtureModels, quickSeedSpec, repoRoot, runTtd, seedDir, tempDir, testEnv, writeSpec } from '../helpers';
import { startMoto } from '../moto';

const address = () => inject('temporalAddress');
const makeBomb = join(repoRoot, 'test', 'fixtures', 'foreign', 'make_zip_bomb.py');
const makeManyCases = join(repoRoot, 'test', 'fixtures', 'foreign', 'make_many_cases.py');

/** The history of a finished run, from the suite's Temporal server. */
async function history(runId: string) {
  const connection = await Connection.connect({ address: address() });
  try {
    return await new Client({ connection }).workflow.getHandle(runId).fetchHistory();
  } finally {
    await connection.close();
  }
}

// Appended to the seed's model file: each training batch sleeps 30 ms (32 batches an epoch), eval runs as before.
const SLOW_EPOCHS = `
import time as _time
_seed_build_model = build_model


class _SlowEpochs(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if self.training:
            _time.sleep(0.03)
        return self.inner(x)


def build_model(params):
    return _SlowEpochs(_seed_build_model(params))
`;

describe('limits', () => {
  it('a 1 MB foreign archive that expands to 1 GB is refused before upload with archive_too_large', async () => {
    const dir = tempDir();
    const made = JSON.parse(await mustRun('/usr/bin/python3', ['-I', makeBomb, dir, '1024']));
    expect(made.bytes).toBeLessThan(2 ** 21); // the attack: about 1 MB on disk ...
    expect(made.expanded).toBeGreaterThan(2 ** 30); // ... 1 GB expanded, in a record torch allocates in full
    writeFileSync(join(dir, 'pipeline.yaml'), 'name: bomb\nartifact: ./model.pt\nreferences: ./refs.safetensors\n');
    const home = tempDir();
    const run = await runTtd(['run', join(dir, 'pipeline.yaml'), '--json'], testEnv(home, address()));
    expect(run.code, run.stderr).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe('archive_too_large');
    expect(run.stderr).toContain(
      `artifact: './model.pt' (${made.bytes} bytes) expands to ${made.expanded} bytes, ${Math.round(made.expanded / made.bytes)} times its size; the limit is 100 times (TTD_MAX_ARCHIVE_RATIO)`,
    );
    expect(existsSync(join(home, 'store'))).toBe(false); // nothing uploaded
  });

  it('the absolute cap refuses an archive given as model:, naming the limit in MiB', async () => {
    const dir = tempDir();
    const made = JSON.parse(await mustRun('/usr/bin/python3', ['-I', makeBomb, dir, '8']));
    writeFileSync(join(dir, 'pipeline.yaml'), 'name: bomb\nmodel: ./model.pt\nreferences: ./refs.safetensors\n');
    const home = tempDir();
    const env = { ...testEnv(home, address()), TTD_MAX_ARCHIVE_MB: '4', TTD_MAX_ARCHIVE_RATIO: '100000' };
    const run = await runTtd(['run', join(dir, 'pipeline.yaml'), '--json'], env);
    expect(run.code, run.stderr).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe('archive_too_large');
    expect(run.stderr).toContain(
      `model: './model.pt' (${made.bytes} bytes) expands to ${made.expanded} bytes; the limit is 4194304 bytes (4 MiB, TTD_MAX_ARCHIVE_MB)`,
    );
    expect(existsSync(join(home, 'store'))).toBe(false);
  });

  it.each(['server', 'fresh'])(
    'a train stage (TTD_TORCH_PROCESS=%s) that grows past TTD_TORCH_STAGE_MAX_RSS_MB is killed and the run fails with memory_limit, not retried',
    async (torchProcess) => {
      const home = tempDir();
      const spec = writeSpec(
        tempDir(),
        quickSeedSpec('hog', { train: { epochs: 1, batch_size: 1, optimizer: 'sgd', lr: 0.01, loss: 'mse', seed: 0 } }),
        join(fixtureModels, 'memory-hog.py'),
      );
      const started = Date.now();
      const env = { ...testEnv(home, address()), TTD_TORCH_STAGE_MAX_RSS_MB: '1024', TTD_TORCH_PROCESS: torchProcess };
      const run = await runTtd(['run', spec, '--json'], env);
      const seconds = (Date.now() - started) / 1000;
      expect(run.code, run.stderr).toBe(2);
      const result: RunResult = JSON.parse(run.stdout);
      expect(result.status).toBe('failed');
      expect(result.gates).toEqual([expect.objectContaining({ gate: 'training', passed: false, code: 'memory_limit' })]);
      const message = result.gates[0].message;
      expect(message).toMatch(
        /^train failed: the torch stage 'train' was killed at (\d+) MiB of resident memory, past its cap of 1024 MiB \(TTD_TORCH_STAGE_MAX_RSS_MB\)/,
      );
      const measured = Number(/killed at (\d+) MiB/.exec(message)![1]);
      expect(measured).toBeGreaterThan(1024);
      expect(measured).toBeLessThan(4096); // killed well before the model's 4 GiB
      // One attempt: the same input would grow the same way again.
      const events = (await history(result.runId)).events ?? [];
      const train = new Set(
        events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'train').map((e) => String(e.eventId)),
      );
      const attempts = events
        .filter((e) => train.has(String(e.activityTaskStartedEventAttributes?.scheduledEventId)))
        .map((e) => e.activityTaskStartedEventAttributes!.attempt);
      expect(attempts).toEqual([1]);
      console.log(`memory cap (${torchProcess}): killed at ${measured} MiB (cap 1024), run took ${seconds.toFixed(1)} s`);
    },
  );

  it('a run of 8 epochs leaves only the last TTD_CHECKPOINTS_KEPT checkpoints in the store, not one per epoch', async () => {
    // The seed's model, about a second per epoch: train replaces an epoch's checkpoint file with the next one's, so a
    // worker that has not stored one before the next is written (the seed's epochs take milliseconds; under load the
    // worker lags) stores the newer one instead, and a run would store fewer than one per epoch.
    const model = join(tempDir(), 'slow-epochs.py');
    writeFileSync(model, `${readFileSync(join(seedDir, 'model.py'), 'utf8')}\n${SLOW_EPOCHS}`);
    const spec = (name: string) =>
      writeSpec(
        tempDir(),
        quickSeedSpec(name, {
          train: { epochs: 8, batch_size: 32, optimizer: 'adam', lr: 0.01, loss: 'mse', seed: 0 },
          parity: { runtimes: ['python'] },
        }),
        model,
      );
    // Without retention (the audit's finding): one checkpoint per epoch, never deleted.
    const unbounded = tempDir();
    const before = await runTtd(['run', spec('keep-all'), '--json'], { ...testEnv(unbounded, address()), TTD_CHECKPOINTS_KEPT: '1000' });
    expect(before.code, before.stderr).toBe(0);
    expect(checkpointBlobs(unbounded)).toHaveLength(8);
    const home = tempDir();
    const run = await runTtd(['run', spec('keep-three'), '--json'], { ...testEnv(home, address()), TTD_CHECKPOINTS_KEPT: '3' });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).status).toBe('promoted');
    const left = checkpointBlobs(home);
    expect(left).toHaveLength(3);
    // The same seed and data give the same bytes: the three kept are checkpoints the unbounded run wrote too.
    const all = checkpointBlobs(unbounded);
    expect(left.every((hex) => all.includes(hex))).toBe(true);
  }, 300_000);

  it('a foreign artifact with 5000 reference cases is promoted with every payload small and no activity retried', async () => {
    const dir = tempDir();
    await mustRun('/usr/bin/python3', ['-I', makeManyCases, dir, '5000']);
    writeFileSync(join(dir, 'pipeline.yaml'), 'name: many-cases\nartifact: ./model.pt\nreferences: ./refs.safetensors\n');
    const home = tempDir();
    const run = await runTtd(['run', join(dir, 'pipeline.yaml'), '--json'], testEnv(home, address()));
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toContain('exceeded the error limit');
    const result: RunResult = JSON.parse(run.stdout);
    expect(result.status).toBe('promoted');
    // Each runtime run carries 32 of its 5000 outputs; the whole list is a blob in the store.
    for (const r of result.parity ?? []) {
      expect(r.outputs).toHaveLength(32);
      expect(r.outputs_total).toBe(5000);
      expect(JSON.parse(readFileSync(join(home, 'store', 'blobs', 'sha256', r.outputs_digest!.slice(7)), 'utf8'))).toHaveLength(5000);
    }
    const events = (await history(result.runId)).events ?? [];
    const attempts = events.filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt);
    expect(attempts.every((a) => a === 1)).toBe(true);
    const largest = Math.max(...events.map((e) => JSON.stringify(e).length));
    console.log(`5000 reference cases: largest history event ${largest} bytes`);
    expect(largest).toBeLessThan(64 * 1024); // Temporal's limit is 2 MiB; the architecture asks for well under 64 KB
  }, 600_000);

  it('retention on the S3 protocol deletes the oldest checkpoint blobs, and a retry finds the newest one left', async () => {
    const moto = await startMoto();
    try {
      await moto.createBucket('models');
      const saved = { ...process.env };
      Object.assign(process.env, moto.env);
      const store = new S3ObjectStore('models', 'ttd', {
        credentials: { accessKeyId: moto.env.AWS_ACCESS_KEY_ID, secretAccessKey: moto.env.AWS_SECRET_ACCESS_KEY },
      });
      process.env = saved;
      const key = checkpointIndexKey('wf', 'run');
      const dir = tempDir();
      const digests: string[] = [];
      for (let epoch = 1; epoch <= 6; epoch++) {
        writeFileSync(join(dir, `checkpoint-${epoch}.pt`), `checkpoint of epoch ${epoch}`);
        digests.push((await storeCheckpoint(store, key, epoch, join(dir, `checkpoint-${epoch}.pt`), 3)).digest);
      }
      const blobs = await store.list('blobs/');
      expect(blobs).toEqual(
        digests
          .slice(3)
          .map((d) => blobKey(d))
          .sort(),
      );
      expect((await readCheckpointIndex(store, key)).map((e) => e.epoch)).toEqual([4, 5, 6]);
      expect(await latestCheckpoint(store, key)).toEqual({ epoch: 6, digest: digests[5] });
      await store.delete(blobKey(digests[5])); // as if lost: the retry resumes from the newest one left
      expect(await latestCheckpoint(store, key)).toEqual({ epoch: 5, digest: digests[4] });
    } finally {
      await moto.stop();
    }
  });
});
