// Time limits that scale with the model: each derives from the measured eager time of the reference cases (the
// verify or export stage's `eager_ms`), plus an allowance for loading, times the spec's `time_limits.scale`.
// Plain arithmetic, no imports: the workflow bundle uses it too.

/** What a stage or runtime run is limited by: the eager time of its reference cases and the spec's scale. */
export interface LimitBasis {
  /** The reference cases run once eagerly, in ms; absent where nothing measured it (a foreign artifact, older runs). */
  eagerMs?: number;
  /** The spec's time_limits.scale (1 when absent). */
  scale?: number;
}

/** The constants behind every limit (docs/gates.md, "Time limits"). */
export const TIME_LIMITS = {
  /** A runtime process: start, import torch, load and (AOTInductor) unpack the artifact. */
  runtimeLoadMs: 120_000,
  /** Per byte of artifact: reading and mapping weights at a slow 20 MB/s. */
  runtimeMsPerMb: 50,
  /** A runtime's cases against eager: one thread instead of the stage's, warm-up calls where a fuser may act. */
  runtimeSlowdown: 50,
  /** The same through NNC's interpreter (fusion.fused_runs always on a build without LLVM): about a hundred times
   * slower per call, four calls per case. */
  interpreterSlowdown: 800,
  /** Without a measured eager time: the limit every runtime had before (5 minutes). */
  runtimeUnmeasuredMs: 300_000,
  /** A torch stage after the references (optimize, fusion): start, load, rewrite the graph. */
  stageAllowanceMs: 600_000,
  /** Its cases against eager: freezing runs them twice, fusion up to four calls through the interpreter. */
  stageSlowdown: 1_000,
} as const;

/** A limit and how it was made, in words for the message that reports it. */
export interface TimeLimit {
  ms: number;
  basis: string;
}

/** A duration in seconds for messages: one decimal below 10 s. */
export const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
const scaled = (ms: number, scale: number) => Math.ceil(ms * scale);
const scaleWords = (scale: number) => (scale === 1 ? '' : ` × time_limits.scale ${scale}`);

/** The limit of one parity runtime run on an artifact of `bytes`; `loadMs` is the worker's allowance for starting and
 * loading (TTD_RUNTIME_LOAD_ALLOWANCE_S), before the artifact's size adds to it. */
export function runtimeLimit(
  basis: LimitBasis,
  bytes: number,
  interpreter: boolean,
  loadMs: number = TIME_LIMITS.runtimeLoadMs,
): TimeLimit {
  const scale = basis.scale ?? 1;
  const load = loadMs + Math.ceil((bytes / 1e6) * TIME_LIMITS.runtimeMsPerMb);
  if (basis.eagerMs === undefined) {
    const ms = scaled(load + TIME_LIMITS.runtimeUnmeasuredMs, scale);
    return { ms, basis: `${seconds(load)} to load + ${seconds(TIME_LIMITS.runtimeUnmeasuredMs)} (no eager time measured)${scaleWords(scale)}` };
  }
  const slowdown = interpreter ? TIME_LIMITS.interpreterSlowdown : TIME_LIMITS.runtimeSlowdown;
  const ms = scaled(load + slowdown * basis.eagerMs, scale);
  return {
    ms,
    basis: `${seconds(load)} to load + ${slowdown} × the ${seconds(basis.eagerMs)} the reference cases took eagerly${scaleWords(scale)}`,
  };
}

/** The limit of a torch stage that runs the reference cases (optimize, fusion); undefined without a measured eager
 * time (the activity's own start-to-close timeout applies). */
export function stageLimit(basis: LimitBasis | undefined): TimeLimit | undefined {
  if (basis?.eagerMs === undefined) return undefined;
  const scale = basis.scale ?? 1;
  const ms = scaled(TIME_LIMITS.stageAllowanceMs + TIME_LIMITS.stageSlowdown * basis.eagerMs, scale);
  return {
    ms,
    basis: `${seconds(TIME_LIMITS.stageAllowanceMs)} + ${TIME_LIMITS.stageSlowdown} × the ${seconds(basis.eagerMs)} the reference cases took eagerly${scaleWords(scale)}`,
  };
}
