// Connecting to Temporal: the client and worker connections for one CLI process, retried while a server starts.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig, serverAddress, type Config } from '../lib/config';
import { ErrorCode, TtdError } from '../lib/errors';
import { installQuietRuntime } from '../workers/create-workers';
import { listening } from '../workers/dev-server';

/** How long a server that should already run may take to answer (issue 15: an unreachable server fails within 10 s). */
const CONNECT_DEADLINE_MS = 10_000;
/** A server this process has just started may take longer: it answers once its namespace is ready. */
const STARTED_HERE_DEADLINE_MS = 60_000;

/** Opens the client and the worker connection to `address`, retrying until the deadline (10 s; 60 s for a server this
 * process has just started); then a server_unreachable error naming the address and how to start one. */
export async function connectTemporal(
  config: Config,
  address: string,
  opts: { startedHere?: boolean } = {},
): Promise<{ client: Client; native: NativeConnection; close(): Promise<void> }> {
  installQuietRuntime(); // before any native connection: the core's own logging must not reach stdout
  const deadline = Date.now() + (opts.startedHere ? STARTED_HERE_DEADLINE_MS : CONNECT_DEADLINE_MS);
  let lastError: unknown;
  while (Date.now() < deadline) {
    const left = Math.max(500, Math.min(2_000, deadline - Date.now()));
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({ address, connectTimeout: left });
      const c = connection;
      await c.withDeadline(Date.now() + left, () => c.workflowService.getSystemInfo({}));
      const native = await NativeConnection.connect({ address });
      const client = new Client({ connection, namespace: config.temporalNamespace });
      const opened = connection;
      return {
        client,
        native,
        close: async () => {
          await native.close();
          await opened.close();
        },
      };
    } catch (err) {
      lastError = err;
      await connection?.close().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const seconds = Math.round((opts.startedHere ? STARTED_HERE_DEADLINE_MS : CONNECT_DEADLINE_MS) / 1000);
  const source = config.temporalAddress ? 'TEMPORAL_ADDRESS' : 'the embedded server (TTD_TEMPORAL_PORT)';
  throw new TtdError(
    ErrorCode.serverUnreachable,
    `cannot reach the Temporal server at ${address} (${source}) within ${seconds} s: ${firstLine(lastError)}; ` +
      `start one with 'ttd server start', or point TEMPORAL_ADDRESS at a running server`,
    { address },
  );
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err ?? 'no answer');
  return text.split('\n')[0].slice(0, 300);
}

/** The server commands other than `ttd run` talk to: TEMPORAL_ADDRESS, or the embedded one if it listens. */
export async function requireServer(config: Config): Promise<{ address: string; startedHere: false; stop(): Promise<void> }> {
  const address = serverAddress(config);
  if (!config.temporalAddress && !(await listening(config.temporalPort))) {
    throw new TtdError(
      ErrorCode.serverNotRunning,
      `no Temporal server at ${address}: start one with 'ttd server start' (or set TEMPORAL_ADDRESS), and workers with 'ttd worker'`,
    );
  }
  return { address, startedHere: false, stop: async () => undefined };
}

/** Connects to the server for a command that only needs a client. */
export async function withClient<T>(fn: (client: Client, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const server = await requireServer(config);
  const temporal = await connectTemporal(config, server.address);
  try {
    return await fn(temporal.client, config);
  } finally {
    await temporal.close();
  }
}
