// Errors a user can cause: each carries a machine-readable code and names the thing, the value and what was expected.
import type { DetailsOf } from './code-details';
import { codesWith, codeView, type CodeWith } from './codes';

/** The codes callers branch on; printed as `error.code` in --json output. A view of the catalog
 * (lib/contract/codes.ts): the codes whose uses include `error`. */
export const ErrorCode = codeView(codesWith('error'));
export type ErrorCode = CodeWith<'error'>;

/** The codes of how a run that `ttd run` followed ended without a result, and `internal` for an error that is not a
 * TtdError (our bug): a view of the catalog, the codes whose uses include `cli`. */
export const CliCode = codeView(codesWith('cli'));
export type CliCode = CodeWith<'cli'>;

/** What --json prints as `error.code`: a TtdError's code or one of the CLI's own. */
export type JsonErrorCode = ErrorCode | CliCode;

/** A failure with a code and an actionable message; the CLI prints both and exits 2. */
export class TtdError<C extends ErrorCode = ErrorCode> extends Error {
  /** What a caller may read besides the message, typed per code (lib/contract/code-details.ts). */
  readonly details: DetailsOf<C>;

  constructor(
    readonly code: C,
    message: string,
    // Required where the code's details have a required field, optional elsewhere.
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- `{} extends T`: whether every field of T is optional
    ...[details]: {} extends DetailsOf<C> ? [details?: DetailsOf<C>] : [details: DetailsOf<C>]
  ) {
    super(message);
    this.details = details ?? ({} as DetailsOf<C>);
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
