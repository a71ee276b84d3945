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

const SINCE_RE = /^([1-9]\d*)(m|h|d)$/;
const DATE_RE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `--since`: how long ago (30m, 24h, 7d) or a date (2026-12-01, UTC midnight) or a time with its zone
 * (2026-12-01T09:30:00Z); the returned time is the earliest start a run may have. */
export function sinceArgument(flag: string, value: string, now: Date = new Date()): Date {
  const v = value.trim();
  const ago = SINCE_RE.exec(v);
  const at = ago
    ? new Date(now.getTime() - Number(ago[1]) * UNIT_MS[ago[2] as keyof typeof UNIT_MS])
    : DATE_RE.test(v)
      ? new Date(v.length === 10 ? `${v}T00:00:00Z` : v)
      : undefined;
  // Temporal's visibility store refuses a time outside 0001-9999 with an error of its own ("Failed to list workflows").
  if (at && !Number.isNaN(at.getTime()) && (at.getUTCFullYear() < 1970 || at.getUTCFullYear() > 9999)) {
    throw new TtdError(
      ErrorCode.argumentInvalid,
      `${flag} '${value}' is ${at.getUTCFullYear() < 1970 ? 'before 1970' : 'after 9999'}; expected a time from 1970 to 9999 (e.g. ${flag} 7d)`,
      { flag, value },
    );
  }
  if (!at || Number.isNaN(at.getTime())) {
    throw new TtdError(
      ErrorCode.argumentInvalid,
      `${flag} '${value}' is neither a time ago nor a date; expected a whole number and a unit m, h or d (e.g. ${flag} 24h), ` +
        `a date (${flag} 2026-12-01) or a time with its zone (${flag} 2026-12-01T09:30:00Z)`,
      { flag, value },
    );
  }
  return at;
}

/** A value that must be one of `choices` (`--outcome promoted`). */
export function choiceArgument<const T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new TtdError(ErrorCode.argumentInvalid, `${flag} '${value}' is not one of ${choices.join(', ')}`, { flag, value });
  }
  return value as T;
}

/** A commit id or its prefix, as `ttd run --commit` takes it: letters, digits, '.', '_' and '-', at most 64. */
export function commitArgument(flag: string, value: string): string {
  if (!/^[0-9a-zA-Z._-]{1,64}$/.test(value)) {
    throw new TtdError(
      ErrorCode.argumentInvalid,
      `${flag} '${value}' is not a commit id; expected a git SHA or its prefix (letters, digits, '.', '_', '-'; at most 64)`,
      { flag, value },
    );
  }
  return value;
}

/** Temporal's default limit on a workflow id's length. */
const RUN_ID_MAX = 1000;

/** A run id as `ttd status`, `wait`, `cancel` and `approve` take it: what `ttd run` printed, checked before the server is
 * asked (an empty or overlong one would otherwise come back as the server's own error). */
export function runIdArgument(value: string): string {
  const fail = (why: string) =>
    new TtdError(
      ErrorCode.argumentInvalid,
      `run id '${value.slice(0, 120)}${value.length > 120 ? '…' : ''}' ${why}; expected a run id as ttd run printed it (ttd runs lists them)`,
      { value: value.slice(0, RUN_ID_MAX + 100) },
    );
  if (!value.trim()) throw fail('is empty');
  if (value.length > RUN_ID_MAX) throw fail(`is ${value.length} characters long, past Temporal's limit of ${RUN_ID_MAX}`);
  return value;
}

/** Text a person gives that the audit trail records (`ttd approve --by NAME`, `--reason TEXT`): at most `max`
 * characters, so that an approval stays a small update in the run's history and a short audit record. */
export function boundedTextArgument(flag: string, value: string, max: number): string {
  if (value.length > max) {
    throw new TtdError(
      ErrorCode.argumentInvalid,
      `${flag} '${value.slice(0, 60)}…' is ${value.length} characters long; expected at most ${max}`,
      { flag, value: value.slice(0, max + 100) },
    );
  }
  return value;
}
