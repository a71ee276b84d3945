// Interrupting `ttd run`, through the real bin/ttd on the suite's Temporal server: Ctrl-C cancels the run it started and
// exits 130 with one JSON object saying where it stood; SIGTERM does the same at once and exits 143; a second Ctrl-C
// within the grace period leaves the run running, detached. No stack trace, and the run does not carry on in the next worker.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Connection, Client } from '@temporalio/client';
import { describe, expect, inject, it } from 'vitest';
import { fixtureModels, freePort, quickSeedSpec, repoRoot, seedDir, tempDir, testEnv, writeSpec } from '../helpers';

interface Interrupted {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `ttd run --json` on a slow model and sends `signals` once training has shown its first epoch. */
function interruptRun(home: string, name: string, signals: NodeJS.Signals[]): Promise<Interrupted> {
  const spec = writeSpec(
    tempDir(),
    { name, params: { step_sleep: 0.05 }, train: { epochs: 200, batch_size: 8 } },
    join(fixtureModels, 'slow-mlp.py'),
  );
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'ttd'), 'run', spec, '--json', '--no-cache'], {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: '1', ...testEnv(home, inject('temporalAddress')) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    let second = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!sent && /epoch 1\/200/.test(stderr)) {
        sent = true;
        child.kill(signals[0]);
      }
      // The second signal once the first has been taken (so the two are never merged into one): within the grace period.
      if (signals.length > 1 && !second && /Ctrl-C: cancelling/.test(stderr)) {
        second = true;
        child.kill(signals[1]);
      }
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function workflowStatus(runId: string, waitMs = 20_000): Promise<string> {
  const connection = await Connection.connect({ address: inject('temporalAddress') });
  try {
    const client = new Client({ connection });
    for (let i = 0; i < waitMs / 200; i++) {
      const status = (await client.workflow.getHandle(runId).describe()).status.name;
      if (status !== 'RUNNING') return status;
      await new Promise((r) => setTimeout(r, 200));
    }
    return 'RUNNING';
  } finally {
    await connection.close();
  }
}

describe('interrupting ttd run', () => {
  it('Ctrl-C cancels the run, prints where it stood and exits 130', async () => {
    const run = await interruptRun(tempDir(), 'ctrl-c', ['SIGINT']);
    expect(run.code, run.stderr).toBe(130);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({ status: 'cancelled', stage: 'train', error: { code: 'run_cancelled' } });
    expect(out.error.message).toBe(`run ${out.runId} was cancelled`);
    expect(run.stderr).toContain(`Ctrl-C: cancelling ${out.runId} in 2 s; press Ctrl-C again to leave it running`);
    expect(run.stderr).toContain(`ttd: run ${out.runId} was cancelled (it stood at train) [run_cancelled]`);
    expect(run.stderr).not.toMatch(/\n\s+at |Channel has been shut down/);
    expect(await workflowStatus(out.runId)).toBe('CANCELLED');
  }, 180_000);

  it('SIGTERM is honoured the same way and exits 143', async () => {
    const run = await interruptRun(tempDir(), 'sigterm', ['SIGTERM']);
    expect(run.code, run.stderr).toBe(143);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({ status: 'cancelled', error: { code: 'run_cancelled' } });
    expect(await workflowStatus(out.runId)).toBe('CANCELLED');
  }, 180_000);

  it('a second Ctrl-C within the grace period leaves the run running, detached, and says how to follow it', async () => {
    const home = tempDir();
    const run = await interruptRun(home, 'ctrl-c-twice', ['SIGINT', 'SIGINT']);
    expect(run.code, run.stderr).toBe(130);
    const out = JSON.parse(run.stdout);
    expect(out.status).toBe('running');
    expect(out.error.code).toBe('run_detached');
    expect(out.error.message).toBe(
      `left ${out.runId} running, detached: it goes on when a worker serves it (ttd worker); follow it with 'ttd wait ${out.runId}', or stop it with 'ttd cancel ${out.runId}'`,
    );
    // Nothing cancelled it: it is still open on the server, waiting for a worker.
    expect(await workflowStatus(out.runId, 2_000)).toBe('RUNNING');
  }, 180_000);

  it('Ctrl-C while ttd run starts the embedded server stops that server, exits 130 and leaves no lease', async () => {
    const home = tempDir();
    const port = await freePort();
    const spec = writeSpec(tempDir(), quickSeedSpec('ctrl-c-early'), join(seedDir, 'model.py'));
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'ttd'), 'run', spec, '--json'], {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: '1', ...testEnv(home, undefined), TTD_TEMPORAL_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    // The server's log appears as it starts; it answers only once its namespace is ready, seconds later.
    const poll = setInterval(() => existsSync(join(home, 'server.log')) && child.kill('SIGINT') && clearInterval(poll), 20);
    const code = await closed;
    clearInterval(poll);
    expect(code, stderr).toBe(130);
    expect(JSON.parse(stdout)).toEqual({
      status: 'cancelled',
      error: { code: 'run_cancelled', message: 'interrupted by SIGINT before the run started; nothing was started' },
    });
    expect(stderr).not.toMatch(/\n\s+at /);
    // Before, the server went on without a lease, holding the port, until some later run of the home ended.
    const listening = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    expect(listening).toBe(false);
    expect(readdirSync(join(home, 'server-leases'))).toEqual([]);
  }, 180_000);
});
