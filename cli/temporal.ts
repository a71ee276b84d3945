// Connecting to Temporal: the client and worker connections for one CLI process, retried while a server starts.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig, serverAddress, type Config } from '../lib/config';
import { ErrorCode, TtdError } from '../lib/errors';
import { installQuietRuntime } from '../workers/create-workers';
import { listening } from '../workers/dev-server';

const CONNECT_ATTEMPTS = 40;

/** Opens the client and the worker connection to `address`, retrying while the server comes up. */
export async function connectTemporal(
  config: Config,
  address: string,
): Promise<{ client: Client; native: NativeConnection; close(): Promise<void> }> {
  installQuietRuntime(); // before any native connection: the core's own logging must not reach stdout
  let lastError: unknown;
  for (let attempt = 0; attempt < CONNECT_ATTEMPTS; attempt++) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: '2 seconds' });
      await connection.workflowService.getSystemInfo({});
      const native = await NativeConnection.connect({ address });
      const client = new Client({ connection, namespace: config.temporalNamespace });
      return {
        client,
        native,
        close: async () => {
          await native.close();
          await connection.close();
        },
      };
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`cannot reach the Temporal server at ${address}: ${(lastError as Error)?.message}`);
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
