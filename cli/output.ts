// Printing for every command: human text or one JSON object, and one way to report errors.
import { TtdError } from '../lib/errors';

/** Whether stderr progress may use colour (NO_COLOR respected, terminals only). */
export const useColor = process.stderr.isTTY && !process.env.NO_COLOR;

/** Dims or colours text for terminals; plain otherwise. */
export const paint = {
  green: (s: string) => (useColor ? `\x1b[32m${s}\x1b[0m` : s),
  red: (s: string) => (useColor ? `\x1b[31m${s}\x1b[0m` : s),
  dim: (s: string) => (useColor ? `\x1b[2m${s}\x1b[0m` : s),
  bold: (s: string) => (useColor ? `\x1b[1m${s}\x1b[0m` : s),
};

/** Writes JSON when asked, else one human line. */
export function printJsonOr(json: boolean, value: unknown, line: string): void {
  if (json) printJson(value);
  else process.stdout.write(`${line}\n`);
}

/** Writes one JSON document to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Formats rows as aligned columns. */
export function table(rows: string[][], indent = '  '): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

/** The gates as a table, then every warning, then the full message of a failed gate (it says what to change). */
export function gateLines(gates: { gate: string; passed: boolean; code: string | null; message: string; warnings?: string[] }[]): string[] {
  const out = [table(gates.map((g) => [g.gate, g.passed ? 'passed' : 'FAILED', g.code ?? '', clip(g.message.split('\n')[0], 110)]))];
  for (const g of gates) for (const w of g.warnings ?? []) out.push(`  warning (${g.gate}): ${w}`);
  for (const g of gates.filter((x) => !x.passed)) {
    out.push(`${g.gate} gate: ${g.code}`);
    out.push(...g.message.split('\n').map((line) => `  ${line}`));
  }
  return out;
}

/** Shortens a line for a table cell; the full text is printed elsewhere. */
export function clip(line: string, width: number): string {
  return line.length > width ? `${line.slice(0, width - 1)}…` : line;
}

export { sci } from '../lib/format';

/** Reports an error the way every command does: message on stderr (or JSON), exit code 2. */
export function failWith(err: unknown, json: boolean): never {
  const code = err instanceof TtdError ? err.code : 'internal';
  const message = err instanceof Error ? err.message : String(err);
  if (json) printJson({ status: 'failed', error: { code, message } });
  process.stderr.write(`ttd: ${message}${err instanceof TtdError ? ` [${code}]` : ''}\n`);
  if (!(err instanceof TtdError) && process.env.TTD_LOG_LEVEL === 'debug' && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exit(2);
}
