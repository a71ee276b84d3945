// A port that is free to connect to but bound by someone else (the local port of an outgoing connection, a socket
// that never listens): `ttd server start` names the conflict and the variable to change, and leaves no server behind.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, runTtd, tempDir } from '../helpers';

describe('the dev server port', () => {
  const holders: ReturnType<typeof spawn>[] = [];
  afterEach(() => holders.splice(0).forEach((h) => h.kill('SIGKILL')));

  it('bound but not listening: server_conflict naming the address and TTD_TEMPORAL_PORT, and no server left running', async () => {
    const port = await freePort();
    // Binds the port without listening: connecting to it is refused, so only the server's own bind finds it taken.
    const holder = spawn('python3', [
      '-c',
      `import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",${port}))\nprint("bound",flush=True)\ntime.sleep(120)`,
    ]);
    holders.push(holder);
    await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
    const home = tempDir();
    const r = await runTtd(['server', 'start'], { TTD_HOME: home, TTD_TEMPORAL_PORT: String(port), TEMPORAL_ADDRESS: undefined });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(
      `ttd: the Temporal dev server could not listen on 127.0.0.1:${port}: the port is in use by another process (set TTD_TEMPORAL_PORT to another port; the server also uses the port + 1000); see ${join(home, 'server.log')} [server_conflict]`,
    );
    const pidFile = join(home, 'server.pid');
    if (existsSync(pidFile)) expect(existsSync(`/proc/${readFileSync(pidFile, 'utf8').trim()}`)).toBe(false);
  }, 60_000);
});
