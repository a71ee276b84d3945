// Priority and fairness on a busy worker: a burst of scheduled retraining of one model, then a scheduled run of another
// model and a CI run, all started with the start options ttd gives every run (workflows/start-options.ts), on the suite's
// real Temporal dev server (priority and fairness on, one partition per queue, as the embedded server has them). The
// worker runs one activity at a time and each fake activity takes 40 ms, so the burst keeps a backlog of about twenty
// tasks; each activity records how long its task waited in the queue (started − scheduled).
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SpecSchema } from '../../lib/spec/spec';
import { PIPELINE_WORKFLOW, type PipelineInput } from '../../workflows/definitions';
import type { pipelineWorkflow } from '../../workflows/pipeline';
import { pipelineStartOptions } from '../../workflows/start-options';
import { digest, promoting, type Name } from '../fake-activities';

Runtime.install({ logger: new DefaultLogger('ERROR') });

const bundle = join(__dirname, '..', '..', 'dist', 'workflow-bundle.js');
const taskQueue = `priority-${randomUUID()}`;
const ACTIVITY_MS = 40;
const BURST = 20;

/** Queue waits (ms) of each run's activities, by workflow id. */
const waits = new Map<string, number[]>();
const fakes = promoting();
const activities = Object.fromEntries(
  (Object.keys(fakes) as Name[]).map((name) => [
    name,
    async (input: unknown) => {
      const info = Context.current().info;
      const id = info.workflowExecution?.workflowId ?? '';
      waits.set(id, [...(waits.get(id) ?? []), Date.now() - info.currentAttemptScheduledTimestampMs]);
      await new Promise((r) => setTimeout(r, ACTIVITY_MS));
      return (fakes[name] as (i: unknown) => Promise<unknown>)(input);
    },
  ]),
);

let worker: Worker;
let running: Promise<void>;
let native: NativeConnection;
let connection: Connection;
let client: Client;

beforeAll(async () => {
  const address = inject('temporalAddress');
  native = await NativeConnection.connect({ address });
  connection = await Connection.connect({ address });
  client = new Client({ connection });
  worker = await Worker.create({
    connection: native,
    taskQueue,
    workflowBundle: { codePath: bundle },
    activities,
    maxConcurrentActivityTaskExecutions: 1, // a busy torch host: one stage at a time
  });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await native?.close();
  await connection?.close();
});

function start(model: string, trigger: PipelineInput['trigger']) {
  const input: PipelineInput = {
    runId: `${model}-${trigger}-${randomUUID()}`,
    spec: SpecSchema.parse({ name: model }),
    specDigest: digest('0'),
    modelFileDigest: digest('b'),
    modelFilePath: 'model.py',
    actor: trigger === 'schedule' ? 'schedule:nightly' : 'ci',
    trigger,
    commit: trigger === 'ci' ? 'c0ffee' : null,
    queues: { control: taskQueue, torch: taskQueue },
  };
  return client.workflow.start<typeof pipelineWorkflow>(PIPELINE_WORKFLOW, {
    workflowId: input.runId!,
    taskQueue,
    args: [input],
    ...pipelineStartOptions(input),
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('priority and fairness', () => {
  it('a CI run passes a burst of twenty scheduled runs, and another model is not starved by the burst', async () => {
    const burst = await Promise.all(Array.from({ length: BURST }, () => start('nightly-a', 'schedule')));
    // The backlog forms: every run of the burst has its first activity queued before the others arrive.
    const deadline = Date.now() + 30_000;
    while ([...waits.keys()].length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const other = await start('nightly-b', 'schedule');
    const ci = await start('ci-model', 'ci');
    const finished: string[] = [];
    const all = [...burst, other, ci].map((h) => h.result().then((r) => (finished.push(h.workflowId), r)));
    const results = await Promise.all(all);
    expect(results.map((r) => r.status)).toEqual(Array(BURST + 2).fill('promoted'));

    const ciWaits = waits.get(ci.workflowId)!;
    const otherWaits = waits.get(other.workflowId)!;
    const burstWaits = burst.flatMap((h) => waits.get(h.workflowId)!);
    const report = `queue waits (ms): ci max ${Math.max(...ciWaits)} mean ${mean(ciWaits).toFixed(0)}; other model mean ${mean(otherWaits).toFixed(0)}; burst mean ${mean(burstWaits).toFixed(0)}; finished order ${finished.map((id) => id.split('-')[0] + '-' + id.split('-')[1]).join(' ')}`;
    console.log(report);
    // Priority: every CI task goes before the burst's backlog (about twenty tasks of 40 ms): it waits for the activity
    // running when it arrives, not for the queue; "a few seconds" at most, whatever the host's load.
    expect(Math.max(...ciWaits), report).toBeLessThan(3_000);
    expect(mean(ciWaits), report).toBeLessThan(mean(burstWaits) / 3);
    expect(finished.indexOf(ci.workflowId), report).toBeLessThan(BURST / 2);
    // Fairness: at the same priority, the other model's tasks alternate with the burst's instead of queueing behind it.
    expect(mean(otherWaits), report).toBeLessThan(mean(burstWaits) / 3);
    expect(finished.indexOf(other.workflowId), report).toBeLessThan(BURST);
  }, 120_000);
});
