// Fake activities for tests of the pipeline workflow on a real Temporal server without torch or a store: schema-shaped
// outputs of every stage, passing, and fakes of every activity that make a run promote (workflow-branches.test.ts,
// priority.test.ts).
import type { ControlActivities, StageRun, TorchActivities } from '../activities';
import type { GateCode } from '../lib/contract/gate-codes';
import type { ParityResult } from '../lib/contract/results';

export type Activities = TorchActivities & ControlActivities;
export type Name = keyof Activities;
export type Output<N extends Name> = Awaited<ReturnType<Activities[N]>>;
export type Torch<N extends keyof TorchActivities> = Output<N> extends StageRun<infer O> ? O : never;

export const digest = (c: string) => `sha256:${c.repeat(64).slice(0, 64)}`;
export const ran = <O>(output: O, how: Partial<StageRun<O>> = {}): StageRun<O> => ({ output, cached: false, torchMs: 7, ...how });
export const passed = { passed: true, code: null, message: 'ok' } as const;
export const failed = (code: GateCode, message = `found ${code}`) => ({ passed: false, code, message });

// Schema-shaped outputs of each stage, passing; a test spreads what differs over them.
export const out = {
  train: (o: Partial<Torch<'train'>> = {}): Torch<'train'> =>
    ({
      status: 'ok',
      files: { weights: digest('1') },
      losses: [0.9, 0.5],
      epochs_completed: 2,
      rows: 64,
      resumed_from_epoch: 0,
      attempt: 1,
      ...o,
    }) as Torch<'train'>,
  trainRejected: (code: GateCode, message: string) =>
    ({ status: 'rejected', code, message, epoch: 1, step: 3, files: {}, attempt: 1 }) as unknown as Torch<'train'>,
  trace: (): Torch<'trace'> => ({
    files: { traced: digest('2') },
    example_shapes: [[4, 8]],
    nodes: { 'aten::linear': 2 },
    node_total: 5,
    warnings: [],
    captures: [],
    mode: 'trace',
  }),
  verify: (o: Partial<Torch<'verify'>> = {}): Torch<'verify'> => ({
    ...passed,
    cases: [],
    train_mode_ops: [],
    warnings: [],
    devices: ['cpu'],
    nondeterministic_nodes: [],
    example_shape_checks: { chunks: 2, failed: 0 },
    files: { references: digest('3') },
    ...o,
  }),
  optimize: (o: Partial<Torch<'optimize'>> = {}): Torch<'optimize'> =>
    ({
      ...passed,
      files: { optimized: digest('4'), ir_before: digest('5'), ir_after: digest('6') },
      method: 'freeze',
      nodes_before: {},
      nodes_after: {},
      node_total_before: 5,
      node_total_after: 4,
      nodes_for_inference: null,
      max_abs_error: 0,
      max_abs_error_for_inference: null,
      ...o,
    }) as Torch<'optimize'>,
  fusion: (o: Partial<Torch<'checkFusion'>> = {}): Torch<'checkFusion'> => ({
    ...passed,
    files: { graph: digest('7') },
    require: 'none',
    groups: [],
    unfused_pointwise: [],
    max_abs_error: 0,
    flags: {},
    torch_version: '2.5.0',
    ...o,
  }),
  verifyArtifact: (o: Partial<Torch<'verifyArtifact'>> = {}): Torch<'verifyArtifact'> => ({
    ...passed,
    cases: [],
    train_mode_ops: [],
    warnings: [],
    devices: ['cpu'],
    nondeterministic_nodes: [],
    nodes: {},
    node_total: 3,
    case_count: 2,
    files: { references: digest('8') },
    ...o,
  }),
  export: (o: Partial<Torch<'exportProgram'>> = {}): Torch<'exportProgram'> => ({
    ...passed,
    files: { program: digest('f'), references: digest('e') },
    cases: [],
    example_shapes: [[4, 8]],
    dynamic_dims: [],
    nodes: { 'aten.linear.default': 2 },
    node_total: 5,
    warnings: [],
    example_shape_checks: { chunks: 2, failed: 0 },
    torch_version: '2.13.0',
    eager_ms: 3,
    ...o,
  }),
  compile: (o: Partial<Torch<'compilePackage'>> = {}): Torch<'compilePackage'> => ({
    ...passed,
    files: { package: digest('c') },
    kernels: [],
    kernel_count: 3,
    compile_ms: 10,
    cache_hit: false,
    cache_counters: {},
    cases: [],
    max_abs_error: 0,
    package_bytes: 1024,
    warnings: [],
    torch_version: '2.13.0',
    ...o,
  }),
  onnx: (o: Partial<Torch<'exportOnnx'>> = {}): Torch<'exportOnnx'> => ({
    ...passed,
    files: { onnx: digest('0'), references: digest('e') },
    cases: [],
    example_shapes: [[4, 8]],
    opset: 20,
    nodes: { Gemm: 2 },
    node_total: 3,
    warnings: [],
    torch_version: '2.13.0',
    onnx_version: '1.23.2',
    onnxruntime_version: '1.32.0',
    export_ms: 5,
    eager_ms: 3,
    ...o,
  }),
  evaluate: (losses: Record<string, number | null>): Torch<'evaluate'> => ({
    results: Object.entries(losses).map(([name, validation_loss]) => ({ name, validation_loss, message: null })),
    rows: 16,
    files: {},
  }),
  parity: (o: Partial<ParityResult> = {}): ParityResult => ({
    ...passed,
    runtimes: [
      {
        runtime: 'python',
        passed: o.passed ?? true,
        code: o.code ?? null,
        max_abs_error: 0,
        max_rel_error: 0,
        flags: { fuser: false },
        torch_version: '2.5.0',
        threads: 1,
        ms: 3,
        message: 'ok',
      },
    ],
    ...o,
  }),
};

// What the environment stage reports for a declared environment (transformers beside torch-2.13).
export const ENVIRONMENT = {
  base: 'torch-2.13',
  digest: digest('e'),
  torch_version: '2.13.0+cpu',
  resolved: ['tokenizers==0.23.3', 'transformers==5.25.0'],
  installed: ['tokenizers==0.23.3', 'transformers==5.25.0'],
  reused: false,
};
export const DECLARED = { base: 'torch-2.13', requirements: ['transformers==5.25.0'] };

// Fakes of every activity that make a run promote.
export const promoting = (): Activities => ({
  buildEnvironment: async () => ran(ENVIRONMENT),
  train: async () => ran(out.train()),
  trace: async () => ran(out.trace()),
  verify: async () => ran(out.verify()),
  optimize: async () => ran(out.optimize()),
  checkFusion: async () => ran(out.fusion()),
  verifyArtifact: async () => ran(out.verifyArtifact()),
  evaluate: async () => ran(out.evaluate({ candidate: 0.1, production: 0.2 })),
  checkParity: async () => ran(out.parity()),
  storeArtifact: async (i) => ({ manifestDigest: digest('9'), artifactDigest: i.files.artifact }),
  promoteModel: async () => ({ version: 4, previousVersion: 3, created: true, auditSeq: 12, recordDigest: digest('a') }),
  currentAlias: async () => null,
  keepVersion: async () => ({ version: 4 }),
  recordAudit: async () => ({ seq: 12 }),
  checkSigningKey: async () => ({ keyId: 'f'.repeat(64), curve: 'P-256' }),
  signVersion: async () => ({ signature: digest('5'), provenance: digest('6'), keyId: 'f'.repeat(64) }),
  exportProgram: async () => ran(out.export()),
  compilePackage: async () => ran(out.compile()),
  exportOnnx: async () => ran(out.onnx()),
});
