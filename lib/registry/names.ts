// Registry names (models, aliases): validated everywhere they come in, so no key can escape its folder.
import { ErrorCode, TtdError } from '../contract/errors';

/** Model and alias names: lower-case, no slashes, no '..', no control characters. */
export const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Throws a TtdError unless `value` is a valid model or alias name. */
export function assertName(kind: 'model' | 'alias', value: string): string {
  if (!NAME_RE.test(value) || value.includes('..')) {
    throw new TtdError(
      ErrorCode.invalidName,
      `${kind} name ${JSON.stringify(value)} is invalid: expected [a-z0-9][a-z0-9._-]{0,63} without '..'`,
      { kind, value },
    );
  }
  return value;
}
