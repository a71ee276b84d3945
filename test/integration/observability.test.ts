// Observability of workers, proven on real runs: Prometheus metrics scraped from `ttd worker --metrics-port`, and
// OpenTelemetry spans received by a local OTLP/HTTP receiver from `ttd worker --otel` (off without it).
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../lib/contract/results';
import { fixtureModels, freePort, quickSeedSpec, runTtd, seedDir, tempDir, writeSpec } from '../helpers';
import { startWorker } from '../hosts';
import { startOps, type Ops } from '../operations';

/** One sample of the Prometheus text format: a metric name, its labels and its value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (comments skipped). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and these labels (among others); undefined when there is none. */
function valueOf(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** What a tiny OTLP/HTTP receiver got: every span of every JSON export request, with its resource's service name. */
interface ReceivedSpan {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  attributes: Record<string, unknown>;
}

/** An OTLP/HTTP trace receiver on loopback that accepts JSON export requests at /v1/traces. */
async function startReceiver(): Promise<{ server: Server; url: string; spans: ReceivedSpan[]; requests: () => number }> {
  const spans: ReceivedSpan[] = [];
  let requests = 0;
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      requests++;
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).includes('json')) {
        res.writeHead(415).end();
        return;
      }
      const doc = JSON.parse(body);
      for (const rs of doc.resourceSpans ?? []) {
        const service = rs.resource?.attributes?.find((a: any) => a.key === 'service.name')?.value?.stringValue;
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            const attributes = Object.fromEntries((s.attributes ?? []).map((a: any) => [a.key, Object.values(a.value ?? {})[0]]));
            spans.push({
              service,
              name: s.name,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId || undefined,
              attributes,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}`, spans, requests: () => requests };
}

// The seed pipeline as a quick run that is promoted, and a model whose loss becomes infinite, rejected at training.
const promotedSpec = (name: string) => writeSpec(tempDir(), quickSeedSpec(name), join(seedDir, 'model.py'));
const rejectedSpec = (name: string) =>
  writeSpec(tempDir(), quickSeedSpec(name, { train: { epochs: 5, batch_size: 4 } }), join(fixtureModels, 'nan-loss.py'));

async function runToEnd(ops: Ops, spec: string): Promise<RunResult> {
  const run = await ops.ttd(['run', spec, '--detach', '--json']);
  expect(run.code, run.stderr).toBe(0);
  const waited = await ops.ttd(['wait', JSON.parse(run.stdout).runId, '--json']);
  return JSON.parse(waited.stdout);
}

describe('worker metrics and tracing', () => {
  let ops: Ops;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeAll(async () => {
    ops = await startOps(tempDir(), await freePort(), 'observe');
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await ops?.stopAll();
    receiver?.server.close();
  });

  it('a worker with --metrics-port serves the SDK metrics and ttd stage, gate, run and queue-wait metrics with their labels', async () => {
    const port = await freePort();
    // An OTLP endpoint is configured but tracing is not asked for: nothing may be sent there.
    const worker = await startWorker({ ...ops.env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }, ['--metrics-port', String(port)]);
    try {
      const promoted = await runToEnd(ops, promotedSpec('metered'));
      expect(promoted.status).toBe('promoted');
      const rejected = await runToEnd(ops, rejectedSpec('metered-nan'));
      expect(rejected.status).toBe('rejected');
      expect(rejected.gates).toMatchObject([{ gate: 'training', passed: false, code: 'non_finite_loss' }]);

      const scrape = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(scrape.status).toBe(200);
      const samples = parseMetrics(await scrape.text());
      const control = 'observe-control';
      const torch = 'observe-torch';

      // Stages as the runs saw them: every stage of the promoted run once, and train of the rejected run too.
      const stage = (s: string) => valueOf(samples, 'ttd_stage_duration_seconds_count', { stage: s, outcome: 'ok', taskQueue: control });
      expect(stage('train')).toBe(2);
      for (const s of ['trace', 'verify', 'optimize', 'fusion', 'store', 'parity', 'promote']) expect(stage(s), s).toBe(1);
      // The seconds are real: the promoted run's training took more than nothing and less than the whole test.
      const trainSeconds = valueOf(samples, 'ttd_stage_duration_seconds_sum', { stage: 'train', outcome: 'ok' })!;
      expect(trainSeconds).toBeGreaterThan(0.1);
      expect(trainSeconds).toBeLessThan(120);

      // Gate outcomes by gate and code.
      const gate = (g: string, outcome: string, code: string) =>
        valueOf(samples, 'ttd_gate_outcomes_total', { gate: g, outcome, code, taskQueue: control });
      expect(gate('training', 'passed', 'none')).toBe(1);
      expect(gate('training', 'failed', 'non_finite_loss')).toBe(1);
      for (const g of ['trace', 'optimize', 'fusion', 'parity', 'promotion']) expect(gate(g, 'passed', 'none'), g).toBe(1);
      expect(valueOf(samples, 'ttd_runs_total', { status: 'promoted' })).toBe(1);
      expect(valueOf(samples, 'ttd_runs_total', { status: 'rejected' })).toBe(1);

      // Queue waits and run times per activity attempt, by queue and activity type.
      expect(valueOf(samples, 'ttd_activity_queue_wait_seconds_count', { activityType: 'train', taskQueue: torch })).toBe(2);
      expect(valueOf(samples, 'ttd_activity_queue_wait_seconds_count', { activityType: 'storeArtifact', taskQueue: control })).toBe(1);
      expect(valueOf(samples, 'ttd_activity_duration_seconds_count', { activityType: 'checkParity', outcome: 'ok' })).toBe(1);
      // The train activity of the rejected run returned its verdict: it ran to the end, it did not fail.
      expect(valueOf(samples, 'ttd_activity_duration_seconds_count', { activityType: 'train', outcome: 'ok' })).toBe(2);

      // The SDK runtime's own metrics are on the same endpoint.
      expect(valueOf(samples, 'temporal_workflow_completed_total', { task_queue: control })).toBe(2);
      // The SDK's queue waits are per task queue only (ttd's are per activity type): seven torch activities (train,
      // trace, verify, optimize, checkFusion, checkParity, and the rejected run's train), five control ones (each run's
      // checkSigningKey; the promoted run's storeArtifact, signVersion and promoteModel).
      expect(valueOf(samples, 'temporal_activity_schedule_to_start_latency_count', { task_queue: torch })).toBe(7);
      expect(valueOf(samples, 'temporal_activity_schedule_to_start_latency_count', { task_queue: control })).toBe(5);
    } finally {
      await worker.stop();
    }
    expect(receiver.requests()).toBe(0);
  }, 240_000);

  it('a worker with TTD_OTEL=1 exports a span for the run’s workflow and one for each activity, in one trace', async () => {
    const worker = await startWorker({ ...ops.env, TTD_OTEL: '1', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    const result = await runToEnd(ops, promotedSpec('traced'));
    expect(result.status).toBe('promoted');
    await worker.stop(); // the worker sends what it still holds as it stops

    const { spans } = receiver;
    const workflow = spans.filter((s) => s.name === 'RunWorkflow:pipelineWorkflow' && s.attributes.workflowId === result.runId);
    expect(workflow).toHaveLength(1);
    expect(workflow[0].service).toBe('ttd-worker');
    const inTrace = spans.filter((s) => s.traceId === workflow[0].traceId);
    const byId = new Map(inTrace.map((s) => [s.spanId, s]));
    const ranActivities = inTrace.filter((s) => s.name.startsWith('RunActivity:'));
    for (const span of ranActivities) expect(span.attributes.temporalWorkflowId, span.name).toBe(result.runId);
    expect(new Set(ranActivities.map((s) => s.name.slice('RunActivity:'.length)))).toEqual(
      new Set([
        'checkSigningKey',
        'train',
        'trace',
        'verify',
        'optimize',
        'checkFusion',
        'storeArtifact',
        'checkParity',
        'signVersion',
        'promoteModel',
      ]),
    );
    // Each activity's span descends from the workflow's span (through the span that scheduled it).
    for (const span of ranActivities) {
      let at: ReceivedSpan | undefined = span;
      while (at && at.spanId !== workflow[0].spanId) at = at.parentSpanId ? byId.get(at.parentSpanId) : undefined;
      expect(at, `${span.name} descends from the workflow span`).toBeDefined();
    }
  }, 240_000);

  it('a bad metrics port is refused with port_invalid naming the flag and the value, before anything connects', async () => {
    for (const [args, env, message] of [
      [['--metrics-port', 'abc'], {}, "--metrics-port 'abc': expected a port, a whole number from 1 to 65535"],
      [['--metrics-port', '0'], {}, "--metrics-port '0': expected a port"],
      [[], { TTD_METRICS_PORT: '70000' }, "TTD_METRICS_PORT '70000': expected a port"],
    ] as [string[], Record<string, string>, string][]) {
      const r = await runTtd(['worker', ...args], { ...ops.env, ...env });
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).toContain('port_invalid');
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toContain('worker serving');
    }
  });

  it('a metrics port already in use is refused with the address and EADDRINUSE, and no worker starts', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const { port } = taken.address() as { port: number };
    try {
      const r = await runTtd(['worker', '--metrics-port', String(port)], ops.env);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`cannot serve metrics on 127.0.0.1:${port}: EADDRINUSE (in use; pick another with --metrics-port)`);
      expect(r.stderr).not.toContain('worker serving');
    } finally {
      taken.close();
    }
  });

  it('TTD_OTEL with a value other than 1, on, 0 or off is refused with config_invalid', async () => {
    const r = await runTtd(['worker'], { ...ops.env, TTD_OTEL: 'yes' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('config_invalid');
    expect(r.stderr).toContain("TTD_OTEL='yes'; expected 1 or on to trace, 0 or off not to");
    expect(r.stderr).not.toContain('worker serving');
  });
});
