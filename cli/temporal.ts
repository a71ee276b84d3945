// Connecting to Temporal: the client and worker connections for one CLI process, retried while a server starts.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Config } from '../lib/config';

const CONNECT_ATTEMPTS = 40;

/** Opens the client and the worker connection to `address`, retrying while the server comes up. */
export async function connectTemporal(
  config: Config,
  address: string,
): Promise<{ client: Client; native: NativeConnection; close(): Promise<void> }> {
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
