// The one catalog of gates and of the codes a gate can reject or fail with (`gate` + `code` in a run's result).
// Plain constants, no imports: the workflow bundle uses them too.

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
  parity: 'parity',
  promotion: 'promotion',
} as const;
export type Gate = (typeof Gate)[keyof typeof Gate];

/** Every code a gate can carry: rejections (a finding about the model) and failures (a stage that could not finish). */
export const GateCode = {
  // training
  nonFiniteLoss: 'non_finite_loss',
  // trace (verify, and verify_artifact for a foreign archive)
  controlFlowDivergence: 'control_flow_divergence',
  pythonValueCapture: 'python_value_capture',
  shapeSpecialization: 'shape_specialization',
  trainModeOps: 'train_mode_ops',
  nondeterministic: 'nondeterministic',
  deviceConstant: 'device_constant',
  referenceMismatch: 'reference_mismatch',
  referencesInvalid: 'references_invalid',
  artifactInvalid: 'artifact_invalid',
  // optimize
  optimizedDivergence: 'optimized_divergence',
  // fusion
  fusionRequiredMissing: 'fusion_required_missing',
  fusedDivergence: 'fused_divergence',
  /** fusion.require on a build that cannot fuse on its device (a CPU build without LLVM): its servers never fuse. */
  fusionUnavailable: 'fusion_unavailable',
  // export (torch.export; a divergence from eager reuses control_flow_divergence and nondeterministic)
  dataDependentControlFlow: 'data_dependent_control_flow',
  dynamicShapeViolation: 'dynamic_shape_violation',
  unsupportedConstruct: 'unsupported_construct',
  // compile (AOTInductor)
  compileFailed: 'compile_failed',
  compiledDivergence: 'compiled_divergence',
  // parity
  toleranceExceeded: 'tolerance_exceeded',
  runtimeLoadFailed: 'runtime_load_failed',
  /** A runtime ran past its limit (lib/limits/time-limits.ts: a load allowance plus a multiple of the eager time). */
  runtimeTimeout: 'runtime_timeout',
  shapeMismatch: 'shape_mismatch',
  nonFiniteOutput: 'non_finite_output',
  // promotion
  notBetterThanProduction: 'not_better_than_production',
  approvalRejected: 'approval_rejected',
  approvalTimeout: 'approval_timeout',
  // any gate that runs code we did not write: the sandbox refused one of its operations (the run ends `rejected`)
  sandboxRefused: 'sandbox_refused',
  // a stage that failed (the run ends `failed`): the failure's type
  sandboxUnavailable: 'sandbox_unavailable',
  modelError: 'model_error',
  badInput: 'bad_input',
  environmentMissing: 'environment_missing',
  /** A declared environment that cannot be built: a requirement that would replace the base's torch, or that cannot be
   * resolved or installed (the package named). */
  environmentInvalid: 'environment_invalid',
  /** The package index a declared environment resolves against cannot be reached. */
  indexUnreachable: 'index_unreachable',
  /** A libtorch runner built against another torch than its environment's Python: refused before parity. */
  runtimeMismatch: 'runtime_mismatch',
  digestMismatch: 'digest_mismatch',
  /** A registry state or audit record in the store that does not parse: named, never retried. */
  storeDamaged: 'store_damaged',
  torchInternal: 'torch_internal',
  /** The process running the model ended without answering (a signal or an exit): retried once, then this. */
  modelCrashed: 'model_crashed',
  // limits (docs/trust-limits.md): a zip archive that expands past TTD_MAX_ARCHIVE_*, a stage past its memory cap
  archiveTooLarge: 'archive_too_large',
  memoryLimit: 'memory_limit',
  /** A torch stage ran past its limit (lib/limits/time-limits.ts), derived from the eager time of the reference cases. */
  stageTimeout: 'stage_timeout',
  internal: 'internal',
} as const;
export type GateCode = (typeof GateCode)[keyof typeof GateCode];

/** Every gate code, for schemas. */
export const GATE_CODES = Object.values(GateCode) as [GateCode, ...GateCode[]];

/** Failure types that Temporal must not retry (the same input fails the same way again): a subset of the gate codes,
 * since a failed stage's gate carries its failure's type. */
export const NonRetryable = {
  modelError: GateCode.modelError,
  environmentMissing: GateCode.environmentMissing,
  environmentInvalid: GateCode.environmentInvalid,
  indexUnreachable: GateCode.indexUnreachable,
  runtimeMismatch: GateCode.runtimeMismatch,
  badInput: GateCode.badInput,
  digestMismatch: GateCode.digestMismatch,
  archiveTooLarge: GateCode.archiveTooLarge,
  memoryLimit: GateCode.memoryLimit,
  stageTimeout: GateCode.stageTimeout,
  sandboxRefused: GateCode.sandboxRefused,
  sandboxUnavailable: GateCode.sandboxUnavailable,
  storeDamaged: GateCode.storeDamaged,
} as const;
export type NonRetryable = (typeof NonRetryable)[keyof typeof NonRetryable];

/** The list given to every retry policy. */
export const NON_RETRYABLE_TYPES: string[] = Object.values(NonRetryable);

/** The gate code a failure type maps to: itself when catalogued, else `internal`. */
export function failureCode(type: string | undefined | null): GateCode {
  return (GATE_CODES as string[]).includes(type ?? '') ? (type as GateCode) : GateCode.internal;
}
