// `ttd server start|stop|status` and `ttd worker`: the processes an operator runs beside `ttd run`.
import { stopForkServers } from '../activities/torch-process';
import { concurrencyArgument } from '../lib/capacity';
import { loadConfig, openStore, serverAddress, withConcurrency } from '../lib/config';
import { createWorkers, installQuietRuntime, type QueueKind } from '../workers/create-workers';
import { listening, runningServerPid, serverFiles, startBackgroundServer, stopBackgroundServer } from '../workers/dev-server';
import { ErrorCode, TtdError } from '../lib/errors';
import { failWith, printJsonOr, writeErr } from './output';
import { connectTemporal, requireServer } from './temporal';

/** `ttd server start`: returns once the server answers. */
export async function serverStartCommand(opts: { json?: boolean }): Promise<void> {
  try {
    const config = loadConfig();
    const s = await startBackgroundServer(config);
    const temporal = await connectTemporal(config, s.address, { startedHere: !s.already }); // answers, not just listens
    await temporal.close();
    printJsonOr(
      Boolean(opts.json),
      { status: 'running', pid: s.pid, address: s.address, db: serverFiles(config).db, already: s.already },
      `Temporal dev server ${s.already ? 'already running' : 'started'} at ${s.address} (pid ${s.pid}, SQLite ${serverFiles(config).db})`,
    );
  } catch (err) {
    failWith(err, Boolean(opts.json));
  }
}

/** `ttd server stop`. */
export async function serverStopCommand(opts: { json?: boolean }): Promise<void> {
  try {
    const { pid } = await stopBackgroundServer(loadConfig());
    printJsonOr(
      Boolean(opts.json),
      { status: 'stopped', pid },
      pid === null ? 'no server was running' : `stopped the Temporal dev server (pid ${pid})`,
    );
  } catch (err) {
    failWith(err, Boolean(opts.json));
  }
}

/** `ttd server status`: exit 0 when it runs, 1 when it does not. */
export async function serverStatusCommand(opts: { json?: boolean }): Promise<void> {
  try {
    const config = loadConfig();
    const pid = runningServerPid(config);
    const up = await listening(config.temporalPort);
    printJsonOr(
      Boolean(opts.json),
      { status: up ? 'running' : 'stopped', pid, address: serverAddress(config) },
      up ? `running at ${serverAddress(config)}${pid !== null ? ` (pid ${pid})` : ' (not started by ttd server start)'}` : 'stopped',
    );
    process.exitCode = up ? 0 : 1;
  } catch (err) {
    failWith(err, Boolean(opts.json)); // a bad TTD_TEMPORAL_PORT, say: one JSON object, not a stack trace
  }
}

/** `ttd worker [--queue control|torch]`: serves until SIGINT or SIGTERM, then drains and exits. */
export async function workerCommand(opts: { queue?: string; concurrency?: string }): Promise<void> {
  try {
    if (opts.queue !== undefined && opts.queue !== 'control' && opts.queue !== 'torch') {
      throw new TtdError(
        ErrorCode.specInvalid,
        `--queue must be control or torch (got '${opts.queue}'); without it the worker serves both`,
      );
    }
    const loaded = loadConfig();
    const config = opts.concurrency === undefined ? loaded : withConcurrency(loaded, concurrencyArgument(opts.concurrency));
    const server = await requireServer(config);
    installQuietRuntime();
    const temporal = await connectTemporal(config, server.address);
    const kinds = opts.queue ? [opts.queue as QueueKind] : undefined;
    const workers = await createWorkers({ connection: temporal.native, config, store: openStore(config), kinds });
    const stop = () => workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    writeErr(
      `worker serving ${(kinds ?? ['control', 'torch']).map((k) => config.queues[k]).join(', ')} at ${server.address} (pid ${process.pid})` +
        `${kinds?.includes('control') && kinds.length === 1 ? '' : `; ${config.concurrency} torch activities at once, ${config.torchThreads} thread${config.torchThreads === 1 ? '' : 's'} each`}\n`,
    );
    await Promise.all(workers.map((w) => w.run()));
    await stopForkServers();
    await temporal.close();
    writeErr('worker stopped\n');
  } catch (err) {
    failWith(err, false);
  }
}
