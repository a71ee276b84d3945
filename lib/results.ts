// Run results, gates and their codes: the shape `ttd run --json` prints (a public contract).

/** The gates of a run, in pipeline order. */
export const Gate = {
  training: 'training',
  trace: 'trace',
  optimize: 'optimize',
  fusion: 'fusion',
  parity: 'parity',
  promotion: 'promotion',
} as const;
export type Gate = (typeof Gate)[keyof typeof Gate];

/** Codes a gate can reject or fail with. */
export const GateCode = {
  nonFiniteLoss: 'non_finite_loss',
  modelError: 'model_error',
  controlFlowDivergence: 'control_flow_divergence',
  shapeSpecialization: 'shape_specialization',
  trainModeOps: 'train_mode_ops',
  optimizedDivergence: 'optimized_divergence',
  pythonValueCapture: 'python_value_capture',
  nondeterministic: 'nondeterministic',
  deviceConstant: 'device_constant',
  fusionRequiredMissing: 'fusion_required_missing',
  fusedDivergence: 'fused_divergence',
  notBetterThanProduction: 'not_better_than_production',
  approvalRejected: 'approval_rejected',
  approvalTimeout: 'approval_timeout',
  toleranceExceeded: 'tolerance_exceeded',
  runtimeLoadFailed: 'runtime_load_failed',
  shapeMismatch: 'shape_mismatch',
  nonFiniteOutput: 'non_finite_output',
  environmentMissing: 'environment_missing',
  internal: 'internal',
} as const;
export type GateCode = (typeof GateCode)[keyof typeof GateCode];

/** One gate's verdict. `code` is null when it passed; `warnings` lists findings that did not reject. */
export interface GateResult {
  gate: Gate;
  passed: boolean;
  code: string | null;
  message: string;
  warnings?: string[];
}

/** The final status of a run. */
export const RunStatus = { promoted: 'promoted', rejected: 'rejected', failed: 'failed' } as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];

/** One runtime × executor-mode line of the parity report. */
export interface ParityRuntimeReport {
  runtime: 'python' | 'libtorch';
  passed: boolean;
  code: string | null;
  max_abs_error: number | null;
  max_rel_error: number | null;
  flags: { fuser: boolean };
  torch_version: string | null;
  threads: number | null;
  ms: number;
  message: string;
  /** Each compared output (`<case>/output/<j>`): its verdict, errors and element count. */
  outputs?: ParityOutputReport[];
  /** Counts of |a − b| over every compared element, in the bins of HISTOGRAM_EDGES (lib/report.ts). */
  histogram?: number[];
}

/** One output tensor of one runtime run. Errors are null when shapes differ or the output is missing. */
export interface ParityOutputReport {
  name: string;
  passed: boolean;
  code: string | null;
  max_abs_error: number | null;
  max_rel_error: number | null;
  elements: number;
}

/** What `ttd run --json` prints and the workflow returns. */
export interface RunResult {
  status: RunStatus;
  runId: string;
  model: string;
  version: number | null;
  digest: string | null;
  alias: string | null;
  gates: GateResult[];
  timings: Record<string, number>;
  /** What started the run: `manual`, `ci` or `schedule`, and the commit it was started for. */
  trigger: 'manual' | 'ci' | 'schedule';
  commit: string | null;
  /** Training attempts (a crashed worker's retry is one more) and the epoch a retry resumed from (0: fresh). */
  training?: { attempts: number; resumedFromEpoch: number };
  parity?: ParityRuntimeReport[];
  /** Stages whose outputs were reused from an earlier run with the same inputs (step caching); absent when none. */
  cached?: string[];
  /** Per torch stage, the time spent in torch work itself (the torch side's op time, the parity runners' wall
   * time); `timings[stage] − torchTimings[stage]` is orchestration overhead. Absent for cached stages. */
  torchTimings?: Record<string, number>;
}

/** Exit codes of `ttd run`: 0 promoted, 1 rejected, 2 failed or bad input. */
export function exitCodeFor(status: RunStatus): number {
  return status === 'promoted' ? 0 : status === 'rejected' ? 1 : 2;
}
