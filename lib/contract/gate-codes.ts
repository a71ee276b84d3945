// The gates of a run, and the codes a gate can reject or fail with (`gate` + `code` in a run's result).
// Plain constants (the codes are views of lib/contract/codes.ts, itself without imports): the workflow bundle uses them.
import { CODES, codesWith, codeView, type CodeWith } from './codes';

/** The gates of a run, in pipeline order. */
export const Gate = {
  /** Building a declared environment (spec `environment: { base, requirements }`), before training. */
  environment: 'environment',
  training: 'training',
  trace: 'trace',
  optimize: 'optimize',
  fusion: 'fusion',
  export: 'export',
  compile: 'compile',
  /** The ONNX export (torch.onnx from the torch.export program), checked in ONNX Runtime against eager. */
  onnx: 'onnx',
  parity: 'parity',
  promotion: 'promotion',
} as const;
export type Gate = (typeof Gate)[keyof typeof Gate];

/** Every code a gate can carry: rejections (a finding about the model) and failures (a stage that could not finish).
 * A view of the catalog (lib/contract/codes.ts): the codes whose uses include `gate`. */
export const GateCode = codeView(codesWith('gate'));
export type GateCode = CodeWith<'gate'>;

/** Every gate code, for schemas. */
export const GATE_CODES = Object.values(GateCode) as [GateCode, ...GateCode[]];

/** The failure types that the catalog says are not retryable. */
type NonRetryableCode = { [C in CodeWith<'failure'>]: (typeof CODES)[C]['retryable'] extends false ? C : never }[CodeWith<'failure'>];

/** Failure types that Temporal must not retry (the same input fails the same way again): the catalog's failure types
 * that are not retryable, a subset of the gate codes, since a failed stage's gate carries its failure's type. */
export const NonRetryable = codeView(codesWith('failure').filter((c): c is NonRetryableCode => !CODES[c].retryable));
export type NonRetryable = NonRetryableCode;

/** The list given to every retry policy. */
export const NON_RETRYABLE_TYPES: string[] = Object.values(NonRetryable);

/** The gate code a failure type maps to: itself when catalogued, else `internal`. */
export function failureCode(type: string | undefined | null): GateCode {
  return (GATE_CODES as string[]).includes(type ?? '') ? (type as GateCode) : GateCode.internal;
}
