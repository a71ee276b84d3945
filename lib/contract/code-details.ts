// The schema of each code's details (TtdError.details, what a caller may read besides the message), beside the catalog
// (./codes.ts) rather than in it: the catalog is plain data that the workflow bundle imports, and zod stays out of it.
import { z } from 'zod';
import type { Code } from './codes';

const path = z.strictObject({ path: z.string() });
const flagValue = z.strictObject({ flag: z.string().optional(), value: z.string().optional() });
const bucket = z.strictObject({ bucket: z.string(), endpoint: z.string().optional() });
const address = z.strictObject({ address: z.string() });

/** The details each code's TtdError carries, where they have a shape; a code without an entry carries none to rely on. */
export const CodeDetails = {
  spec_invalid: z.strictObject({ path: z.string().optional(), issues: z.array(z.unknown()).optional() }),
  spec_not_found: path,
  model_file_not_found: path,
  model_invalid: path,
  artifact_invalid: path,
  output_invalid: z.strictObject({ path: z.string().optional() }),
  output_exists: path,
  audit_anchor_mismatch: path,
  audit_key_missing: path,
  audit_key_invalid: path,
  archive_too_large: z.looseObject({ path: z.string(), limits: z.unknown() }),
  digest_mismatch: z.strictObject({ expected: z.string(), actual: z.string() }),
  blob_missing: z.strictObject({ digest: z.string() }),
  store_damaged: z.strictObject({ key: z.string() }),
  registry_damaged: z.strictObject({ key: z.string(), model: z.string() }),
  store_bucket_missing: bucket,
  store_access_denied: bucket,
  store_unreachable: bucket,
  invalid_name: z.strictObject({ kind: z.string(), value: z.string() }),
  search_attributes_missing: z.strictObject({ namespace: z.string(), missing: z.array(z.string()), mistyped: z.array(z.string()) }),
  argument_invalid: flagValue,
  schedule_error: flagValue,
  config_invalid: z.strictObject({
    address: z.string().optional(),
    file: z.string().optional(),
    profile: z.string().optional(),
    setting: z.string().optional(),
  }),
  environment_invalid: z.strictObject({ package: z.string().optional(), torch: z.string().optional() }),
  index_unreachable: z.strictObject({ url: z.string().optional() }),
  server_auth_failed: address,
  server_unreachable: address,
  server_conflict: z.strictObject({ address: z.string().optional() }),
  namespace_not_found: z.strictObject({ address: z.string(), namespace: z.string() }),
} as const satisfies Partial<Record<Code, z.ZodType>>;

/** The details of a code: its schema's type, or an open record for a code without one. */
export type DetailsOf<C extends string> = C extends keyof typeof CodeDetails ? z.input<(typeof CodeDetails)[C]> : Record<string, unknown>;
