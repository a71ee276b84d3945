// Connecting to Temporal: the client and worker connections for one CLI process, retried while a server starts.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { loadTemporalConfig, serverAddress, type TemporalConfig } from '../temporal/config';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { temporalConnectOptions } from '../temporal/profile';
import { refusal } from './connection-refusal';
import { installQuietRuntime } from '../workers/runtime';
import { listening } from '../temporal/dev-server';
import { ensureSearchAttributes } from '../temporal/search-attributes';

/** How long a server that should already run may take to answer (issue 15: an unreachable server fails within 10 s). */
const CONNECT_DEADLINE_MS = 10_000;
/** A server this process has just started may take longer: it answers once its namespace is ready. */
const STARTED_HERE_DEADLINE_MS = 60_000;

/** Opens the worker connection and the client to `address` with the profile's TLS, API key and gRPC metadata, retrying
 * until the deadline (10 s; 60 s for a server this process has just started); then a server_unreachable error naming
 * the address and how to start one. Credentials or TLS the server refuses fail at once (server_auth_failed), as does a
 * certificate file that is missing (config_invalid). */
export async function connectTemporal(
  config: TemporalConfig,
  address: string,
  opts: { startedHere?: boolean } = {},
): Promise<{ client: Client; native: NativeConnection; serverVersion: string; close(): Promise<void> }> {
  installQuietRuntime(); // before any native connection: the core's own logging must not reach stdout
  const options = temporalConnectOptions(config.temporal, address);
  const deadline = Date.now() + (opts.startedHere ? STARTED_HERE_DEADLINE_MS : CONNECT_DEADLINE_MS);
  let lastError: unknown;
  while (Date.now() < deadline) {
    const left = Math.max(500, Math.min(2_000, deadline - Date.now()));
    let native: NativeConnection | undefined;
    let connection: Connection | undefined;
    try {
      // The native (Rust) connection first: it says why a TLS handshake failed, where the client only times out.
      native = await withinMs(NativeConnection.connect(options), left, (late) => void late.close().catch(() => undefined));
      connection = await Connection.connect({ ...options, connectTimeout: left });
      const c = connection;
      const info = await c.withDeadline(Date.now() + left, () => c.workflowService.getSystemInfo({}));
      const client = new Client({ connection, namespace: config.temporalNamespace });
      const [openedNative, opened] = [native, connection];
      return {
        client,
        native,
        serverVersion: info.serverVersion ?? '',
        close: async () => {
          await openedNative.close();
          await opened.close();
        },
      };
    } catch (err) {
      lastError = err;
      await native?.close().catch(() => undefined);
      await connection?.close().catch(() => undefined);
      const refused = refusal(err, config.temporal, address);
      if (refused) throw refused;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const seconds = Math.round((opts.startedHere ? STARTED_HERE_DEADLINE_MS : CONNECT_DEADLINE_MS) / 1000);
  const source = config.temporal.origin.address ?? 'the embedded server (TTD_TEMPORAL_PORT)';
  // Nothing answered at all (a program on that port that is not Temporal, a hung server, packets dropped): say so in words.
  const silent = /^no answer within \d+ ms$/.test(firstLine(lastError));
  throw new TtdError(
    ErrorCode.serverUnreachable,
    `cannot reach the Temporal server at ${address} (${source}) within ${seconds} s: ${
      silent
        ? 'no answer to a gRPC call (a program on that port that is not Temporal, a server that hangs, or a firewall dropping packets)'
        : firstLine(lastError)
    }; ` + `start one with 'ttd server start', or point TEMPORAL_ADDRESS at a running server`,
    { address },
  );
}

/** `promise`, or a timeout error after `ms`; what it resolves to after that is handed to `late` (to close it). */
function withinMs<T>(promise: Promise<T>, ms: number, late: (value: T) => void): Promise<T> {
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.then((value) => {
      if (timedOut) late(value);
      return value;
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new Error(`no answer within ${ms} ms`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function firstLine(err: unknown): string {
  return errorText(err).split('\n')[0].slice(0, 300);
}

/** An error's message with its causes' (the client wraps gRPC's status in `cause`). */
function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err ?? 'no answer');
  const cause = err.cause instanceof Error && !err.message.includes(err.cause.message) ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

/** The server commands other than `ttd run` talk to: the profile's address, or the embedded one if it listens. */
export async function requireServer(config: TemporalConfig): Promise<{ address: string; startedHere: false; stop(): Promise<void> }> {
  const address = serverAddress(config);
  if (!config.temporalAddress && !(await listening(config.temporalPort))) {
    throw new TtdError(
      ErrorCode.serverNotRunning,
      `no Temporal server at ${address}: start one with 'ttd server start' (or set TEMPORAL_ADDRESS or TEMPORAL_PROFILE), and workers with 'ttd worker'`,
    );
  }
  return { address, startedHere: false, stop: async () => undefined };
}

/** Connects to the server for a command that only needs a client. */
export async function withClient<T>(fn: (client: Client, config: TemporalConfig) => Promise<T>): Promise<T> {
  const config = loadTemporalConfig();
  const server = await requireServer(config);
  const temporal = await connectTemporal(config, server.address);
  try {
    return await fn(temporal.client, config);
  } finally {
    await temporal.close();
  }
}

/** Checks that the namespace has ttd's search attributes (adding them on the embedded server, which an older ttd may
 * have started without them); search_attributes_missing on a cluster that lacks them. */
export function checkSearchAttributes(client: Client, config: TemporalConfig): Promise<void> {
  return ensureSearchAttributes(client, config.temporalNamespace, { embedded: !config.temporalAddress });
}

/** How often a command that waits on a run asks whether the server is still there, and how long it goes unanswered
 * before the command says it lost the server (a server that restarts within it loses nothing: runs are durable). */
const WATCHDOG_EVERY_MS = 5_000;
const WATCHDOG_LOST_AFTER_MS = 20_000;

/** While a command waits on a run: rejects with server_unreachable once the server has answered nothing for about
 * 20 s, instead of the client's own retries running for minutes and ending in an error that names nothing. */
export function serverWatchdog(client: Client, address: string, runId: string): { lost: Promise<never>; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let lastAnswer = Date.now();
  const lost = new Promise<never>((_, reject) => {
    const check = async () => {
      if (stopped) return;
      const answered = await client.connection
        .withDeadline(Date.now() + WATCHDOG_EVERY_MS, () => client.workflowService.getSystemInfo({}))
        .then(
          () => true,
          () => false,
        );
      if (stopped) return;
      if (answered) lastAnswer = Date.now();
      else if (Date.now() - lastAnswer >= WATCHDOG_LOST_AFTER_MS) {
        reject(
          new TtdError(
            ErrorCode.serverUnreachable,
            `lost the Temporal server at ${address} while waiting for run '${runId}': no answer for ${Math.round((Date.now() - lastAnswer) / 1000)} s; ` +
              `the run is durable and goes on when the server is back (ttd server start, or the cluster's own): follow it again with 'ttd wait ${runId}'`,
            { address },
          ),
        );
        return;
      }
      timer = setTimeout(() => void check(), WATCHDOG_EVERY_MS);
    };
    timer = setTimeout(() => void check(), WATCHDOG_EVERY_MS);
  });
  lost.catch(() => undefined); // read by a race; never an unhandled rejection when nobody is waiting any more
  return {
    lost,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
