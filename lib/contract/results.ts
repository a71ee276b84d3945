// Run results and gate verdicts: the shape `ttd run --json` prints (a public contract), as schemas that the workflow's
// types, the CLI's readers of workflow history and the stored records share.
import { z } from 'zod';
import { GATE_CODES, Gate } from './gate-codes';
import { Divergence } from './ops';

export { Gate, GateCode } from './gate-codes';

const error = z.number().nullable();

/** One gate's verdict. `code` is null when it passed; `warnings` lists findings that did not reject. */
export const GateResult = z.object({
  gate: z.enum(Object.values(Gate) as [Gate, ...Gate[]]),
  passed: z.boolean(),
  code: z.enum(GATE_CODES).nullable(),
  message: z.string(),
  warnings: z.array(z.string()).optional(),
  /** The first operator out of tolerance, when the gate failed on numbers and the stage found it. */
  divergence: Divergence.optional(),
});
export type GateResult = z.infer<typeof GateResult>;

/** One output tensor of one runtime run. Errors are null when shapes differ or the output is missing. */
export const ParityOutputReport = z.object({
  name: z.string(),
  passed: z.boolean(),
  code: z.enum(GATE_CODES).nullable(),
  max_abs_error: error,
  max_rel_error: error,
  elements: z.number(),
});
export type ParityOutputReport = z.infer<typeof ParityOutputReport>;

/** One runtime × executor-mode line of the parity report. */
export const ParityRuntimeReport = z.object({
  /** python and libtorch run TorchScript and AOTInductor; onnxruntime (a Python without torch) and onnxruntime-node run ONNX. */
  runtime: z.enum(['python', 'libtorch', 'onnxruntime', 'onnxruntime-node']),
  /** The artifact's format (torchscript or aoti) and the torch environment whose runtime ran it; absent before formats. */
  format: z.string().optional(),
  environment: z.string().optional(),
  passed: z.boolean(),
  code: z.enum(GATE_CODES).nullable(),
  max_abs_error: error,
  max_rel_error: error,
  /** fuser: the run switched a fuser on; mode (absent before builds were told apart, when fuser meant the interpreter):
   * serving (the build's own flags), fused (the CPU fuser, with LLVM) or interpreter (NNC's, forced). */
  flags: z.object({
    fuser: z.boolean(),
    mode: z.enum(['serving', 'fused', 'interpreter']).optional(),
    /** ONNX Runtime's graph optimisation level (all off, or all on): its counterpart of fuser off and on. */
    graph_optimization: z.enum(['disabled', 'all']).optional(),
  }),
  /** ONNX Runtime's version and execution provider (ONNX runtimes only). */
  onnxruntime_version: z.string().optional(),
  execution_provider: z.string().optional(),
  /** The runtime build's own fuser configuration, as it reported it (absent from older runners and failed runs). */
  fusion: z.record(z.string(), z.boolean().nullable()).optional(),
  torch_version: z.string().nullable(),
  threads: z.number().nullable(),
  ms: z.number(),
  message: z.string(),
  /** Each compared output (`<case>/output/<j>`): its verdict, errors and element count; with many, only the first
   * REPORTED_IN_HISTORY (failures first), the whole list being the JSON blob `outputs_digest` (lib/limits/history-limits.ts). */
  outputs: z.array(ParityOutputReport).optional(),
  /** How many outputs were compared, when `outputs` lists only some of them. */
  outputs_total: z.number().optional(),
  /** The store blob (JSON) of every output's report, when `outputs` lists only some of them. */
  outputs_digest: z.string().optional(),
  /** Counts of |a − b| over every compared element, in the bins of HISTOGRAM_EDGES (lib/parity/report.ts). */
  histogram: z.array(z.number()).optional(),
});
export type ParityRuntimeReport = z.infer<typeof ParityRuntimeReport>;

/** A runtime run's fuser in one word for tables: `off`/`on` for a serving run (on: its build fuses by default), `on` for
 * a fused run, `interpreter` for NNC's interpreter (forced; older records' `fuser: true` meant this). */
export function fuserShown(r: Pick<ParityRuntimeReport, 'flags' | 'fusion'>): string {
  // ONNX Runtime has no fuser: its graph optimisation level stands in the column.
  if (r.flags?.graph_optimization) return `graph opt ${r.flags.graph_optimization === 'all' ? 'all' : 'off'}`;
  const mode = r.flags?.mode ?? (r.flags?.fuser ? 'interpreter' : 'serving');
  if (mode === 'interpreter') return 'interpreter';
  if (mode === 'fused') return 'on';
  return r.fusion?.llvm_enabled && r.fusion?.can_fuse_on_cpu && r.fusion?.texpr_fuser_enabled ? 'on' : 'off';
}

/** The version a parity line ran under: its torch, or ONNX Runtime's for an ONNX runtime. */
export function runtimeVersion(r: Pick<ParityRuntimeReport, 'torch_version' | 'onnxruntime_version'>): string | null {
  return r.torch_version ?? (r.onnxruntime_version ? `onnxruntime ${r.onnxruntime_version}` : null);
}

/** The parity stage's result: the gate's verdict and one line per runtime and executor mode. */
export const ParityResult = z.object({
  passed: z.boolean(),
  code: z.enum(GATE_CODES).nullable(),
  message: z.string(),
  runtimes: z.array(ParityRuntimeReport),
});
export type ParityResult = z.infer<typeof ParityResult>;

/** The final status of a run. */
export const RunStatus = { promoted: 'promoted', rejected: 'rejected', failed: 'failed' } as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];

/** What `ttd run --json` prints and the workflow returns. */
export const RunResult = z.object({
  status: z.enum(['promoted', 'rejected', 'failed']),
  runId: z.string(),
  model: z.string(),
  version: z.number().nullable(),
  digest: z.string().nullable(),
  alias: z.string().nullable(),
  gates: z.array(GateResult),
  timings: z.record(z.string(), z.number()),
  /** What started the run: `manual`, `ci` or `schedule`, and the commit it was started for. */
  trigger: z.enum(['manual', 'ci', 'schedule']),
  commit: z.string().nullable(),
  /** Training attempts (a crashed worker's retry is one more) and the epoch a retry resumed from (0: fresh). */
  training: z.object({ attempts: z.number(), resumedFromEpoch: z.number() }).optional(),
  parity: z.array(ParityRuntimeReport).optional(),
  /** Stages whose outputs were reused from an earlier run with the same inputs (step caching); absent when none. */
  cached: z.array(z.string()).optional(),
  /** Per torch stage, the time spent in torch work itself (the torch side's op time, the parity runners' wall
   * time); `timings[stage] − torchTimings[stage]` is orchestration overhead. Absent for cached stages. */
  torchTimings: z.record(z.string(), z.number()).optional(),
});
export type RunResult = z.infer<typeof RunResult>;

/** Exit codes of `ttd run`: 0 promoted, 1 rejected, 2 failed or bad input. */
export function exitCodeFor(status: RunStatus): number {
  return status === 'promoted' ? 0 : status === 'rejected' ? 1 : 2;
}
