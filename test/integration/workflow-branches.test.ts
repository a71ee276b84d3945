// Every branch of the pipeline workflow, on the suite's real Temporal dev server, with fake activities (no torch, no
// store): each test states only the outputs that differ from a run that promotes, and asserts the run's result, its
// failing gate and code, and the activities it called. One worker serves the whole file; activities find the
// test's fakes by workflow id.
import { randomUUID } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import {
  CancelledFailure,
  Client,
  Connection,
  WorkflowFailedError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GateCode, type Gate } from '../../lib/contract/gate-codes';
import type { RunResult } from '../../lib/contract/results';
import { DECLARED, digest, ENVIRONMENT, failed, out, promoting, ran, type Activities, type Name, type Torch } from '../fake-activities';
import { SpecSchema } from '../../lib/spec/spec';
import type { pipelineWorkflow } from '../../workflows/pipeline';
import { approveUpdate, PIPELINE_WORKFLOW, progressQuery, type PipelineInput, type PipelineProgress } from '../../workflows/definitions';

// The workers log every cancelled or late activity at INFO/WARN; the assertions say what matters.
Runtime.install({ logger: new DefaultLogger('ERROR') });

const root = join(__dirname, '..', '..');
const bundle = join(root, 'dist', 'workflow-bundle.js');

/** One call of a fake activity: its name and input. */
interface Call {
  name: Name;
  input: Record<string, unknown>;
}
const runs = new Map<string, { fakes: Activities; calls: Call[] }>();

// The worker's activities: each looks up the fakes of the workflow that called it.
const dispatch = Object.fromEntries(
  (Object.keys(promoting()) as Name[]).map((name) => [
    name,
    async (input: Record<string, unknown>) => {
      const id = Context.current().info.workflowExecution?.workflowId;
      const run = id === undefined ? undefined : runs.get(id);
      if (!run) throw new Error(`no fakes for workflow '${id}'`);
      run.calls.push({ name, input });
      return (run.fakes[name] as (i: unknown) => Promise<unknown>)(input);
    },
  ]),
);

const taskQueue = `wf-branches-${randomUUID()}`;
let worker: Worker;
let running: Promise<void>;
let native: NativeConnection;
let connection: Connection;
let client: Client;

beforeAll(async () => {
  // The bundle is what workers run; one older than the workflow sources would test old code.
  const newest = Math.max(
    ...['workflows', 'lib'].flatMap((d) => readdirSync(join(root, d)).map((f) => statSync(join(root, d, f)).mtimeMs)),
  );
  if (statSync(bundle).mtimeMs < newest) throw new Error(`${bundle} is older than workflows/ or lib/: build first (see README)`);
  const address = inject('temporalAddress');
  native = await NativeConnection.connect({ address });
  connection = await Connection.connect({ address });
  client = new Client({ connection });
  worker = await Worker.create({
    connection: native,
    taskQueue,
    workflowBundle: { codePath: bundle },
    activities: dispatch,
    // A blocked fake heartbeats: its cancellation arrives within a tenth of a second.
    defaultHeartbeatThrottleInterval: '50ms',
    maxHeartbeatThrottleInterval: '50ms',
  });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await native?.close();
  await connection?.close();
});

/** The spec and input of a run: the seed-like defaults, with what the test changes. */
function pipelineInput(spec: Record<string, unknown> = {}, extra: Partial<PipelineInput> = {}): PipelineInput {
  return {
    runId: `branch-${randomUUID()}`,
    spec: SpecSchema.parse({ name: 'fake-mlp', ...spec }),
    specDigest: digest('0'),
    modelFileDigest: digest('b'),
    modelFilePath: 'model.py',
    actor: 'tester',
    trigger: 'manual',
    commit: null,
    queues: { control: taskQueue, torch: taskQueue },
    ...extra,
  };
}

/** Starts a run whose activities are the promoting fakes with `fakes` over them. */
async function start(fakes: Partial<Activities> = {}, spec?: Record<string, unknown>, extra?: Partial<PipelineInput>) {
  const input = pipelineInput(spec, extra);
  const calls: Call[] = [];
  runs.set(input.runId!, { fakes: { ...promoting(), ...fakes }, calls });
  const handle = await client.workflow.start<typeof pipelineWorkflow>(PIPELINE_WORKFLOW, {
    workflowId: input.runId!,
    taskQueue,
    args: [input],
  });
  return { handle, calls, names: () => calls.map((c) => c.name), input: (name: Name) => calls.find((c) => c.name === name)?.input };
}

/** Runs to the end; the result and the names of the activities called, in order. */
async function run(fakes: Partial<Activities> = {}, spec?: Record<string, unknown>, extra?: Partial<PipelineInput>) {
  const started = await start(fakes, spec, extra);
  const result = await started.handle.result();
  return { ...started, result };
}

/** The gate that ended the run (the last one). */
const lastGate = (r: RunResult) => r.gates.at(-1)!;
const ending = (r: RunResult) => ({ status: r.status, gate: lastGate(r).gate, code: lastGate(r).code });
const endsWith = (status: RunResult['status'], gate: Gate, code: GateCode | null) => ({ status, gate, code });

/** A fake activity that blocks until released or cancelled (then `ended` says which), heartbeating so that it learns
 * of a cancellation; released, it answers as `then`. */
function blocker<N extends Name>(then: Activities[N]) {
  let release!: () => void;
  let started!: () => void;
  let end!: (how: 'released' | 'cancelled') => void;
  const released = new Promise<void>((r) => (release = r));
  const reached = new Promise<void>((r) => (started = r));
  const ended = new Promise<'released' | 'cancelled'>((r) => (end = r));
  const fake = (async (input: never) => {
    started();
    const ctx = Context.current();
    const beat = setInterval(() => ctx.heartbeat(), 20);
    try {
      await Promise.race([released, ctx.cancelled]);
    } catch (err) {
      end('cancelled');
      throw err;
    } finally {
      clearInterval(beat);
    }
    end('released');
    return (then as (i: never) => Promise<unknown>)(input);
  }) as Activities[N];
  return { fake, reached, release, ended };
}

/** Polls the progress query until `done` holds. */
async function progressUntil(handle: WorkflowHandle, done: (p: PipelineProgress) => boolean): Promise<PipelineProgress> {
  for (;;) {
    const p = await handle.query(progressQuery);
    if (done(p)) return p;
    await new Promise((r) => setTimeout(r, 10));
  }
}

const BUILD = ['train', 'trace', 'verify', 'optimize', 'checkFusion'];
const AFTER_BUILD = ['storeArtifact', 'checkParity', 'signVersion', 'promoteModel'];
// Every run that started with the signing patch checks its key before anything else.
const KEY = 'checkSigningKey';

describe('pipeline workflow branches', () => {
  it('a run whose every gate passes is promoted, calling each stage once in order', async () => {
    const { result, names, input } = await run();
    expect(result.status).toBe('promoted');
    expect(result).toMatchObject({ version: 4, digest: digest('4'), alias: 'production', training: { attempts: 1, resumedFromEpoch: 0 } });
    expect(result.gates.map((g) => [g.gate, g.passed])).toEqual([
      ['training', true],
      ['trace', true],
      ['optimize', true],
      ['fusion', true],
      ['parity', true],
      ['promotion', true],
    ]);
    expect(lastGate(result).message).toBe("version 4 of 'fake-mlp' is now 'production' (was version 3); audit record 12");
    expect(names()).toEqual([KEY, ...BUILD, ...AFTER_BUILD]);
    expect(input('storeArtifact')).toMatchObject({ files: { artifact: digest('4'), traced: digest('2'), references: digest('3') } });
    expect(input('promoteModel')).toMatchObject({ alias: 'production', approval: null });
    expect(result.cached).toBeUndefined();
    expect(result.torchTimings).toMatchObject({ train: 7, parity: 7 });
  });

  it('a declared environment is built as the first stage, every torch stage carries it, and the version stores what it resolved to', async () => {
    const environment = `torch-2.13+${'e'.repeat(64)}`;
    const { result, names, input, calls } = await run({}, { environment: { ...DECLARED } }, { environment, declaredEnvironment: DECLARED });
    expect(result.status).toBe('promoted');
    expect(names()).toEqual([KEY, 'buildEnvironment', ...BUILD, ...AFTER_BUILD]);
    expect(result.gates[0]).toEqual({
      gate: 'environment',
      passed: true,
      code: null,
      message: `built environment ${digest('e').slice(0, 19)}: 2 packages installed beside 0 of the base (torch 2.13.0+cpu of torch-2.13, shared)`,
    });
    expect(Object.keys(result.timings).slice(0, 2)).toEqual(['signing_key', 'environment']);
    // Every torch stage (the control queue's activities take no environment).
    const control = ['storeArtifact', 'promoteModel', 'checkSigningKey', 'signVersion'];
    for (const c of calls.filter((c) => !control.includes(c.name)))
      expect(c.input, c.name).toMatchObject({ environment, declared: DECLARED });
    expect(input('storeArtifact')).toMatchObject({
      spec: { environment: { ...DECLARED, resolved: ENVIRONMENT.resolved } },
      environment: ENVIRONMENT,
    });
  });

  it('a declared environment that cannot be built fails the run at the environment gate, and nothing trains', async () => {
    const { result, names } = await run(
      {
        buildEnvironment: async () => {
          throw ApplicationFailure.create({
            type: GateCode.environmentInvalid,
            message: "environment.requirements: 'torchvision' needs torch>=2.14.0",
            nonRetryable: true,
          });
        },
      },
      { environment: { ...DECLARED } },
      { environment: `torch-2.13+${'e'.repeat(64)}`, declaredEnvironment: DECLARED },
    );
    expect(ending(result)).toEqual(endsWith('failed', 'environment', 'environment_invalid'));
    expect(lastGate(result).message).toBe("environment failed: environment.requirements: 'torchvision' needs torch>=2.14.0");
    expect(names()).toEqual([KEY, 'buildEnvironment']);
  });

  it('training gate rejects a non-finite loss and nothing after training runs', async () => {
    const { result, names } = await run({
      train: async () => ran(out.trainRejected(GateCode.nonFiniteLoss, 'loss is nan at epoch 1 step 3')),
    });
    expect(ending(result)).toEqual(endsWith('rejected', 'training', 'non_finite_loss'));
    expect(lastGate(result).message).toBe('loss is nan at epoch 1 step 3');
    expect(names()).toEqual([KEY, 'train']);
  });

  it('trace gate rejects a graph that verify finds diverging in control flow, before optimize', async () => {
    const { result, names } = await run({ verify: async () => ran(out.verify(failed(GateCode.controlFlowDivergence))) });
    expect(ending(result)).toEqual(endsWith('rejected', 'trace', 'control_flow_divergence'));
    expect(lastGate(result).message).toBe('found control_flow_divergence');
    expect(names()).toEqual([KEY, 'train', 'trace', 'verify']);
  });

  it('optimize gate rejects an optimized graph that diverges, before fusion', async () => {
    const { result, names } = await run({ optimize: async () => ran(out.optimize(failed(GateCode.optimizedDivergence))) });
    expect(ending(result)).toEqual(endsWith('rejected', 'optimize', 'optimized_divergence'));
    expect(names()).toEqual([KEY, 'train', 'trace', 'verify', 'optimize']);
  });

  it('fusion gate rejects a graph without the required fusion, before anything is stored', async () => {
    const { result, names } = await run(
      { checkFusion: async () => ran(out.fusion({ ...failed(GateCode.fusionRequiredMissing), require: 'any' })) },
      { fusion: { require: 'any' } },
    );
    expect(ending(result)).toEqual(endsWith('rejected', 'fusion', 'fusion_required_missing'));
    expect(names()).toEqual([KEY, ...BUILD]);
  });

  it('parity gate rejects a runtime beyond tolerance: stored, never promoted, parity reported', async () => {
    const { result, names } = await run({ checkParity: async () => ran(out.parity(failed(GateCode.toleranceExceeded))) });
    expect(ending(result)).toEqual(endsWith('rejected', 'parity', 'tolerance_exceeded'));
    expect(result.parity?.[0]).toMatchObject({ runtime: 'python', passed: false, code: 'tolerance_exceeded' });
    expect(names()).toEqual([KEY, ...BUILD, 'storeArtifact', 'checkParity']);
  });

  it('an AOTInductor-only run exports, compiles, stores the package and checks it in every runtime, with no TorchScript stage', async () => {
    const { result, names, input } = await run({}, { formats: ['aoti'] });
    expect(result.status).toBe('promoted');
    expect(result.digest).toBe(digest('c'));
    expect(result.gates.map((g) => [g.gate, g.passed])).toEqual([
      ['training', true],
      ['export', true],
      ['compile', true],
      ['parity', true],
      ['promotion', true],
    ]);
    expect(names()).toEqual([KEY, 'train', 'exportProgram', 'compilePackage', ...AFTER_BUILD]);
    expect(input('compilePackage')).toMatchObject({ programDigest: digest('f'), referencesDigest: digest('e') });
    expect(input('storeArtifact')).toMatchObject({
      files: { artifact: digest('c'), aoti: digest('c'), program: digest('f'), aotiReferences: digest('e') },
      formats: { aoti: { digest: digest('c'), references: digest('e') } },
    });
    expect(input('checkParity')).toMatchObject({ artifactDigest: digest('c'), referencesDigest: digest('e'), format: 'aoti' });
  });

  it('both formats: the TorchScript stages, then export and compile, then parity once per format', async () => {
    const { result, names, calls } = await run({}, { formats: ['torchscript', 'aoti'] });
    expect(result.status).toBe('promoted');
    expect(result.digest).toBe(digest('4')); // the first format's artifact is the version's
    expect(names()).toEqual([
      KEY,
      ...BUILD,
      'exportProgram',
      'compilePackage',
      'storeArtifact',
      'checkParity',
      'checkParity',
      'signVersion',
      'promoteModel',
    ]);
    const parity = calls.filter((c) => c.name === 'checkParity').map((c) => [c.input.artifactDigest, c.input.format]);
    expect(parity).toEqual([
      [digest('4'), undefined],
      [digest('c'), 'aoti'],
    ]);
    expect(Object.keys(result.timings)).toEqual(expect.arrayContaining(['export', 'compile', 'parity', 'parity_aoti']));
  });

  it('export gate rejects a model torch.export cannot capture, before compile, and nothing is stored', async () => {
    const refused = failed(GateCode.dataDependentControlFlow, 'torch.export met control flow that depends on tensor values');
    const { result, names } = await run(
      { exportProgram: async () => ran(out.export({ ...refused, files: {} as Torch<'exportProgram'>['files'] })) },
      { formats: ['aoti'] },
    );
    expect(ending(result)).toEqual(endsWith('rejected', 'export', 'data_dependent_control_flow'));
    expect(lastGate(result).message).toBe('torch.export met control flow that depends on tensor values');
    expect(names()).toEqual([KEY, 'train', 'exportProgram']);
  });

  it('compile gate rejects a package that differs from eager, before anything is stored', async () => {
    const { result, names } = await run(
      { compilePackage: async () => ran(out.compile(failed(GateCode.compiledDivergence))) },
      { formats: ['torchscript', 'aoti'] },
    );
    expect(ending(result)).toEqual(endsWith('rejected', 'compile', 'compiled_divergence'));
    expect(names()).toEqual([KEY, ...BUILD, 'exportProgram', 'compilePackage']);
  });

  it('an ONNX run exports to ONNX after TorchScript, stores both and checks the ONNX model in its own parity stage', async () => {
    const { result, names, input, calls } = await run({}, { formats: ['torchscript', 'onnx'] });
    expect(result.status).toBe('promoted');
    expect(names()).toEqual([KEY, ...BUILD, 'exportOnnx', 'storeArtifact', 'checkParity', 'checkParity', 'signVersion', 'promoteModel']);
    expect(input('exportOnnx')).toMatchObject({ weightsDigest: digest('1'), batchSizes: [1, 7] });
    expect(input('storeArtifact')).toMatchObject({
      files: { onnx: digest('0'), onnxReferences: digest('e') },
      formats: { onnx: { digest: digest('0'), references: digest('e') } },
    });
    const parity = calls.filter((c) => c.name === 'checkParity').map((c) => c.input.format);
    expect(parity).toEqual([undefined, 'onnx']);
    expect(result.gates.map((g) => g.gate)).toContain('onnx');
    expect(Object.keys(result.timings)).toEqual(expect.arrayContaining(['onnx', 'parity', 'parity_onnx']));
  });

  it('onnx gate rejects an ONNX model that computes something else, with its first diverging node, before anything is stored', async () => {
    const divergence = {
      case: 'validation',
      node: 'node_atan2',
      op: 'Where (aten.atan2.default)',
      module: '',
      location: 'model.py:22',
      max_abs_error: 3.14,
      eager: [3.14],
      artifact: [0],
      compared: 4,
    };
    const { result, names } = await run(
      { exportOnnx: async () => ran(out.onnx({ ...failed(GateCode.onnxDivergence), divergence })) },
      { formats: ['onnx'] },
    );
    expect(ending(result)).toEqual(endsWith('rejected', 'onnx', 'onnx_divergence'));
    expect(lastGate(result).divergence).toEqual(divergence);
    expect(names()).toEqual([KEY, 'train', 'exportOnnx']);
  });

  it('a foreign artifact that verifies is promoted without training or tracing', async () => {
    const foreign = { artifactDigest: digest('c'), referencesDigest: digest('d'), artifactPath: '/x/model.pt' };
    const spec = { artifact: './model.pt', references: './refs.safetensors' };
    const { result, names, input } = await run({}, spec, { foreign, modelFileDigest: undefined, modelFilePath: undefined });
    expect(ending(result)).toEqual(endsWith('promoted', 'promotion', null));
    expect(result.digest).toBe(digest('c'));
    expect(names()).toEqual([KEY, 'verifyArtifact', ...AFTER_BUILD]);
    expect(input('storeArtifact')).toMatchObject({
      files: { artifact: digest('c'), references: digest('8'), sourceReferences: digest('d') },
    });
    expect(input('checkParity')).toMatchObject({ artifactDigest: digest('c'), referencesDigest: digest('8') });
  });

  it('a foreign artifact that fails verification is rejected at the trace gate and never stored', async () => {
    const foreign = { artifactDigest: digest('c'), referencesDigest: digest('d'), artifactPath: '/x/model.pt' };
    const spec = { artifact: './model.pt', references: './refs.safetensors' };
    const { result, names } = await run({ verifyArtifact: async () => ran(out.verifyArtifact(failed(GateCode.referenceMismatch))) }, spec, {
      foreign,
      modelFileDigest: undefined,
      modelFilePath: undefined,
    });
    expect(ending(result)).toEqual(endsWith('rejected', 'trace', 'reference_mismatch'));
    expect(names()).toEqual([KEY, 'verifyArtifact']);
  });

  it('a stage that throws a non-retryable model_error fails the run with that code, once, and stops', async () => {
    const { result, names } = await run({
      trace: async () => {
        throw ApplicationFailure.create({ type: 'model_error', message: "model.py: name 'foo' is not defined", nonRetryable: true });
      },
    });
    expect(ending(result)).toEqual(endsWith('failed', 'trace', 'model_error'));
    expect(lastGate(result).message).toBe("trace failed: model.py: name 'foo' is not defined");
    expect(names()).toEqual([KEY, 'train', 'trace']);
  });

  it('a stage that throws a failure of an unknown type fails the run with code internal', async () => {
    const { result, names } = await run({
      storeArtifact: async () => {
        throw ApplicationFailure.create({ type: 'disk_on_fire', message: 'the store is on fire', nonRetryable: true });
      },
    });
    expect(ending(result)).toEqual(endsWith('failed', 'promotion', 'internal'));
    expect(lastGate(result).message).toBe('store failed: the store is on fire');
    expect(names()).toEqual([KEY, ...BUILD, 'storeArtifact']);
  });

  it('a run without a model file or a foreign artifact fails as bad input', async () => {
    const started = await start({}, {}, { modelFileDigest: undefined });
    const err: unknown = await started.handle.result().catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toMatchObject({
      type: 'bad_input',
      message: 'a run needs a model file or a foreign artifact',
    });
    expect(started.names()).toEqual([KEY]);
  });

  it('a signing key that cannot sign fails the run at its first stage, with its code, before anything trains', async () => {
    const { result, names } = await run({
      checkSigningKey: async () => {
        throw ApplicationFailure.create({
          type: 'signing_key_invalid',
          message: '/keys/k.pem: it holds a ed25519 key',
          nonRetryable: true,
        });
      },
    });
    expect(ending(result)).toEqual(endsWith('failed', 'promotion', GateCode.signingKeyInvalid));
    expect(lastGate(result).message).toContain('signing_key failed: /keys/k.pem: it holds a ed25519 key');
    expect(names()).toEqual([KEY]);
  });

  it('the signing stage passes what the provenance states: the version, every gate so far, the model file and the start', async () => {
    const { input } = await run();
    expect(input('signVersion')).toMatchObject({
      model: 'fake-mlp',
      artifactDigest: digest('4'),
      modelFile: { digest: digest('b'), path: 'model.py' },
      startedOn: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect((input('signVersion')!.gates as { gate: string }[]).map((g) => g.gate)).toEqual([
      'training',
      'trace',
      'optimize',
      'fusion',
      'parity',
    ]);
    expect(input('promoteModel')).toMatchObject({ signed: { signature: digest('5'), provenance: digest('6') } });
  });

  it('a stage served from the step cache is listed in result.cached and has no torch time', async () => {
    const { result, input } = await run({ train: async () => ran(out.train(), { cached: true, torchMs: null }) });
    expect(result.status).toBe('promoted');
    expect(result.cached).toEqual(['train']);
    expect(result.torchTimings).not.toHaveProperty('train');
    expect(input('promoteModel')).toMatchObject({ cached: ['train'] });
  });
});

describe('pipeline workflow promotion branches', () => {
  const production = { version: 3, digest: digest('e') };
  const compare = { promote: { compare: {} } };

  it('promote.compare keeps a candidate that is not better than production, without moving the alias', async () => {
    const { result, names, input } = await run(
      {
        currentAlias: async () => production,
        evaluate: async () => ran(out.evaluate({ candidate: 0.3, production: 0.2 })),
      },
      compare,
    );
    expect(ending(result)).toEqual(endsWith('rejected', 'promotion', 'not_better_than_production'));
    expect(lastGate(result).message).toBe(
      "candidate validation_loss 0.300000 is not better than production (version 3) 0.200000 by more than min_improvement 0; kept as version 4, 'production' not moved",
    );
    expect(names()).toEqual([KEY, ...BUILD, 'storeArtifact', 'checkParity', 'signVersion', 'currentAlias', 'evaluate', 'keepVersion']);
    expect(input('evaluate')).toMatchObject({
      artifacts: [
        { name: 'candidate', digest: digest('4') },
        { name: 'production', digest: digest('e') },
      ],
    });
    expect(input('keepVersion')).toMatchObject({ reason: 'not_better_than_production', artifactDigest: digest('4') });
  });

  it('promote.compare promotes a candidate better than production', async () => {
    const { result, names } = await run(
      {
        currentAlias: async () => production,
        evaluate: async () => ran(out.evaluate({ candidate: 0.1, production: 0.2 })),
      },
      compare,
    );
    expect(ending(result)).toEqual(endsWith('promoted', 'promotion', null));
    expect(names()).toEqual([KEY, ...BUILD, 'storeArtifact', 'checkParity', 'signVersion', 'currentAlias', 'evaluate', 'promoteModel']);
  });

  it('approval: an approved run is promoted with who approved it', async () => {
    const { handle, names, input } = await start({}, { promote: { approval: 'required' } });
    await progressUntil(handle, (p) => p.status === 'awaiting_approval');
    await expect(handle.executeUpdate(approveUpdate, { args: [{ approve: true, by: 'ana' }] })).resolves.toEqual({
      accepted: true,
      by: 'ana',
      approve: true,
    });
    const result = await handle.result();
    expect(ending(result)).toEqual(endsWith('promoted', 'promotion', null));
    expect(result.timings.approval).toBeGreaterThanOrEqual(0);
    expect(input('promoteModel')).toMatchObject({ approval: { by: 'ana', reason: null } });
    expect(names()).toEqual([KEY, ...BUILD, ...AFTER_BUILD]);
  });

  it('approval: a rejected run is recorded in the audit trail and nothing is promoted', async () => {
    const { handle, names, input } = await start({}, { promote: { approval: 'required' } });
    await progressUntil(handle, (p) => p.status === 'awaiting_approval');
    await handle.executeUpdate(approveUpdate, { args: [{ approve: false, by: 'bo', reason: 'too slow' }] });
    const result = await handle.result();
    expect(ending(result)).toEqual(endsWith('rejected', 'promotion', 'approval_rejected'));
    expect(lastGate(result).message).toBe('rejected by bo: too slow; nothing promoted');
    expect(input('recordAudit')).toEqual({
      action: 'approval_rejected',
      model: 'fake-mlp',
      runId: handle.workflowId,
      actor: 'bo',
      reason: 'too slow',
      digest: digest('4'),
    });
    expect(names()).toEqual([KEY, ...BUILD, 'storeArtifact', 'checkParity', 'signVersion', 'recordAudit']);
  });

  it('approval: a run nobody answers within approval_timeout is rejected and audited', async () => {
    const { result, names, input } = await run({}, { promote: { approval: 'required', approval_timeout: '300ms' } });
    expect(ending(result)).toEqual(endsWith('rejected', 'promotion', 'approval_timeout'));
    expect(lastGate(result).message).toBe('no approval within promote.approval_timeout 300ms; nothing promoted');
    expect(input('recordAudit')).toMatchObject({ action: 'approval_timeout', actor: 'ttd', reason: 'no answer within 300ms' });
    expect(names()).toEqual([KEY, ...BUILD, 'storeArtifact', 'checkParity', 'signVersion', 'recordAudit']);
  });

  it('the approve update is refused while the run is not waiting for approval, and accepted once it is', async () => {
    const store = blocker<'storeArtifact'>(promoting().storeArtifact);
    const { handle } = await start({ storeArtifact: store.fake }, { promote: { approval: 'required' } });
    try {
      await store.reached;
      const err: unknown = await handle.executeUpdate(approveUpdate, { args: [{ approve: true, by: 'ana' }] }).catch((e) => e);
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      expect((err as WorkflowUpdateFailedError).cause?.message).toBe(
        `run '${handle.workflowId}' is not waiting for approval (stage: store)`,
      );
    } finally {
      store.release();
    }
    await progressUntil(handle, (p) => p.status === 'awaiting_approval');
    await handle.executeUpdate(approveUpdate, { args: [{ approve: true, by: 'ana' }] });
    expect((await handle.result()).status).toBe('promoted');
  });
});

describe('pipeline workflow while it runs', () => {
  it('the progress query shows the current stage, the finished ones and the losses', async () => {
    const trace = blocker<'trace'>(promoting().trace);
    const { handle } = await start({ trace: trace.fake }, { train: { epochs: 2 } });
    try {
      await trace.reached;
      const progress = await handle.query(progressQuery);
      expect(progress).toEqual({
        status: 'running',
        stage: 'trace',
        completed: [
          { stage: 'signing_key', ms: expect.any(Number) },
          { stage: 'train', ms: expect.any(Number) },
        ],
        epochs: 2,
        losses: [0.9, 0.5],
      });
    } finally {
      trace.release();
    }
    expect((await handle.result()).status).toBe('promoted');
  });

  it('a cancelled run ends cancelled, its blocked activity is cancelled, and nothing after it is called', async () => {
    const verify = blocker<'verify'>(promoting().verify);
    const { handle, names } = await start({ verify: verify.fake });
    try {
      await verify.reached;
      await handle.cancel();
      const err: unknown = await handle.result().catch((e) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect((await handle.describe()).status.name).toBe('CANCELLED');
      await expect(verify.ended).resolves.toBe('cancelled');
    } finally {
      verify.release();
    }
    expect(names()).toEqual([KEY, 'train', 'trace', 'verify']);
  });
});
