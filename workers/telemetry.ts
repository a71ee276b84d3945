// A worker's telemetry: Prometheus metrics from the SDK runtime (its own and ttd's, recorded through the SDK's metric
// meter) and OpenTelemetry tracing of workflows and activities. Both are off unless a worker asks for them.
import { createServer } from 'node:net';
import * as otel from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { envDetectorSync, Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { MetricsExporterConfig, WorkerOptions } from '@temporalio/worker';
import { ErrorCode, TtdError } from '../lib/contract/errors';
import { ActivityMetricsInterceptor, METRIC_BUCKETS } from './activity-metrics';

/** What a process exports: a Prometheus endpoint (host and port) and whether it traces. */
export interface Telemetry {
  metrics?: { host: string; port: number };
  otel: boolean;
}

/** The telemetry `ttd worker` asked for: `--metrics-port` (else TTD_METRICS_PORT), `--metrics-host` (else
 * TTD_METRICS_HOST, default 127.0.0.1), `--otel` (else TTD_OTEL). Bad values are refused with the flag and the value. */
export function workerTelemetry(
  opts: { metricsPort?: string; metricsHost?: string; otel?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): Telemetry {
  const portText = opts.metricsPort ?? (env.TTD_METRICS_PORT || undefined);
  const source = opts.metricsPort !== undefined ? '--metrics-port' : 'TTD_METRICS_PORT';
  let metrics: Telemetry['metrics'];
  if (portText !== undefined) {
    const port = /^\d+$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      throw new TtdError(ErrorCode.portInvalid, `${source} '${portText}': expected a port, a whole number from 1 to 65535`);
    }
    const host = opts.metricsHost ?? (env.TTD_METRICS_HOST || '127.0.0.1');
    metrics = { host, port };
  } else if (opts.metricsHost !== undefined) {
    throw new TtdError(ErrorCode.argumentInvalid, `--metrics-host '${opts.metricsHost}' needs --metrics-port (or TTD_METRICS_PORT)`);
  }
  return { metrics, otel: Boolean(opts.otel) || otelFromEnv(env) };
}

/** TTD_OTEL: `1` or `on` traces, `0`, `off` or unset does not. */
export function otelFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.TTD_OTEL;
  if (value === undefined || value === '' || value === '0' || value === 'off') return false;
  if (value === '1' || value === 'on') return true;
  throw new TtdError(ErrorCode.configInvalid, `TTD_OTEL='${value}'; expected 1 or on to trace, 0 or off not to`);
}

// Chosen by the worker command before the runtime is installed; `ttd run` traces only when TTD_OTEL says so.
let chosen: Telemetry | undefined;

/** Sets this process's telemetry; call before anything installs the SDK runtime (it is installed once per process). */
export function useTelemetry(t: Telemetry): void {
  chosen = t;
}

function current(): Telemetry {
  chosen ??= { otel: otelFromEnv() };
  return chosen;
}

/** Fails with port_invalid when the metrics port cannot be bound, before the SDK runtime tries (it would fail with
 * a message that does not name the flag). */
export async function checkMetricsPort(t: Telemetry): Promise<void> {
  if (!t.metrics) return;
  const { host, port } = t.metrics;
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new TtdError(
          ErrorCode.portInvalid,
          `cannot serve metrics on ${host}:${port}: ${err.code ?? err.message}` +
            (err.code === 'EADDRINUSE' ? ' (in use; pick another with --metrics-port)' : ''),
        ),
      ),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/** The runtime's metrics exporter: Prometheus on the chosen address with durations in seconds, or none. */
export function runtimeMetrics(): { metrics?: MetricsExporterConfig } {
  const metrics = chosen?.metrics; // only `ttd worker` serves metrics
  if (!metrics) return {};
  const host = metrics.host.includes(':') ? `[${metrics.host}]` : metrics.host;
  return {
    metrics: {
      prometheus: {
        bindAddress: `${host}:${metrics.port}`,
        countersTotalSuffix: true,
        useSecondsForDurations: true,
        histogramBucketOverrides: METRIC_BUCKETS,
      },
    },
  };
}

// One tracer provider per process, made when the first worker is created with tracing on.
let provider: BasicTracerProvider | undefined;

function tracerProvider(): BasicTracerProvider {
  if (provider) return provider;
  // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) and _HEADERS; the resource OTEL_SERVICE_NAME
  // and OTEL_RESOURCE_ATTRIBUTES, as every OpenTelemetry SDK does.
  const resource = new Resource({ 'service.name': 'ttd-worker' }).merge(envDetectorSync.detect());
  provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  // Activities find their workflow's span in the Temporal headers (W3C trace context) and run inside their own.
  otel.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  otel.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  return provider;
}

/** The worker options that add ttd's activity metrics and, with tracing on, spans for activities and the sink that
 * exports workflow spans. The workflow interceptors of tracing are in the traced bundle (`tracedWorkflows`), or added
 * here when the worker bundles its workflows itself (`bundled` false). */
export function workerTelemetryOptions(opts: { bundled: boolean }): Pick<WorkerOptions, 'interceptors' | 'sinks'> {
  const metricsOnly = { interceptors: { activity: [() => ({ inbound: new ActivityMetricsInterceptor() })] } };
  if (!current().otel) return metricsOnly;
  const p = tracerProvider();
  const tracer = p.getTracer('ttd');
  return {
    interceptors: {
      activity: [
        (ctx) => ({
          inbound: new OpenTelemetryActivityInboundInterceptor(ctx, { tracer }),
          outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
        }),
        ...metricsOnly.interceptors.activity,
      ],
      ...(opts.bundled ? {} : { workflowModules: [OTEL_WORKFLOW_INTERCEPTORS] }),
    },
    sinks: { exporter: makeWorkflowExporter(p.getActiveSpanProcessor(), p.resource) },
  };
}

/** Whether workflows run with the OpenTelemetry workflow interceptors (the traced bundle). */
export function tracedWorkflows(): boolean {
  return current().otel;
}

/** The workflow interceptor module of tracing, for bundling. */
export const OTEL_WORKFLOW_INTERCEPTORS = require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/** Sends the spans still buffered; a worker calls it as it stops. */
export async function flushTelemetry(): Promise<void> {
  await provider?.shutdown();
  provider = undefined;
}
