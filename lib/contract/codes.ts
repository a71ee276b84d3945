// The one catalog of codes: every code ttd, its torch side, its parity runners and its CLI can report, declared once
// with its kind, retryability, exit code and one line of documentation. GateCode, ErrorCode, the torch protocol's
// codes and the CLI's are views of it; runtimes/python/ttd_torch/codes.py and docs/codes.md are generated from it
// (infra/gen-contract.js), and test/unit/codes.unit.test.ts fails on a code literal in any source that is not here.
// Plain data, no imports: the workflow bundle uses it too (the details' schemas are in ./code-details.ts).

/** What a code reports: a gate verdict about the model, an error the user can cause (a spec, a file, an environment,
 * a model that fails), a word of a process protocol (the torch side's error codes, the parity runners' steps), or a
 * fault of ttd or its host. */
export type CodeKind = 'verdict' | 'user' | 'protocol' | 'internal';

/** Where a code appears: `gate` in a run's gates (`gate` + `code`), `failure` as a stage's failure type (Temporal's
 * ApplicationFailure type, which becomes its gate's code), `error` as a TtdError's code (`error.code` of --json),
 * `torch` in an error response of the torch side, `cli` as `error.code` of a run that ended without a result,
 * `runner` as the step of a parity runner's error, `safetensors` as the rule a safetensors file breaks (every
 * reader: lib/parity/safetensors.ts, ttd_parity_runner.py, the C++ runner). */
export type CodeUse = 'gate' | 'failure' | 'error' | 'torch' | 'cli' | 'runner' | 'safetensors';

/** One catalogued code. */
export interface CodeEntry {
  kind: CodeKind;
  uses: readonly CodeUse[];
  /** Whether the same input may succeed when tried again: Temporal retries a failure type that is, and nothing else. */
  retryable: boolean;
  /** The exit status of the ttd command that reports it; null for a code that is only a word inside another's message
   * or result (a runner's step, a safetensors rule, a torch error code, which becomes the failure type `as`). */
  exit: 0 | 1 | 2 | null;
  /** A torch error code's failure type, when it is another code. */
  as?: string;
  /** One line: what happened, for docs/codes.md. */
  doc: string;
}

// The kinds of entry, so that each line of the catalog says only what sets its code apart.

/** A gate verdict, a finding about the model: the run ends `rejected` (exit 1); the same input is rejected again. */
function verdict(doc: string): ReturnType<typeof verdictIn<readonly ['gate']>>;
function verdict<const U extends readonly CodeUse[]>(doc: string, uses: U): ReturnType<typeof verdictIn<U>>;
function verdict(doc: string, uses: readonly CodeUse[] = ['gate']) {
  return verdictIn(doc, uses);
}
function verdictIn<const U extends readonly CodeUse[]>(doc: string, uses: U) {
  return { kind: 'verdict', uses, retryable: false, exit: 1, doc } as const;
}

/** The uses of a failure that is also a gate's code and a `--json` error's. */
const EVERYWHERE = ['gate', 'failure', 'error'] as const;

/** A stage's failure type, which becomes its gate's code: the run ends `failed` (exit 2). */
function failure<const K extends CodeKind, const R extends boolean>(
  kind: K,
  retryable: R,
  doc: string,
): ReturnType<typeof failureIn<K, R, readonly ['gate', 'failure']>>;
function failure<const K extends CodeKind, const R extends boolean, const U extends readonly CodeUse[]>(
  kind: K,
  retryable: R,
  doc: string,
  uses: U,
): ReturnType<typeof failureIn<K, R, U>>;
function failure(kind: CodeKind, retryable: boolean, doc: string, uses: readonly CodeUse[] = ['gate', 'failure']) {
  return failureIn(kind, retryable, doc, uses);
}
function failureIn<const K extends CodeKind, const R extends boolean, const U extends readonly CodeUse[]>(
  kind: K,
  retryable: R,
  doc: string,
  uses: U,
) {
  return { kind, uses, retryable, exit: 2, doc } as const;
}

/** A TtdError a user can cause: --json prints it as `error.code`, and the command exits 2. */
function userError(doc: string) {
  return { kind: 'user', uses: ['error'], retryable: false, exit: 2, doc } as const;
}

/** How a run that `ttd run` followed ended without a result (`error.code` of its --json output). */
function runEnd<const K extends CodeKind>(kind: K, doc: string) {
  return { kind, uses: ['cli'], retryable: false, exit: 2, doc } as const;
}

/** A parity runner's step, named in its error (`{"error": {"stage", "message"}}`) and in the parity gate's message. */
function runnerStep(doc: string) {
  return { kind: 'protocol', uses: ['runner'], retryable: false, exit: null, doc } as const;
}

/** A rule of the safetensors format that a file breaks, named inside the message of the error it causes. */
function safetensorsRule(doc: string) {
  return { kind: 'user', uses: ['safetensors'], retryable: false, exit: null, doc } as const;
}

/** Every code, by its wire name. */
export const CODES = {
  // ---- gate verdicts: findings about the model (the run ends `rejected`, exit 1)
  non_finite_loss: verdict('training: a loss became NaN or infinite'),
  control_flow_divergence: verdict(
    "trace/export: the captured graph and the eager model differ on a probe at the example's own shape (Python control flow frozen)",
  ),
  python_value_capture: verdict(
    'trace: forward() took a Python value from a tensor computed from the inputs, frozen into the graph (see trace.accept_captures)',
  ),
  shape_specialization: verdict('trace: the graph fails or disagrees at another batch size (the batch size was frozen)'),
  train_mode_ops: verdict('trace: the graph keeps dropout or batch norm in training mode'),
  nondeterministic: verdict('trace/export: two runs of the captured graph on one input differ'),
  device_constant: verdict('trace: a device other than trace.target_device is baked into the graph'),
  reference_mismatch: verdict('trace (foreign artifact): the archive does not reproduce the reference outputs given with it'),
  references_invalid: verdict(
    'the references file of a foreign artifact cannot be read or does not fit it (a gate verdict, or a TtdError when the spec is read)',
    ['gate', 'error'],
  ),
  artifact_invalid: verdict(
    'a foreign artifact is not a loadable TorchScript archive (a gate verdict, or a TtdError when the spec is read)',
    ['gate', 'error'],
  ),
  optimized_divergence: verdict('optimize: the frozen, optimized graph differs from eager'),
  fusion_required_missing: verdict('fusion: fusion.require names ops the fused graph does not fuse'),
  fused_divergence: verdict('fusion: the fused graph differs from eager'),
  fusion_unavailable: verdict(
    'fusion.require on a build that cannot fuse on its device (a CPU build without LLVM): its servers never fuse',
    ['gate', 'error'],
  ),
  data_dependent_control_flow: verdict('export: torch.export met control flow that depends on tensor values'),
  dynamic_shape_violation: verdict('export: the model constrains the batch dimension that the export declares dynamic'),
  unsupported_construct: verdict('export: torch.export cannot capture a construct of the model'),
  compile_failed: verdict('compile: AOTInductor could not compile the exported program'),
  compiled_divergence: verdict('compile: the AOTInductor package differs from eager'),
  onnx_export_failed: verdict('onnx: torch.onnx could not export the model to ONNX, or the ONNX checker or ONNX Runtime refused the file'),
  onnx_divergence: verdict('onnx: the ONNX model computes something else than eager in ONNX Runtime (the first diverging node is named)'),
  tolerance_exceeded: verdict("parity: a runtime's outputs differ from eager beyond parity.atol/rtol"),
  runtime_load_failed: verdict('parity: a target runtime could not load or run the artifact'),
  runtime_timeout: verdict(
    'parity: a runtime ran past its limit (a load allowance plus a multiple of the eager time, lib/limits/time-limits.ts)',
  ),
  shape_mismatch: verdict("parity: a runtime's output has another shape than eager's, or is missing"),
  non_finite_output: verdict("parity: a runtime's output holds NaN or infinity where eager's does not"),
  not_better_than_production: verdict("promotion: the validation loss is not better than the production version's"),
  approval_rejected: verdict('promotion: a person rejected the run (ttd reject)'),
  approval_timeout: verdict('promotion: nobody approved the run within promotion.approval_timeout'),
  sandbox_refused: verdict('the sandbox refused an operation of code we did not write (a host file, the network): the run is rejected', [
    'gate',
    'failure',
    'torch',
  ]),

  // ---- stage failures (the run ends `failed`, exit 2): the failure's type becomes its gate's code
  sandbox_unavailable: failure('user', false, 'TTD_SANDBOX=on but bubblewrap cannot run here', EVERYWHERE),
  model_error: failure(
    'user',
    false,
    "the user's model file failed to import, lacks a function, or raised (KeyboardInterrupt, SystemExit and GeneratorExit included, named with the line that raised them)",
    ['gate', 'failure', 'torch'],
  ),
  bad_input: failure('user', false, "a stage's input does not fit what its op accepts (the torch side's bad_request)"),
  environment_missing: failure('user', false, 'the torch environment cannot start or has no torch'),
  environment_invalid: failure(
    'user',
    false,
    "a declared environment cannot be built: a requirement that would replace the base's torch, or that cannot be resolved or installed (the package named)",
    EVERYWHERE,
  ),
  index_unreachable: failure('user', false, 'the package index a declared environment resolves against cannot be reached', EVERYWHERE),
  runtime_mismatch: failure(
    'user',
    false,
    "a libtorch runner built against another torch than its environment's Python: refused before parity",
    EVERYWHERE,
  ),
  digest_mismatch: failure(
    'user',
    false,
    'bytes read from the store do not hash to the digest they were stored under; never used',
    EVERYWHERE,
  ),
  store_damaged: failure(
    'user',
    false,
    'an object in the store (a registry state, an audit record) is not what ttd wrote there: named, never retried',
    EVERYWHERE,
  ),
  registry_damaged: failure(
    'user',
    false,
    "a model's registry state is damaged and its audit chain cannot rebuild it (the message says how to repair it)",
    EVERYWHERE,
  ),
  torch_internal: failure('internal', true, 'the torch side reported an internal error (our bug, or its host): retried by Temporal'),
  model_crashed: failure(
    'user',
    true,
    'the process running the model ended without answering (a signal or an exit): retried once, then this',
  ),
  archive_too_large: failure('user', false, 'a zip archive expands past TTD_MAX_ARCHIVE_* (docs/trust-limits.md)', [
    'gate',
    'failure',
    'error',
    'torch',
  ]),
  memory_limit: failure('user', false, 'a torch stage passed its memory cap (TTD_TORCH_STAGE_MAX_RSS_MB)'),
  stage_timeout: failure(
    'user',
    false,
    'a torch stage ran past its limit, derived from the eager time of the reference cases (raise time_limits.scale)',
  ),
  internal: {
    kind: 'internal',
    uses: ['gate', 'failure', 'torch', 'cli'],
    retryable: true,
    exit: 2,
    as: 'torch_internal',
    doc: "a failure ttd did not expect (our bug); a stage's is retried by Temporal; the torch side's becomes torch_internal",
  },

  // ---- errors a user can cause (TtdError; --json prints them as error.code, exit 2)
  spec_invalid: userError('the spec (or a flag standing for part of it) breaks its schema; every issue named with its path'),
  spec_not_found: userError('the spec file does not exist or is not a regular file'),
  model_file_not_found: userError('the model file the spec names does not exist'),
  model_invalid: userError(
    'model: names something that is not a regular .py file or archive of bounded size (a directory, a FIFO, /dev/zero)',
  ),
  python_missing: userError("the torch environment's Python cannot be run"),
  torch_missing: userError("the torch environment's Python has no torch module"),
  temporal_missing: userError('the Temporal CLI for the embedded dev server is missing (TTD_TEMPORAL_BIN, or make setup)'),
  libtorch_runner_missing: userError('the libtorch parity runner has not been built (make setup)'),
  model_not_found: userError('no model of that name is registered in the store'),
  alias_not_found: userError('the model has no such alias'),
  version_not_found: userError('the model has no such version'),
  bad_reference: userError('a MODEL[:VERSION|@ALIAS] reference that does not parse, or names what the command cannot use'),
  blob_missing: userError('a blob a record names is missing from the store'),
  precondition_failed: userError('a conditional write (create-only or compare-and-swap) lost its race'),
  invalid_name: userError('a model, alias or schedule name outside [a-z0-9][a-z0-9._-]{0,63}'),
  server_conflict: userError("the embedded Temporal server's port is in use by another process (TTD_TEMPORAL_PORT)"),
  // Store errors are also stage failures: the final ones end a run's stage at once with their code, never retried.
  store_invalid: failure('user', false, 'TTD_STORE is not a store location ttd can use: never retried', EVERYWHERE),
  store_unreachable: failure(
    'user',
    true,
    'the store (S3 endpoint) cannot be reached or failed a request: retried by Temporal, then this',
    EVERYWHERE,
  ),
  store_bucket_missing: failure('user', false, "the store's bucket does not exist: never retried", EVERYWHERE),
  store_access_denied: failure('user', false, "the store refused ttd's credentials: never retried", EVERYWHERE),
  audit_broken: userError('an audit record that does not verify (missing, out of order, or not chained to the one before)'),
  server_not_running: userError('no Temporal server is running where ttd looks (ttd server start)'),
  server_unreachable: userError('the Temporal server cannot be reached'),
  server_auth_failed: userError(
    "the server refused ttd's credentials (API key, client certificate) or ttd refused the server's certificate",
  ),
  search_attributes_missing: userError(
    "the namespace lacks ttd's search attributes (TtdModel, TtdOutcome, ...): temporal operator search-attribute create",
  ),
  worker_versioning_unavailable: userError(
    "the server does not add a worker's queues to its Worker Deployment version (Worker Versioning off, or a server before 1.28)",
  ),
  namespace_not_found: userError('the Temporal server has no such namespace (TEMPORAL_NAMESPACE, or namespace in the profile)'),
  run_not_found: userError('no such run on this server, or it is not in the state the command needs'),
  config_invalid: userError('a TTD_* variable, profile setting or worker option holds a value ttd cannot use'),
  output_invalid: userError('an -o path that cannot be written (a directory, a missing folder)'),
  output_exists: userError('an -o path that already exists (pass --force)'),
  argument_invalid: userError('a command-line argument or flag outside what it accepts'),
  port_invalid: userError('a --port that is not an integer from 0 to 65535'),
  approval_refused: userError('ttd approve/reject on a run that is not waiting for approval'),
  version_not_promotable: userError('ttd promote on a version that did not pass all its gates'),
  nothing_to_roll_back: userError('ttd rollback on an alias with no earlier target'),
  schedule_error: userError('a schedule that does not exist, or an invalid schedule id or option'),
  format_not_found: userError('the version has no artifact of the asked --format'),
  audit_key_missing: userError('no audit signing key where the workers keep it (TTD_KEYS)'),
  audit_key_invalid: userError('an audit key that is not an ed25519 key'),
  audit_signature_invalid: userError('an audit record whose signature does not verify'),
  signing_key_missing: failure(
    'user',
    false,
    'no model signing key where TTD_SIGNING_KEY names one, or none in the keys directory where it cannot be created (checked before training)',
    EVERYWHERE,
  ),
  signing_key_invalid: failure(
    'user',
    false,
    'a model signing key that cannot sign: not an unencrypted ECDSA P-256, P-384 or P-521 private key, unreadable, or not matching its published public key (checked before training)',
    EVERYWHERE,
  ),
  signature_missing: userError('a version registered before ttd signed versions: it has no model signature or provenance'),
  signature_invalid: userError(
    "a version's model signature or provenance that does not verify with the public key, or does not name the version's artifacts",
  ),
  audit_signature_missing: userError('an unsigned audit record after a signed one: every record after a signed one must be signed'),
  audit_unsigned: userError('an unsigned audit record where --require-signed asks for signatures'),
  audit_truncated: userError('the audit chain has fewer records than its anchor says it reached: records were removed from its end'),
  audit_anchor_mismatch: userError("a file that is not the model's audit anchor, or a chain that does not match its anchor"),
  audit_missing: userError('a model in the registry without audit records'),
  registry_unbacked: userError('a registry entry that its audit records do not back'),
  alias_pending: userError('an audit record moves an alias that the registry has not recorded yet (a promotion in progress)'),
  references_too_large: userError('a references file past its size limit (docs/trust-limits.md)'),
  device_unavailable: userError("a spec or worker asks for a device (cuda) this host's torch environment cannot use"),

  // ---- the CLI: a followed run that ended without a result (`ttd run --json`'s error.code)
  run_cancelled: runEnd('user', 'the run was cancelled (ttd cancel, Ctrl-C: exit 130, SIGTERM: exit 143)'),
  run_terminated: runEnd('user', "the run's workflow was terminated"),
  run_failed: runEnd('internal', "the run's workflow ended without a result (it failed or timed out)"),
  run_detached: runEnd('user', 'ttd run stopped following the run (a second Ctrl-C: exit 130); it goes on when a worker serves it'),

  // ---- the torch side's protocol (docs/protocol.md): error codes of a response, and the failure type each becomes
  bad_request: {
    kind: 'protocol',
    uses: ['torch'],
    retryable: false,
    exit: null,
    as: 'bad_input',
    doc: "the request did not fit the protocol or its op's contract (becomes bad_input)",
  },

  // ---- the parity runners' steps (ttd_parity_runner.py and the C++ runner: {"error": {"stage", "message"}})
  args: runnerStep('runner step: its command line (the runner exits 2)'),
  load: runnerStep('runner step: loading the artifact (TorchScript archive, AOTInductor package)'),
  read: runnerStep('runner step: reading the reference inputs (safetensors)'),
  run: runnerStep('runner step: running the artifact on a case'),
  write: runnerStep('runner step: writing the outputs (safetensors)'),

  // ---- safetensors rules (docs/trust-safetensors.md): the same in every reader, inside an error's message
  st_file_too_short: safetensorsRule('safetensors: the file is shorter than its 8-byte header length'),
  st_header_too_large: safetensorsRule('safetensors: the header length exceeds the limit'),
  st_header_out_of_bounds: safetensorsRule('safetensors: the header runs past the end of the file'),
  st_header_not_utf8: safetensorsRule('safetensors: the header is not UTF-8'),
  st_header_framing: safetensorsRule('safetensors: the header does not begin with { and end with } followed only by spaces'),
  st_header_too_deep: safetensorsRule('safetensors: the header nests too deep'),
  st_header_not_json: safetensorsRule('safetensors: the header is not valid JSON'),
  st_header_duplicate_key: safetensorsRule('safetensors: the header has a key twice'),
  st_metadata_invalid: safetensorsRule('safetensors: __metadata__ is not an object of strings'),
  st_tensor_name_empty: safetensorsRule('safetensors: a tensor has an empty name'),
  st_tensor_entry_invalid: safetensorsRule('safetensors: a tensor entry is not an object of exactly dtype, shape and data_offsets'),
  st_tensor_dtype: safetensorsRule('safetensors: a tensor has an unknown dtype'),
  st_tensor_shape: safetensorsRule("safetensors: a tensor's shape is not integers from 0 to 2^53-1, or its size exceeds 2^53-1"),
  st_tensor_offsets: safetensorsRule("safetensors: a tensor's data_offsets are not two ordered integers"),
  st_tensor_size_mismatch: safetensorsRule("safetensors: a tensor's data_offsets do not span its shape times its dtype's size"),
  st_tensors_not_contiguous: safetensorsRule("safetensors: the tensors' data overlap or leave gaps"),
  st_data_truncated: safetensorsRule('safetensors: the data section is shorter than the tensors need'),
  st_data_trailing: safetensorsRule('safetensors: bytes follow the last tensor'),
} as const satisfies Record<string, CodeEntry>;

/** A catalogued code. */
export type Code = keyof typeof CODES;
/** The codes with a given use. */
export type CodeWith<U extends CodeUse> = { [C in Code]: U extends (typeof CODES)[C]['uses'][number] ? C : never }[Code];

/** `non_finite_loss` → `nonFiniteLoss`: the key of a code in GateCode, ErrorCode and the other views. */
export type CamelCode<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<CamelCode<T>>}` : S;

/** Every code, in catalog order. */
export const ALL_CODES = Object.keys(CODES) as Code[];

/** The codes with a given use, in catalog order. */
export function codesWith<U extends CodeUse>(use: U): CodeWith<U>[] {
  return ALL_CODES.filter((c) => (CODES[c].uses as readonly CodeUse[]).includes(use)) as CodeWith<U>[];
}

/** A view of the catalog as constants, `{ nonFiniteLoss: 'non_finite_loss', ... }`, for the codes a filter keeps; a
 * prefix that every one of them shares may be left out of the keys (`st_file_too_short` → `fileTooShort`). */
export function codeView<C extends Code, P extends string = ''>(
  codes: readonly C[],
  prefix?: P,
): { readonly [K in C as CamelCode<K extends `${P}${infer R}` ? R : K>]: K } {
  const key = (c: string) =>
    (prefix && c.startsWith(prefix) ? c.slice(prefix.length) : c).replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());
  return Object.fromEntries(codes.map((c) => [key(c), c])) as never;
}

/** Whether a string is a catalogued code. */
export function isCode(value: unknown): value is Code {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(CODES, value);
}

/** The failure type that a torch error code ends its stage with, and whether Temporal may retry it: the catalog's `as`,
 * or the code itself; `torch_internal` (retried) for a code the catalog does not list for the torch side. */
export function torchFailure(code: string): { type: Code; retryable: boolean } {
  const entry: CodeEntry | undefined = isCode(code) && CODES[code].uses.some((u) => u === 'torch') ? CODES[code] : undefined;
  const type = (entry ? (entry.as ?? code) : 'torch_internal') as Code;
  return { type, retryable: CODES[type].retryable };
}
