// Printing for every command: human text or one JSON object, and one way to report errors. Everything a command
// prints goes through writeOut or writeErr, which let no terminal control through but our own colours.
import { CliCode, TtdError, type JsonErrorCode } from '../lib/contract/errors';
import { terminalJson, terminalLine, terminalText } from '../render/terminal';
import type { GateResult } from '../lib/contract/results';
import type { Divergence } from '../lib/contract/ops';

/** Whether stderr progress may use colour (NO_COLOR respected, terminals only). */
export const useColor = process.stderr.isTTY && !process.env.NO_COLOR;

/** Dims or colours text for terminals; plain otherwise. */
export const paint = {
  green: (s: string) => (useColor ? `\x1b[32m${s}\x1b[0m` : s),
  red: (s: string) => (useColor ? `\x1b[31m${s}\x1b[0m` : s),
  dim: (s: string) => (useColor ? `\x1b[2m${s}\x1b[0m` : s),
  bold: (s: string) => (useColor ? `\x1b[1m${s}\x1b[0m` : s),
};

/** The escape sequences `paint` writes: the only ones let through, and only while colour is on. */
const OWN_COLOURS = /(\x1b\[(?:0|1|2|31|32)m)/;

/** Text for a terminal: newlines and tabs kept, our own colours kept while colour is on, every other control
 * character (escape sequences, carriage returns, C1, bidi overrides) shown escaped. */
export function forTerminal(text: string, colour: boolean = useColor): string {
  return text
    .split(OWN_COLOURS)
    .map((part, i) => (i % 2 === 1 && colour ? part : terminalText(part)))
    .join('');
}

/** Writes text to stdout, made safe for a terminal. */
export function writeOut(text: string): void {
  process.stdout.write(forTerminal(text));
}

/** Writes text to stderr, made safe for a terminal. */
export function writeErr(text: string): void {
  process.stderr.write(forTerminal(text));
}

/** Writes JSON when asked, else one human line. */
export function printJsonOr(json: boolean, value: unknown, line: string): void {
  if (json) printJson(value);
  else writeOut(`${line}\n`);
}

/** Writes one JSON document to stdout: exact JSON, with DEL, C1 and bidi controls inside strings as \u escapes. */
export function printJson(value: unknown): void {
  process.stdout.write(`${terminalJson(JSON.stringify(value, null, 2))}\n`);
}

/** Formats rows as aligned columns; a cell is one line, so its newlines and other controls are shown escaped. */
export function table(rows: string[][], indent = '  '): string {
  rows = rows.map((r) => r.map((c) => terminalLine(c)));
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

/** The gates as a table, then every warning, then the full message of a failed gate (it says what to change). */
export function gateLines(gates: Pick<GateResult, 'gate' | 'passed' | 'code' | 'message' | 'warnings' | 'divergence'>[]): string[] {
  const out = [
    table(gates.map((g) => [g.gate, g.passed ? 'passed' : 'FAILED', g.code ?? '', clip(terminalLine(g.message.split('\n')[0]), 110)])),
  ];
  for (const g of gates) for (const w of g.warnings ?? []) out.push(`  warning (${terminalLine(g.gate)}): ${terminalLine(w)}`);
  for (const g of gates.filter((x) => !x.passed)) {
    out.push(`${terminalLine(g.gate)} gate: ${terminalLine(g.code)}`);
    out.push(...g.message.split('\n').map((line) => `  ${terminalLine(line)}`));
    if (g.divergence) out.push(...divergenceLines(g.divergence).map((line) => `  ${terminalLine(line)}`));
  }
  return out;
}

/** The first diverging operator of a failed gate: where the graph keeps it, and both sides' values at its worst element. */
export function divergenceLines(d: Divergence): string[] {
  const values = (v: (number | null)[]) => `[${v.map((x) => (x === null ? 'nan/inf' : Number(x.toPrecision(6)))).join(', ')}]`;
  const module = d.module ? ` in module '${d.module}'` : '';
  return [
    `first diverging operator: ${d.op} (node '${d.node}'${module}) at ${d.location ?? 'no line of the model file'}`,
    `  on case ${d.case}, after ${d.compared} operators that agree; max abs error ${d.max_abs_error ?? 'nan/inf'}`,
    `  eager:    ${values(d.eager)}`,
    `  artifact: ${values(d.artifact)}`,
  ];
}

/** Shortens a line for a table cell; the full text is printed elsewhere. */
export function clip(line: string, width: number): string {
  return line.length > width ? `${line.slice(0, width - 1)}…` : line;
}

export { sci } from '../render/format';

/** Indents every line of a message after the first, so that no line of it can pass for output of its own. */
export function indentLater(message: string): string {
  return message.replace(/\n(?=.)/g, '\n  ');
}

/** Reports an error the way every command does: message on stderr (or JSON), exit code 2. */
export function failWith(err: unknown, json: boolean): never {
  const code: JsonErrorCode = err instanceof TtdError ? err.code : CliCode.internal;
  const message = err instanceof Error ? err.message : String(err);
  if (json) printJson({ status: 'failed', error: { code, message } });
  writeErr(`ttd: ${indentLater(message)}${err instanceof TtdError ? ` [${code}]` : ''}\n`);
  if (!(err instanceof TtdError) && process.env.TTD_LOG_LEVEL === 'debug' && err instanceof Error) writeErr(`${err.stack}\n`);
  process.exit(2);
}
