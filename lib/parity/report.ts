// What a run report shows, gathered from a run's workflow history or a version's stored records.
// The HTML is rendered from this by render/report-html.ts; nothing here reads a file or a server.
import type { FusionGroup } from '../contract/ops';
import type { GateResult, ParityRuntimeReport } from '../contract/results';
import type { ModelCard } from '../registry/model-card';

/** Edges of the parity error histogram: bin 0 counts exact zeros, bin i (1..) counts |a − b| in
 * [EDGES[i-1], EDGES[i]), and the last bin everything at or above 1. Fixed, so runs compare. */
export const HISTOGRAM_EDGES = [1e-12, 1e-10, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1] as const;

/** Labels of the histogram's bins, in order: "0", "<1e-12", "1e-12–1e-10", …, "≥1". */
export function histogramLabels(): string[] {
  const e = HISTOGRAM_EDGES;
  const fmt = (x: number) => x.toExponential(0).replace('e+0', '').replace('e+', 'e');
  return ['0', `<${fmt(e[0])}`, ...e.slice(1).map((hi, i) => `${fmt(e[i])}–${fmt(hi)}`), `≥${fmt(e[e.length - 1])}`];
}

/** Which bin of HISTOGRAM_EDGES an absolute error falls in (non-finite: the last bin). Called once per compared
 * element (hundreds of millions for a language model's logits): the bin of the error's binary exponent, from a table,
 * and one comparison for the octave that holds an edge (no two edges are within a factor of 2). */
export function histogramBin(absError: number): number {
  if (absError === 0) return 0;
  exponentView[0] = absError;
  const bin = BIN_OF_EXPONENT[(exponentBits[HIGH_WORD] >>> 20) & 0x7ff];
  return bin <= HISTOGRAM_EDGES.length && absError >= HISTOGRAM_EDGES[bin - 1] ? bin + 1 : bin;
}

/** The bin of an error by edge search: what histogramBin computes (tests check the two agree). */
export function histogramBinBySearch(absError: number): number {
  if (absError === 0) return 0;
  if (!Number.isFinite(absError)) return HISTOGRAM_EDGES.length + 1;
  let i = 0;
  while (i < HISTOGRAM_EDGES.length && absError >= HISTOGRAM_EDGES[i]) i++;
  return i + 1;
}

const exponentView = new Float64Array(1);
const exponentBits = new Uint32Array(exponentView.buffer);
// The word of a float64 that holds its sign and exponent: the second on a little-endian host.
const HIGH_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
// The bin of 2^(e - 1023) for each biased exponent e: subnormals (e = 0) fall in bin 1, infinities and NaN (2047) last.
const BIN_OF_EXPONENT = Uint8Array.from({ length: 2048 }, (_, e) =>
  e === 0 ? 1 : e === 2047 ? HISTOGRAM_EDGES.length + 1 : histogramBinBySearch(2 ** (e - 1023)),
);

/** One stage's duration; `cached` when its outputs were reused from an earlier identical run. */
export interface StageTiming {
  stage: string;
  ms: number;
  cached?: boolean;
}

/** Everything one report shows. Absent parts (a run rejected before parity) are null. */
export interface ReportData {
  runId: string;
  model: string;
  /** `promoted`, `rejected`, `failed`, or a Temporal status for a run without a result (`running`, `cancelled`…). */
  status: string;
  version: number | null;
  digest: string | null;
  alias: string | null;
  trigger: string | null;
  commit: string | null;
  actor: string | null;
  /** ISO times; null when unknown. */
  startedAt: string | null;
  closedAt: string | null;
  /** Who approved the promotion, when the spec required approval; null otherwise or when unknown. */
  approval: { by: string; reason: string | null } | null;
  /** Training attempts (a crashed worker's retry is one more) and the epoch a retry resumed from; null when unknown. */
  attempts: { attempts: number; resumedFromEpoch: number } | null;
  gates: GateResult[];
  timings: StageTiming[];
  training: { losses: number[]; epochs: number | null; rows: number | null } | null;
  optimize: {
    method: string;
    irBefore: string | null;
    irAfter: string | null;
    nodeTotalBefore: number | null;
    nodeTotalAfter: number | null;
    maxAbsError: number | null;
  } | null;
  fusion: {
    require: string;
    groups: FusionGroup[];
    unfusedPointwise: string[];
    flags: Record<string, unknown>;
    torchVersion: string | null;
    maxAbsError: number | null;
    /** The build's own fuser configuration, whether it fuses, and whether fused outputs were compared (absent in
     * records from before builds were told apart, when every build was forced through the interpreter). */
    build?: Record<string, boolean | null>;
    fuses?: boolean;
    compared?: boolean;
  } | null;
  parity: { atol: number | null; rtol: number | null; runtimes: ParityRuntimeReport[] } | null;
  /** Every build stage's output as the stage returned it, by op name (absent in reports of older records). */
  stages?: Record<string, Record<string, unknown>>;
  /** The model card of the version the run registered (`ttd card`); absent when it registered none, or its card could
   * not be read from the store. */
  card?: ModelCard;
  /** The run in the Temporal UI, when the server's UI address is known. */
  temporalUrl: string | null;
  /** Where the facts came from: the run's workflow history, or the store's version record and manifest. */
  source: 'temporal' | 'store';
  generatedAt: string;
}
