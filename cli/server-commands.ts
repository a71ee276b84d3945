// `ttd server start|stop|status` and `ttd worker`: the processes an operator runs beside `ttd run`.
import { checkSigningKey } from '../lib/registry/signing-key';
import { concurrencyArgument } from '../lib/limits/capacity';
import { forEnvironment, openStore, withConcurrency } from '../lib/config';
import { loadTemporalConfig, serverAddress, type TemporalConfig } from '../temporal/config';
import { usesTls } from '../temporal/profile';
import { refusal } from './connection-refusal';
import { controlQueue, Device, prefixEnvironment, queueNaming, torchQueue, workerEnvironments } from '../temporal/queues';
import { deploymentName, joinDeployment, type WorkerDeploymentVersion } from '../temporal/versioning';
import type { Client } from '@temporalio/client';
import {
  checkMetricsPort,
  codeBuildId,
  createWorkers,
  flushTelemetry,
  installQuietRuntime,
  QueueKind,
  stopForkServers,
  useTelemetry,
  workerTelemetry,
} from '../workers';
import { listening, runningServerPid, serverFiles, startBackgroundServer, stopBackgroundServer } from '../temporal/dev-server';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { failWith, printJsonOr, writeErr } from './output';
import { checkSearchAttributes, connectTemporal, requireServer } from './temporal';

/** `ttd server start`: returns once the server answers. */
export async function serverStartCommand(opts: { json?: boolean }): Promise<void> {
  try {
    const config = loadTemporalConfig();
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
    const { pid } = await stopBackgroundServer(loadTemporalConfig());
    printJsonOr(
      Boolean(opts.json),
      { status: 'stopped', pid },
      pid === null ? 'no server was running' : `stopped the Temporal dev server (pid ${pid})`,
    );
  } catch (err) {
    failWith(err, Boolean(opts.json));
  }
}

/** `ttd server status`: exit 0 when it runs, 1 when it does not. With a server named by TEMPORAL_ADDRESS or a profile
 * (a cluster, Temporal Cloud), it connects as every command does (TLS, client certificate, API key) and checks that
 * the namespace is there: exit 0 when it answers, else the error (server_unreachable within 10 s, server_auth_failed,
 * namespace_not_found, config_invalid), exit 2. */
export async function serverStatusCommand(opts: { json?: boolean }): Promise<void> {
  try {
    const config = loadTemporalConfig();
    if (config.temporalAddress !== undefined) return await remoteServerStatus(config, Boolean(opts.json));
    const pid = runningServerPid(config);
    const up = await listening(config.temporalPort);
    // A port held by a process ttd did not start may be another program: it counts as running only if it answers as Temporal.
    if (up && pid === null) await (await connectTemporal(config, serverAddress(config))).close();
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

// A server this process did not start: reachable with the configured credentials, and the namespace there.
async function remoteServerStatus(config: TemporalConfig, json: boolean): Promise<void> {
  const address = serverAddress(config);
  const temporal = await connectTemporal(config, address);
  try {
    const namespace = config.temporalNamespace;
    try {
      await temporal.client.workflowService.describeNamespace({ namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== GRPC_NOT_FOUND) throw refusal(err, config.temporal, address) ?? err;
      throw new TtdError(
        ErrorCode.namespaceNotFound,
        `the Temporal server at ${address} has no namespace '${namespace}' (${config.temporal.origin.namespace ?? 'the default'}); expected a namespace that exists there, set by TEMPORAL_NAMESPACE or namespace in the profile`,
        { address, namespace },
      );
    }
    printJsonOr(
      json,
      { status: 'running', pid: null, address, namespace, serverVersion: temporal.serverVersion || null, tls: usesTls(config.temporal) },
      `running at ${address}, namespace ${namespace}${usesTls(config.temporal) ? ', over TLS' : ''}${temporal.serverVersion ? ` (server ${temporal.serverVersion})` : ''}`,
    );
    process.exitCode = 0;
  } finally {
    await temporal.close();
  }
}

/** Joins the worker's deployment (temporal/versioning.ts) and says what that means for new runs; a failure leaves the
 * worker serving the runs pinned to its build. */
async function reportJoin(client: Client, config: TemporalConfig, version: WorkerDeploymentVersion, control: string): Promise<void> {
  const setCurrent = `temporal worker deployment set-current-version --deployment-name ${version.deploymentName} --build-id ${version.buildId}`;
  try {
    const joined = await joinDeployment(client, config.temporalNamespace, version, control, {
      embedded: config.temporalAddress === undefined,
      identity: `ttd worker ${process.pid}`,
    });
    const build = `build ${version.buildId}`;
    if (joined.outcome === 'current') writeErr(`${build} is current: new runs go to it\n`);
    else if (joined.outcome === 'made-current')
      writeErr(
        `made ${build} current: new runs go to it${joined.previous ? `; runs pinned to build ${joined.previous} stay on it` : ''}\n`,
      );
    else
      writeErr(
        `${build} is not current (build ${joined.previous} is): it serves the runs pinned to it; ramp it or make it current with '${setCurrent}' (docs/deploy-upgrades.md)\n`,
      );
  } catch (err) {
    const code = err instanceof TtdError ? err.code : ErrorCode.serverUnreachable;
    writeErr(
      `ttd: warning: could not make build ${version.buildId} current: ${err instanceof Error ? err.message : String(err)}; it serves the runs pinned to it, and '${setCurrent}' makes it current [${code}]\n`,
    );
  }
}

/** gRPC's NOT_FOUND status. */
const GRPC_NOT_FOUND = 5;

/** `ttd worker [--queue control|torch] [--env NAME] [--device cpu|cuda] [--concurrency N] [--metrics-port N] [--otel]`: serves the
 * store's control queue and the torch queue of each pool (every installed environment, or the one --env names, on
 * --device) until SIGINT or SIGTERM, then drains and exits. */
export async function workerCommand(opts: {
  queue?: string;
  env?: string;
  device?: string;
  metricsPort?: string;
  metricsHost?: string;
  otel?: boolean;
  concurrency?: string;
}): Promise<void> {
  try {
    if (opts.queue !== undefined && opts.queue !== 'control' && opts.queue !== 'torch') {
      throw new TtdError(
        ErrorCode.specInvalid,
        `--queue must be control or torch (got '${opts.queue}'); without it the worker serves both`,
      );
    }
    if (opts.device !== undefined && opts.device !== Device.cpu && opts.device !== Device.cuda) {
      throw new TtdError(ErrorCode.argumentInvalid, `--device must be cpu or cuda (got '${opts.device}')`);
    }
    const pool = opts.env !== undefined || opts.device !== undefined;
    if (opts.queue === 'control' && pool) {
      throw new TtdError(
        ErrorCode.argumentInvalid,
        '--env and --device choose a torch pool, and --queue control serves none; drop them, or use --queue torch',
      );
    }
    const loaded = loadTemporalConfig();
    // Per pool: each torch queue this process serves runs up to this many at once (docs/deploy-capacity.md).
    const config = opts.concurrency === undefined ? loaded : withConcurrency(loaded, concurrencyArgument(opts.concurrency));
    // Telemetry is part of the SDK runtime, which is installed once per process: chosen before anything connects.
    const telemetry = workerTelemetry(opts);
    await checkMetricsPort(telemetry);
    useTelemetry(telemetry);
    if (config.queuePrefix !== undefined && pool) {
      throw new TtdError(
        ErrorCode.configInvalid,
        `TTD_QUEUE_PREFIX='${config.queuePrefix}' names one torch queue for every environment and device ('${config.queuePrefix}-torch'), so --env and --device cannot choose a pool; unset TTD_QUEUE_PREFIX to name the queues after the store and its pools`,
      );
    }
    const store = openStore(config);
    const serve = opts.queue ? [opts.queue as QueueKind] : [QueueKind.control, QueueKind.torch];
    // The control queue signs every version it registers: a key that cannot sign keeps the worker from starting (checked
    // without writing: a worker refused for another reason leaves nothing; the first run's check creates the key).
    if (serve.includes(QueueKind.control)) checkSigningKey(config);
    const device = (opts.device ?? Device.cpu) as Device;
    // With TTD_QUEUE_PREFIX, the one torch queue and the configured environment, as before pools.
    const environments = !serve.includes(QueueKind.torch)
      ? []
      : config.queuePrefix !== undefined
        ? [await prefixEnvironment(config.environments, config.environment)]
        : (await workerEnvironments(config.environments, opts.env, device)).map((e) => e.name);
    const naming = await queueNaming(config.queuePrefix, store);
    // The Worker Deployment version every worker of this process joins (docs/deploy-upgrades.md).
    const version = { deploymentName: deploymentName(naming, config.deploymentName), buildId: codeBuildId(config) };
    const server = await requireServer(config);
    installQuietRuntime();
    const temporal = await connectTemporal(config, server.address);
    // Its runs upsert ttd's search attributes: a namespace without them would fail every workflow task.
    if (serve.includes(QueueKind.control)) await checkSearchAttributes(temporal.client, config);
    const control = controlQueue(naming);
    const workers = serve.includes(QueueKind.control)
      ? await createWorkers({ connection: temporal.native, config, store, queues: { control }, version })
      : [];
    const torchQueues: string[] = [];
    for (const name of environments) {
      const poolConfig = forEnvironment(config, name)!;
      const queue = torchQueue(naming, { environment: poolConfig.environment, device });
      torchQueues.push(queue);
      workers.push(...(await createWorkers({ connection: temporal.native, config: poolConfig, store, queues: { torch: queue }, version })));
    }
    const stop = () => workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const queues = [...(serve.includes(QueueKind.control) ? [control] : []), ...torchQueues];
    writeErr(
      `worker serving ${queues.join(', ')} of store ${store.location} at ${server.address} (pid ${process.pid})` +
        `${torchQueues.length === 0 ? '' : `; ${config.concurrency} torch activities at once${torchQueues.length > 1 ? ' in each pool' : ''}, ${config.torchThreads} thread${config.torchThreads === 1 ? '' : 's'} each`}\n`,
    );
    writeErr(`worker deployment ${version.deploymentName}, build ${version.buildId}\n`);
    if (telemetry.metrics) writeErr(`metrics at http://${telemetry.metrics.host}:${telemetry.metrics.port}/metrics\n`);
    if (telemetry.otel)
      writeErr(
        `tracing to ${process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_ENDPOINT || 'http://localhost:4318'}\n`,
      );
    const running = Promise.all(workers.map((w) => w.run()));
    if (serve.includes(QueueKind.control)) void reportJoin(temporal.client, config, version, control);
    await running;
    await stopForkServers();
    await flushTelemetry();
    await temporal.close();
    writeErr('worker stopped\n');
  } catch (err) {
    failWith(err, false);
  }
}
