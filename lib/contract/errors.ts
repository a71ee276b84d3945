// Errors a user can cause: each carries a machine-readable code and names the thing, the value and what was expected.

/** The codes callers branch on; printed as `error.code` in --json output. */
export const ErrorCode = {
  specInvalid: 'spec_invalid',
  specNotFound: 'spec_not_found',
  modelFileNotFound: 'model_file_not_found',
  /** model: names something that is not a regular .py file or archive of bounded size (a directory, a FIFO, /dev/zero). */
  modelInvalid: 'model_invalid',
  pythonMissing: 'python_missing',
  torchMissing: 'torch_missing',
  /** fusion.require on an environment whose build cannot fuse on the run's device (a CPU build without LLVM). */
  fusionUnavailable: 'fusion_unavailable',
  temporalMissing: 'temporal_missing',
  libtorchRunnerMissing: 'libtorch_runner_missing',
  modelNotFound: 'model_not_found',
  aliasNotFound: 'alias_not_found',
  versionNotFound: 'version_not_found',
  badReference: 'bad_reference',
  digestMismatch: 'digest_mismatch',
  blobMissing: 'blob_missing',
  preconditionFailed: 'precondition_failed',
  invalidName: 'invalid_name',
  artifactInvalid: 'artifact_invalid',
  serverConflict: 'server_conflict',
  storeInvalid: 'store_invalid',
  /** An object in the store that is not what ttd wrote there (truncated, garbage): named with what to do. */
  storeDamaged: 'store_damaged',
  storeUnreachable: 'store_unreachable',
  storeBucketMissing: 'store_bucket_missing',
  storeAccessDenied: 'store_access_denied',
  auditBroken: 'audit_broken',
  serverNotRunning: 'server_not_running',
  serverUnreachable: 'server_unreachable',
  /** The server refused ttd's credentials (API key, client certificate) or ttd refused the server's certificate. */
  serverAuthFailed: 'server_auth_failed',
  /** The Temporal server has no such namespace (TEMPORAL_NAMESPACE, or namespace in the profile). */
  namespaceNotFound: 'namespace_not_found',
  runNotFound: 'run_not_found',
  configInvalid: 'config_invalid',
  outputInvalid: 'output_invalid',
  outputExists: 'output_exists',
  argumentInvalid: 'argument_invalid',
  portInvalid: 'port_invalid',
  approvalRefused: 'approval_refused',
  versionNotPromotable: 'version_not_promotable',
  nothingToRollBack: 'nothing_to_roll_back',
  scheduleError: 'schedule_error',
  referencesInvalid: 'references_invalid',
  formatNotFound: 'format_not_found',
  // The audit trail's trust checks (docs/trust-audit.md).
  auditKeyMissing: 'audit_key_missing',
  auditKeyInvalid: 'audit_key_invalid',
  auditSignatureInvalid: 'audit_signature_invalid',
  auditSignatureMissing: 'audit_signature_missing',
  auditUnsigned: 'audit_unsigned',
  auditTruncated: 'audit_truncated',
  auditAnchorMismatch: 'audit_anchor_mismatch',
  auditMissing: 'audit_missing',
  registryUnbacked: 'registry_unbacked',
  aliasPending: 'alias_pending',
  archiveTooLarge: 'archive_too_large',
  referencesTooLarge: 'references_too_large',
  sandboxUnavailable: 'sandbox_unavailable',
  /** A spec or worker asks for a device (cuda) this host's torch environment cannot use. */
  deviceUnavailable: 'device_unavailable',
  /** A declared environment (spec `environment: { base, requirements }`) that cannot be built: a requirement that
   * would replace or upgrade the base's torch (the package named), or one that cannot be resolved or installed. */
  environmentInvalid: 'environment_invalid',
  /** The package index a declared environment resolves against cannot be reached. */
  indexUnreachable: 'index_unreachable',
  /** An environment whose libtorch runner was built against another torch than its Python's (TTD_PYTHON with the
   * default runner): refused before parity, never loaded against the other libtorch. */
  runtimeMismatch: 'runtime_mismatch',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A failure with a code and an actionable message; the CLI prints both and exits 2. */
export class TtdError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'TtdError';
  }
}

/** A read whose bytes do not hash to the digest they were stored under. */
export class DigestMismatchError extends TtdError {
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly where: string,
  ) {
    super(ErrorCode.digestMismatch, `${where}: expected digest ${expected} but the bytes hash to ${actual}; refusing to use them`, {
      expected,
      actual,
    });
    this.name = 'DigestMismatchError';
  }
}

/** A conditional write (create-only or compare-and-swap) that lost its race. */
export class PreconditionFailedError extends TtdError {
  constructor(readonly key: string) {
    super(ErrorCode.preconditionFailed, `conditional write to '${key}' failed: the object changed or already exists`);
    this.name = 'PreconditionFailedError';
  }
}
