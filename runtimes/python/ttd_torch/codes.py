"""Every code ttd reports, as constants: generated from lib/contract/codes.ts by infra/gen-contract.js (make setup).

Do not edit: add or change a code in the catalog and run make setup. docs/codes.md says what each means, its kind,
whether it is retried and the exit code of the command that reports it. The torch side spells no code itself."""

from typing import Final

# verdict: training: a loss became NaN or infinite
NON_FINITE_LOSS: Final = "non_finite_loss"

# verdict: trace/export: the captured graph and the eager model differ on a probe at the example's own shape (Python
# control flow frozen)
CONTROL_FLOW_DIVERGENCE: Final = "control_flow_divergence"

# verdict: trace: forward() took a Python value from a tensor computed from the inputs, frozen into the graph (see
# trace.accept_captures)
PYTHON_VALUE_CAPTURE: Final = "python_value_capture"

# verdict: trace: the graph fails or disagrees at another batch size (the batch size was frozen)
SHAPE_SPECIALIZATION: Final = "shape_specialization"

# verdict: trace: the graph keeps dropout or batch norm in training mode
TRAIN_MODE_OPS: Final = "train_mode_ops"

# verdict: trace/export: two runs of the captured graph on one input differ
NONDETERMINISTIC: Final = "nondeterministic"

# verdict: trace: a device other than trace.target_device is baked into the graph
DEVICE_CONSTANT: Final = "device_constant"

# verdict: trace (foreign artifact): the archive does not reproduce the reference outputs given with it
REFERENCE_MISMATCH: Final = "reference_mismatch"

# verdict: the references file of a foreign artifact cannot be read or does not fit it (a gate verdict, or a TtdError
# when the spec is read)
REFERENCES_INVALID: Final = "references_invalid"

# verdict: a foreign artifact is not a loadable TorchScript archive (a gate verdict, or a TtdError when the spec is
# read)
ARTIFACT_INVALID: Final = "artifact_invalid"

# verdict: optimize: the frozen, optimized graph differs from eager
OPTIMIZED_DIVERGENCE: Final = "optimized_divergence"

# verdict: fusion: fusion.require names ops the fused graph does not fuse
FUSION_REQUIRED_MISSING: Final = "fusion_required_missing"

# verdict: fusion: the fused graph differs from eager
FUSED_DIVERGENCE: Final = "fused_divergence"

# verdict: fusion.require on a build that cannot fuse on its device (a CPU build without LLVM): its servers never fuse
FUSION_UNAVAILABLE: Final = "fusion_unavailable"

# verdict: export: torch.export met control flow that depends on tensor values
DATA_DEPENDENT_CONTROL_FLOW: Final = "data_dependent_control_flow"

# verdict: export: the model constrains the batch dimension that the export declares dynamic
DYNAMIC_SHAPE_VIOLATION: Final = "dynamic_shape_violation"

# verdict: export: torch.export cannot capture a construct of the model
UNSUPPORTED_CONSTRUCT: Final = "unsupported_construct"

# verdict: compile: AOTInductor could not compile the exported program
COMPILE_FAILED: Final = "compile_failed"

# verdict: compile: the AOTInductor package differs from eager
COMPILED_DIVERGENCE: Final = "compiled_divergence"

# verdict: onnx: torch.onnx could not export the model to ONNX, or the ONNX checker or ONNX Runtime refused the file
ONNX_EXPORT_FAILED: Final = "onnx_export_failed"

# verdict: onnx: the ONNX model computes something else than eager in ONNX Runtime (the first diverging node is named)
ONNX_DIVERGENCE: Final = "onnx_divergence"

# verdict: parity: a runtime's outputs differ from eager beyond parity.atol/rtol
TOLERANCE_EXCEEDED: Final = "tolerance_exceeded"

# verdict: parity: a target runtime could not load or run the artifact
RUNTIME_LOAD_FAILED: Final = "runtime_load_failed"

# verdict: parity: a runtime ran past its limit (a load allowance plus a multiple of the eager time,
# lib/limits/time-limits.ts)
RUNTIME_TIMEOUT: Final = "runtime_timeout"

# verdict: parity: a runtime's output has another shape than eager's, or is missing
SHAPE_MISMATCH: Final = "shape_mismatch"

# verdict: parity: a runtime's output holds NaN or infinity where eager's does not
NON_FINITE_OUTPUT: Final = "non_finite_output"

# verdict: promotion: the validation loss is not better than the production version's
NOT_BETTER_THAN_PRODUCTION: Final = "not_better_than_production"

# verdict: promotion: a person rejected the run (ttd reject)
APPROVAL_REJECTED: Final = "approval_rejected"

# verdict: promotion: nobody approved the run within promotion.approval_timeout
APPROVAL_TIMEOUT: Final = "approval_timeout"

# verdict: the sandbox refused an operation of code we did not write (a host file, the network): the run is rejected
SANDBOX_REFUSED: Final = "sandbox_refused"

# user: TTD_SANDBOX=on but bubblewrap cannot run here
SANDBOX_UNAVAILABLE: Final = "sandbox_unavailable"

# user: the user's model file failed to import, lacks a function, or raised (KeyboardInterrupt, SystemExit and
# GeneratorExit included, named with the line that raised them)
MODEL_ERROR: Final = "model_error"

# user: a stage's input does not fit what its op accepts (the torch side's bad_request)
BAD_INPUT: Final = "bad_input"

# user: the torch environment cannot start or has no torch
ENVIRONMENT_MISSING: Final = "environment_missing"

# user: a declared environment cannot be built: a requirement that would replace the base's torch, or that cannot be
# resolved or installed (the package named)
ENVIRONMENT_INVALID: Final = "environment_invalid"

# user: the package index a declared environment resolves against cannot be reached
INDEX_UNREACHABLE: Final = "index_unreachable"

# user: a libtorch runner built against another torch than its environment's Python: refused before parity
RUNTIME_MISMATCH: Final = "runtime_mismatch"

# user: bytes read from the store do not hash to the digest they were stored under; never used
DIGEST_MISMATCH: Final = "digest_mismatch"

# user: an object in the store (a registry state, an audit record) is not what ttd wrote there: named, never retried
STORE_DAMAGED: Final = "store_damaged"

# user: a model's registry state is damaged and its audit chain cannot rebuild it (the message says how to repair it)
REGISTRY_DAMAGED: Final = "registry_damaged"

# internal: the torch side reported an internal error (our bug, or its host): retried by Temporal
TORCH_INTERNAL: Final = "torch_internal"

# user: the process running the model ended without answering (a signal or an exit): retried once, then this
MODEL_CRASHED: Final = "model_crashed"

# user: a zip archive expands past TTD_MAX_ARCHIVE_* (docs/trust-limits.md)
ARCHIVE_TOO_LARGE: Final = "archive_too_large"

# user: a torch stage passed its memory cap (TTD_TORCH_STAGE_MAX_RSS_MB)
MEMORY_LIMIT: Final = "memory_limit"

# user: a torch stage ran past its limit, derived from the eager time of the reference cases (raise time_limits.scale)
STAGE_TIMEOUT: Final = "stage_timeout"

# internal: a failure ttd did not expect (our bug); a stage's is retried by Temporal; the torch side's becomes
# torch_internal
INTERNAL: Final = "internal"

# user: the spec (or a flag standing for part of it) breaks its schema; every issue named with its path
SPEC_INVALID: Final = "spec_invalid"

# user: the spec file does not exist or is not a regular file
SPEC_NOT_FOUND: Final = "spec_not_found"

# user: the model file the spec names does not exist
MODEL_FILE_NOT_FOUND: Final = "model_file_not_found"

# user: model: names something that is not a regular .py file or archive of bounded size (a directory, a FIFO,
# /dev/zero)
MODEL_INVALID: Final = "model_invalid"

# user: the torch environment's Python cannot be run
PYTHON_MISSING: Final = "python_missing"

# user: the torch environment's Python has no torch module
TORCH_MISSING: Final = "torch_missing"

# user: the Temporal CLI for the embedded dev server is missing (TTD_TEMPORAL_BIN, or make setup)
TEMPORAL_MISSING: Final = "temporal_missing"

# user: the libtorch parity runner has not been built (make setup)
LIBTORCH_RUNNER_MISSING: Final = "libtorch_runner_missing"

# user: no model of that name is registered in the store
MODEL_NOT_FOUND: Final = "model_not_found"

# user: the model has no such alias
ALIAS_NOT_FOUND: Final = "alias_not_found"

# user: the model has no such version
VERSION_NOT_FOUND: Final = "version_not_found"

# user: a MODEL[:VERSION|@ALIAS] reference that does not parse, or names what the command cannot use
BAD_REFERENCE: Final = "bad_reference"

# user: a blob a record names is missing from the store
BLOB_MISSING: Final = "blob_missing"

# user: a conditional write (create-only or compare-and-swap) lost its race
PRECONDITION_FAILED: Final = "precondition_failed"

# user: a model, alias or schedule name outside [a-z0-9][a-z0-9._-]{0,63}
INVALID_NAME: Final = "invalid_name"

# user: the embedded Temporal server's port is in use by another process (TTD_TEMPORAL_PORT)
SERVER_CONFLICT: Final = "server_conflict"

# user: TTD_STORE is not a store location ttd can use: never retried
STORE_INVALID: Final = "store_invalid"

# user: the store (S3 endpoint) cannot be reached or failed a request: retried by Temporal, then this
STORE_UNREACHABLE: Final = "store_unreachable"

# user: the store's bucket does not exist: never retried
STORE_BUCKET_MISSING: Final = "store_bucket_missing"

# user: the store refused ttd's credentials: never retried
STORE_ACCESS_DENIED: Final = "store_access_denied"

# user: an audit record that does not verify (missing, out of order, or not chained to the one before)
AUDIT_BROKEN: Final = "audit_broken"

# user: no Temporal server is running where ttd looks (ttd server start)
SERVER_NOT_RUNNING: Final = "server_not_running"

# user: the Temporal server cannot be reached
SERVER_UNREACHABLE: Final = "server_unreachable"

# user: the server refused ttd's credentials (API key, client certificate) or ttd refused the server's certificate
SERVER_AUTH_FAILED: Final = "server_auth_failed"

# user: the namespace lacks ttd's search attributes (TtdModel, TtdOutcome, ...): temporal operator search-attribute
# create
SEARCH_ATTRIBUTES_MISSING: Final = "search_attributes_missing"

# user: the server does not add a worker's queues to its Worker Deployment version (Worker Versioning off, or a server
# before 1.28)
WORKER_VERSIONING_UNAVAILABLE: Final = "worker_versioning_unavailable"

# user: the Temporal server has no such namespace (TEMPORAL_NAMESPACE, or namespace in the profile)
NAMESPACE_NOT_FOUND: Final = "namespace_not_found"

# user: no such run on this server, or it is not in the state the command needs
RUN_NOT_FOUND: Final = "run_not_found"

# user: a TTD_* variable, profile setting or worker option holds a value ttd cannot use
CONFIG_INVALID: Final = "config_invalid"

# user: an -o path that cannot be written (a directory, a missing folder)
OUTPUT_INVALID: Final = "output_invalid"

# user: an -o path that already exists (pass --force)
OUTPUT_EXISTS: Final = "output_exists"

# user: a command-line argument or flag outside what it accepts
ARGUMENT_INVALID: Final = "argument_invalid"

# user: a --port that is not an integer from 0 to 65535
PORT_INVALID: Final = "port_invalid"

# user: ttd approve/reject on a run that is not waiting for approval
APPROVAL_REFUSED: Final = "approval_refused"

# user: ttd promote on a version that did not pass all its gates
VERSION_NOT_PROMOTABLE: Final = "version_not_promotable"

# user: ttd rollback on an alias with no earlier target
NOTHING_TO_ROLL_BACK: Final = "nothing_to_roll_back"

# user: a schedule that does not exist, or an invalid schedule id or option
SCHEDULE_ERROR: Final = "schedule_error"

# user: the version has no artifact of the asked --format
FORMAT_NOT_FOUND: Final = "format_not_found"

# user: no audit signing key where the workers keep it (TTD_KEYS)
AUDIT_KEY_MISSING: Final = "audit_key_missing"

# user: an audit key that is not an ed25519 key
AUDIT_KEY_INVALID: Final = "audit_key_invalid"

# user: an audit record whose signature does not verify
AUDIT_SIGNATURE_INVALID: Final = "audit_signature_invalid"

# user: no model signing key where TTD_SIGNING_KEY names one, or none in the keys directory where it cannot be created
# (checked before training)
SIGNING_KEY_MISSING: Final = "signing_key_missing"

# user: a model signing key that cannot sign: not an unencrypted ECDSA P-256, P-384 or P-521 private key, unreadable, or
# not matching its published public key (checked before training)
SIGNING_KEY_INVALID: Final = "signing_key_invalid"

# user: a version registered before ttd signed versions: it has no model signature or provenance
SIGNATURE_MISSING: Final = "signature_missing"

# user: a version's model signature or provenance that does not verify with the public key, or does not name the
# version's artifacts
SIGNATURE_INVALID: Final = "signature_invalid"

# user: an unsigned audit record after a signed one: every record after a signed one must be signed
AUDIT_SIGNATURE_MISSING: Final = "audit_signature_missing"

# user: an unsigned audit record where --require-signed asks for signatures
AUDIT_UNSIGNED: Final = "audit_unsigned"

# user: the audit chain has fewer records than its anchor says it reached: records were removed from its end
AUDIT_TRUNCATED: Final = "audit_truncated"

# user: a file that is not the model's audit anchor, or a chain that does not match its anchor
AUDIT_ANCHOR_MISMATCH: Final = "audit_anchor_mismatch"

# user: a model in the registry without audit records
AUDIT_MISSING: Final = "audit_missing"

# user: a registry entry that its audit records do not back
REGISTRY_UNBACKED: Final = "registry_unbacked"

# user: an audit record moves an alias that the registry has not recorded yet (a promotion in progress)
ALIAS_PENDING: Final = "alias_pending"

# user: a references file past its size limit (docs/trust-limits.md)
REFERENCES_TOO_LARGE: Final = "references_too_large"

# user: a spec or worker asks for a device (cuda) this host's torch environment cannot use
DEVICE_UNAVAILABLE: Final = "device_unavailable"

# user: the run was cancelled (ttd cancel, Ctrl-C: exit 130, SIGTERM: exit 143)
RUN_CANCELLED: Final = "run_cancelled"

# user: the run's workflow was terminated
RUN_TERMINATED: Final = "run_terminated"

# internal: the run's workflow ended without a result (it failed or timed out)
RUN_FAILED: Final = "run_failed"

# user: ttd run stopped following the run (a second Ctrl-C: exit 130); it goes on when a worker serves it
RUN_DETACHED: Final = "run_detached"

# protocol: the request did not fit the protocol or its op's contract (becomes bad_input)
BAD_REQUEST: Final = "bad_request"

# protocol: runner step: its command line (the runner exits 2)
ARGS: Final = "args"

# protocol: runner step: loading the artifact (TorchScript archive, AOTInductor package)
LOAD: Final = "load"

# protocol: runner step: reading the reference inputs (safetensors)
READ: Final = "read"

# protocol: runner step: running the artifact on a case
RUN: Final = "run"

# protocol: runner step: writing the outputs (safetensors)
WRITE: Final = "write"

# user: safetensors: the file is shorter than its 8-byte header length
ST_FILE_TOO_SHORT: Final = "st_file_too_short"

# user: safetensors: the header length exceeds the limit
ST_HEADER_TOO_LARGE: Final = "st_header_too_large"

# user: safetensors: the header runs past the end of the file
ST_HEADER_OUT_OF_BOUNDS: Final = "st_header_out_of_bounds"

# user: safetensors: the header is not UTF-8
ST_HEADER_NOT_UTF8: Final = "st_header_not_utf8"

# user: safetensors: the header does not begin with { and end with } followed only by spaces
ST_HEADER_FRAMING: Final = "st_header_framing"

# user: safetensors: the header nests too deep
ST_HEADER_TOO_DEEP: Final = "st_header_too_deep"

# user: safetensors: the header is not valid JSON
ST_HEADER_NOT_JSON: Final = "st_header_not_json"

# user: safetensors: the header has a key twice
ST_HEADER_DUPLICATE_KEY: Final = "st_header_duplicate_key"

# user: safetensors: __metadata__ is not an object of strings
ST_METADATA_INVALID: Final = "st_metadata_invalid"

# user: safetensors: a tensor has an empty name
ST_TENSOR_NAME_EMPTY: Final = "st_tensor_name_empty"

# user: safetensors: a tensor entry is not an object of exactly dtype, shape and data_offsets
ST_TENSOR_ENTRY_INVALID: Final = "st_tensor_entry_invalid"

# user: safetensors: a tensor has an unknown dtype
ST_TENSOR_DTYPE: Final = "st_tensor_dtype"

# user: safetensors: a tensor's shape is not integers from 0 to 2^53-1, or its size exceeds 2^53-1
ST_TENSOR_SHAPE: Final = "st_tensor_shape"

# user: safetensors: a tensor's data_offsets are not two ordered integers
ST_TENSOR_OFFSETS: Final = "st_tensor_offsets"

# user: safetensors: a tensor's data_offsets do not span its shape times its dtype's size
ST_TENSOR_SIZE_MISMATCH: Final = "st_tensor_size_mismatch"

# user: safetensors: the tensors' data overlap or leave gaps
ST_TENSORS_NOT_CONTIGUOUS: Final = "st_tensors_not_contiguous"

# user: safetensors: the data section is shorter than the tensors need
ST_DATA_TRUNCATED: Final = "st_data_truncated"

# user: safetensors: bytes follow the last tensor
ST_DATA_TRAILING: Final = "st_data_trailing"
