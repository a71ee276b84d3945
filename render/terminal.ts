// Text that ttd did not write (model files' errors, store records, Temporal memos, the environment) made safe to
// show on a terminal: every character a terminal would act on instead of print is shown as an escape.

/** C0 controls, DEL, C1 controls and the bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069). */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
/** The same without newline and tab, for text whose lines are printed as lines. */
const CONTROLS_BUT_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** How one unsafe character is shown: `\x1b` up to U+00FF, `\u202e` beyond. */
export function escapeCharacter(ch: string): string {
  const code = ch.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** One line of untrusted text: every control character (newline and tab included) and bidi control shown escaped. */
export function terminalLine(text: unknown): string {
  return String(text ?? '').replace(CONTROLS, escapeCharacter);
}

/** Untrusted text that may span lines: newline and tab kept, every other control character shown escaped
 * (a carriage return too, so no line can overwrite another). */
export function terminalText(text: unknown): string {
  return String(text ?? '').replace(CONTROLS_BUT_LINES, escapeCharacter);
}

/** JSON text with DEL, C1 and bidi controls written as \u escapes (JSON.stringify escapes only C0): the same JSON
 * value, and nothing in it a terminal acts on. Outside strings JSON has no such characters, so only strings change. */
export function terminalJson(json: string): string {
  return json.replace(/[\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
