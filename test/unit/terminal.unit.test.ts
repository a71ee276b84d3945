// Untrusted text on a terminal: every control character, C1 control and bidi override is shown escaped, in lines,
// tables, gate messages, JSON and HTML; only our own colours pass the sinks, and only while colour is on.
import { describe, expect, it } from 'vitest';
import { forTerminal, gateLines, table } from '../../cli/output';
import { esc } from '../../render/html';
import { errorPage } from '../../render/ui-html';
import { escapeCharacter, terminalJson, terminalLine, terminalText } from '../../render/terminal';

/** What a hostile model file's error said in the attack of issue 14: a new title, a cleared line, a fake verdict. */
const ATTACK = '\x1b]0;pwned\x07\x1b[2K\r\x1b[1A\x1b[2K\x1b[32mALL GATES PASSED\x1b[0m\u009b2K\u202egnirts';

/** Every character render/terminal.ts promises to escape. */
const UNSAFE = [
  ...Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)),
  '\x7f',
  ...Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(0x80 + i)),
  ...['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069'],
];

/** Any byte or character a terminal acts on rather than prints. */
const ACTS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe('terminal-safe text', () => {
  it('terminalLine shows every C0, DEL, C1 and bidi control as \\xHH or \\uHHHH, newline and tab included', () => {
    for (const ch of UNSAFE) {
      const shown = terminalLine(`a${ch}b`);
      expect(shown, `U+${ch.charCodeAt(0).toString(16)}`).toBe(`a${escapeCharacter(ch)}b`);
      expect(shown).not.toMatch(ACTS);
      expect(shown).not.toContain('\n');
    }
    expect(terminalLine('\x1b[2K')).toBe('\\x1b[2K');
    expect(terminalLine('\u009b')).toBe('\\x9b');
    expect(terminalLine('\u202e')).toBe('\\u202e');
    expect(terminalLine('a\nb\tc')).toBe('a\\x0ab\\x09c');
  });

  it('terminalText keeps newline and tab but escapes a carriage return, so no line overwrites another', () => {
    expect(terminalText('one\ntwo\tthree\rfour')).toBe('one\ntwo\tthree\\x0dfour');
    expect(terminalText(ATTACK)).toBe(
      '\\x1b]0;pwned\\x07\\x1b[2K\\x0d\\x1b[1A\\x1b[2K\\x1b[32mALL GATES PASSED\\x1b[0m\\x9b2K\\u202egnirts',
    );
  });

  it('printable text, non-Latin scripts and emoji pass unchanged, and null or undefined become empty', () => {
    const plain = 'seed-mlp v3 → production ✓ 模型 модель 🚀 \\x1b (a literal backslash stays as it is)';
    expect(terminalLine(plain)).toBe(plain);
    expect(terminalText(plain)).toBe(plain);
    expect(terminalLine(undefined)).toBe('');
    expect(terminalLine(null)).toBe('');
  });

  it('terminalJson writes DEL, C1 and bidi controls as \\u escapes, and the JSON still parses to the exact value', () => {
    const value = { message: ATTACK, actor: 'mallory\u202e\u2066', n: 1 };
    const json = terminalJson(JSON.stringify(value, null, 2));
    expect(json).not.toMatch(ACTS);
    expect(json).toContain('\\u009b2K');
    expect(json).toContain('\\u202e');
    expect(JSON.parse(json)).toEqual(value);
  });

  it('the sink filter drops nothing but lets no escape through when colour is off (tests run without a terminal)', () => {
    const shown = forTerminal(`ttd: ${ATTACK}\nsecond line\n`);
    expect(shown).not.toMatch(ACTS);
    expect(shown).toContain('ALL GATES PASSED');
    expect(shown.split('\n')).toEqual([`ttd: ${terminalText(ATTACK)}`, 'second line', '']);
    // Our own colour codes are escaped too when colour is off: an attacker could not tell ours from theirs.
    expect(forTerminal('\x1b[32mok\x1b[0m')).toBe('\\x1b[32mok\\x1b[0m');
  });

  it('with colour on, the sink keeps our five colour codes and escapes every other sequence, concealment included', () => {
    expect(forTerminal('\x1b[32mpromoted\x1b[0m \x1b[1mrun\x1b[0m \x1b[2mdim\x1b[0m \x1b[31mno\x1b[0m', true)).toBe(
      '\x1b[32mpromoted\x1b[0m \x1b[1mrun\x1b[0m \x1b[2mdim\x1b[0m \x1b[31mno\x1b[0m',
    );
    const shown = forTerminal('\x1b[8mhidden\x1b[2K\x1b[1A\x1b]0;title\x07\x1b[32;1mx', true);
    expect(shown).toBe('\\x1b[8mhidden\\x1b[2K\\x1b[1A\\x1b]0;title\\x07\\x1b[32;1mx');
  });

  it('a table cell is one line: a newline in an actor cannot start a fake row, and the columns stay aligned', () => {
    const out = table([
      ['who', 'why'],
      ['alice\nALL GATES PASSED', 'ok\r\x1b[2K'],
    ]);
    expect(out.split('\n')).toEqual(['  who                        why', '  alice\\x0aALL GATES PASSED  ok\\x0d\\x1b[2K']);
  });

  it("a failed gate's first diverging operator follows its message, its node and location escaped", () => {
    const divergence = {
      case: 'validation',
      node: ATTACK,
      op: 'aten::mul',
      module: 'block.1',
      location: `model.py:14`,
      max_abs_error: 0.5,
      eager: [1, null],
      artifact: [0.5, 2],
      compared: 7,
    };
    const lines = gateLines([{ gate: 'trace', passed: false, code: 'control_flow_divergence', message: 'differs', divergence }]);
    const text = lines.join('\n');
    expect(text).not.toMatch(ACTS);
    expect(lines.slice(3)).toEqual([
      `  first diverging operator: aten::mul (node '${terminalLine(ATTACK)}' in module 'block.1') at model.py:14`,
      '    on case validation, after 7 operators that agree; max abs error 0.5',
      '    eager:    [1, nan/inf]',
      '    artifact: [0.5, 2]',
    ]);
  });

  it('gate lines escape the table cell, warnings and the code, and keep a failed message in indented lines', () => {
    const lines = gateLines([
      { gate: 'training', passed: false, code: 'model_error', message: `ValueError: ${ATTACK}\nsecond`, warnings: ['w\nALL GATES PASSED'] },
    ]);
    const text = lines.join('\n');
    expect(text).not.toMatch(ACTS);
    expect(lines[0]).toContain('ValueError: \\x1b]0;pwned');
    expect(lines[1]).toBe('  warning (training): w\\x0aALL GATES PASSED');
    expect(lines[2]).toBe('training gate: model_error');
    expect(lines.slice(3)).toEqual([`  ValueError: ${terminalLine(ATTACK)}`, '  second']);
    expect(
      forTerminal(text)
        .split('\n')
        .filter((l) => l.trim() === 'ALL GATES PASSED'),
    ).toEqual([]);
  });

  it('HTML escaping shows control characters and bidi overrides as text, then escapes markup', () => {
    expect(esc(`<b>${ATTACK}</b>`)).toBe(`&lt;b&gt;${terminalText(ATTACK)}&lt;/b&gt;`);
    expect(esc('line one\nline two')).toBe('line one\nline two');
    expect(errorPage(500, `model error: ${ATTACK}`)).not.toMatch(ACTS);
  });
});
