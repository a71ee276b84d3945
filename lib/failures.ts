// Failure types that Temporal must not retry: one list, for activities and the workflow's retry policies (plain strings, no SDK).

/** Application failure types that are permanent: the same input fails the same way again. */
export const NonRetryable = {
  modelError: 'model_error',
  environmentMissing: 'environment_missing',
  badInput: 'bad_input',
  digestMismatch: 'digest_mismatch',
} as const;
export type NonRetryable = (typeof NonRetryable)[keyof typeof NonRetryable];

/** The list given to every retry policy. */
export const NON_RETRYABLE_TYPES: string[] = Object.values(NonRetryable);
