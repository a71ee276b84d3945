// A server that dies while `ttd wait` follows a run: the command says it lost the server, naming it, within about 20 s
// (it took 81 s and ended with `internal: Failed to describe workflow`), and the run, being durable, can be waited on
// again once the server is back.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, quickSeedSpec, runTtd, seedDir, tempDir, writeSpec } from '../helpers';
import { startOps, type Ops } from '../operations';

/** Whether process `pid` holds an established TCP connection to 127.0.0.1:`port` (its socket inodes in /proc/net/tcp). */
function connectedTo(pid: number, port: number): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  const inodes = new Set<string>();
  for (const fd of fds) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith('socket:[')) inodes.add(link.slice('socket:['.length, -1));
    } catch {
      /* closed while we looked */
    }
  }
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '01' && inodes.has(f[9]) && parseInt(f[2].split(':')[1], 16) === port) return true;
    }
  }
  return false;
}

describe('a lost server', () => {
  let ops: Ops | undefined;
  afterAll(async () => ops?.stopAll());

  it('ttd wait names the server it lost within about 20 s, and says how to follow the run again', async () => {
    const home = tempDir();
    ops = await startOps(home, await freePort(), 'lost');
    const spec = writeSpec(tempDir(), quickSeedSpec('lost'), join(seedDir, 'model.py'));
    // No worker: the run waits in its queue, so `ttd wait` waits on it.
    const started = await ops.ttd(['run', spec, '--detach', '--json']);
    expect(started.code, started.stderr).toBe(0);
    const { runId } = JSON.parse(started.stdout) as { runId: string };
    let pid = 0;
    const waiting = runTtd(['wait', runId, '--json'], ops.env, (p) => (pid = p));
    // Killed once `ttd wait` holds its connection (on a loaded host Node's start alone can take seconds).
    const port = Number(ops.env.TTD_TEMPORAL_PORT);
    for (let i = 0; i < 300 && !connectedTo(pid, port); i++) await new Promise((r) => setTimeout(r, 100));
    expect(connectedTo(pid, port)).toBe(true);
    await new Promise((r) => setTimeout(r, 1_000));
    const killedAt = Date.now();
    process.kill(Number(readFileSync(join(home, 'server.pid'), 'utf8')), 'SIGKILL');
    const waited = await waiting;
    const seconds = (Date.now() - killedAt) / 1000;
    expect(waited.code, waited.stderr).toBe(2);
    const { error } = JSON.parse(waited.stdout) as { error: { code: string; message: string } };
    expect(error.code).toBe('server_unreachable');
    expect(error.message).toContain(`lost the Temporal server at 127.0.0.1:${ops.env.TTD_TEMPORAL_PORT} while waiting for run '${runId}'`);
    expect(error.message).toContain(`follow it again with 'ttd wait ${runId}'`);
    expect(seconds).toBeLessThan(45);
  }, 120_000);
});
