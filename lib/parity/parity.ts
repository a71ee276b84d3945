// Compares a runtime's outputs with the eager references: shapes and dtypes exactly, values within atol/rtol.
import { GateCode } from '../contract/gate-codes';
import { HISTOGRAM_EDGES, histogramBin } from './report';
import type { SafetensorsFile } from './safetensors';

/** The comparison of one output tensor. */
export interface OutputComparison {
  name: string;
  passed: boolean;
  code: typeof GateCode.toleranceExceeded | typeof GateCode.shapeMismatch | typeof GateCode.nonFiniteOutput | null;
  max_abs_error: number;
  max_rel_error: number;
  message: string;
  /** Elements compared (0 when shapes differ or the output is missing). */
  elements: number;
}

/** The comparison of a whole outputs file against the references. */
export interface ParityComparison {
  passed: boolean;
  code: OutputComparison['code'];
  message: string;
  max_abs_error: number;
  max_rel_error: number;
  outputs: OutputComparison[];
  /** Counts of |a − b| over every compared element, in the bins of HISTOGRAM_EDGES. */
  histogram: number[];
}

const TINY = 1e-12;
/** Elements decoded and compared at a time. */
const CHUNK = 1 << 20;

/** Compares every `<case>/output/<j>` of the references with the same name in `actual`. */
export function compareOutputs(
  references: SafetensorsFile,
  actual: SafetensorsFile,
  atol: number,
  rtol: number,
  runtime: string,
): ParityComparison {
  const outputs: OutputComparison[] = [];
  const histogram: number[] = new Array(HISTOGRAM_EDGES.length + 2).fill(0);
  const gotChunk = new Float64Array(CHUNK);
  const expectedChunk = new Float64Array(CHUNK);
  for (const [name, expected] of references.tensors) {
    if (!name.includes('/output/')) continue;
    const got = actual.tensors.get(name);
    if (!got) {
      outputs.push({
        name,
        passed: false,
        code: GateCode.shapeMismatch,
        max_abs_error: NaN,
        max_rel_error: NaN,
        message: `${runtime}: output '${name}' is missing`,
        elements: 0,
      });
      continue;
    }
    if (got.dtype !== expected.dtype || JSON.stringify(got.shape) !== JSON.stringify(expected.shape)) {
      outputs.push({
        name,
        passed: false,
        code: GateCode.shapeMismatch,
        max_abs_error: NaN,
        max_rel_error: NaN,
        message: `${runtime}: output '${name}' is ${got.dtype}${JSON.stringify(got.shape)}, expected ${expected.dtype}${JSON.stringify(expected.shape)}`,
        elements: 0,
      });
      continue;
    }
    let maxAbs = 0;
    let maxRel = 0;
    let worstExcess = -Infinity;
    let nonFinite = false;
    let finiteForNonFinite = false;
    // A chunk at a time: a runtime's logits can be hundreds of MB, never decoded whole.
    for (let start = 0; start < expected.count; start += CHUNK) {
      const n = Math.min(CHUNK, expected.count - start);
      got.read(start, n, gotChunk);
      expected.read(start, n, expectedChunk);
      for (let i = 0; i < n; i++) {
        const a = gotChunk[i];
        const b = expectedChunk[i];
        if (!Number.isFinite(a) || !Number.isFinite(b)) {
          // Like torch.isclose (and compare.py): a non-finite value only matches an identical one.
          if (Object.is(a, b)) histogram[0]++;
          else {
            if (Number.isFinite(a)) finiteForNonFinite = true;
            else nonFinite = true;
            histogram[histogram.length - 1]++;
          }
          continue;
        }
        const abs = Math.abs(a - b);
        histogram[histogramBin(abs)]++;
        if (abs > maxAbs) maxAbs = abs;
        const rel = abs / Math.max(Math.abs(b), TINY);
        if (rel > maxRel) maxRel = rel;
        const excess = abs - (atol + rtol * Math.abs(b));
        if (excess > worstExcess) worstExcess = excess;
      }
    }
    const [code, message]: [OutputComparison['code'], string] = nonFinite
      ? [GateCode.nonFiniteOutput, `${runtime}: output '${name}' has NaN or Inf where the reference is finite`]
      : finiteForNonFinite
        ? [
            GateCode.toleranceExceeded,
            `${runtime}: output '${name}' is finite where the reference is NaN or Inf; expected the same non-finite value`,
          ]
        : worstExcess > 0
          ? [
              GateCode.toleranceExceeded,
              `${runtime}: output '${name}' differs by up to ${maxAbs.toExponential(3)} (relative ${maxRel.toExponential(3)}), allowed atol ${atol} + rtol ${rtol}·|reference|`,
            ]
          : [null, 'ok'];
    outputs.push({ name, passed: code === null, code, max_abs_error: maxAbs, max_rel_error: maxRel, message, elements: expected.count });
  }
  const failed = outputs.find((o) => !o.passed);
  const finite = outputs.filter((o) => Number.isFinite(o.max_abs_error));
  return {
    passed: outputs.length > 0 && !failed,
    code: failed?.code ?? (outputs.length === 0 ? GateCode.shapeMismatch : null),
    message:
      failed?.message ??
      (outputs.length === 0 ? `${runtime}: the references hold no outputs to compare` : `${runtime}: ${outputs.length} outputs agree`),
    max_abs_error: Math.max(0, ...finite.map((o) => o.max_abs_error)),
    max_rel_error: Math.max(0, ...finite.map((o) => o.max_rel_error)),
    outputs,
    histogram,
  };
}
