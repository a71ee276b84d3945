// Command-line values checked at the boundary: each error names the flag, the value and what was expected.
import { ErrorCode, TtdError } from '../contract/errors';

/** A flag that takes a count (`--limit 20`): a whole number of at least 1. */
export function positiveIntegerArgument(flag: string, value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new TtdError(ErrorCode.argumentInvalid, `${flag} '${value}' is not a positive whole number; expected e.g. ${flag} 20`, {
      flag,
      value,
    });
  }
  return n;
}

// The forms we promise; Temporal's own parser (the `ms` package) accepts more, and 'banana' only fails at the server.
const INTERVAL_RE = /^([1-9]\d*)(s|m|h|d)$/;

/** `--every`: a whole number and a unit (30s, 30m, 1h, 1d); the returned string is what Temporal takes. */
export function intervalArgument(flag: string, value: string): `${number}${'s' | 'm' | 'h' | 'd'}` {
  if (!INTERVAL_RE.test(value.trim())) {
    throw new TtdError(
      ErrorCode.scheduleError,
      `${flag} '${value}' is not an interval; expected a whole number and a unit s, m, h or d (e.g. 30m, 1h, 1d)`,
      { flag, value },
    );
  }
  return value.trim() as `${number}${'s' | 'm' | 'h' | 'd'}`;
}

const CRON_MACROS = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];
const CRON_FIELD_RE = /^[0-9A-Za-z*?,/#-]+$/;

/** `--cron`: the shape only (5 to 7 fields of cron characters, or a macro such as @daily); Temporal checks the rest. */
export function cronArgument(flag: string, value: string): string {
  const expr = value.trim();
  const fields = expr.split(/\s+/);
  const ok =
    CRON_MACROS.includes(expr) ||
    /^@every\s+\S+$/.test(expr) ||
    (fields.length >= 5 && fields.length <= 7 && fields.every((f) => CRON_FIELD_RE.test(f)));
  if (!ok) {
    throw new TtdError(
      ErrorCode.scheduleError,
      `${flag} '${value}' is not a cron expression; expected 5 fields (minute hour day-of-month month day-of-week, e.g. '0 3 * * *') or a macro such as @daily or @hourly`,
      { flag, value },
    );
  }
  return expr;
}
