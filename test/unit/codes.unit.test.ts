// The code catalog (lib/contract/codes.ts): one list, the files generated from it fresh, and no code spelled in the
// sources (TypeScript, the torch side, the parity runners, the C++ runner) that is not in it.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CODE_FILES, codesTable, pythonCodes } from '../../lib/contract/code-files';
import { ALL_CODES, CODES, isCode, torchFailure, type CodeUse } from '../../lib/contract/codes';
import { ErrorCode } from '../../lib/contract/errors';
import { GateCode, NON_RETRYABLE_TYPES } from '../../lib/contract/gate-codes';

const ROOT = join(__dirname, '..', '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
/** The repository's files under `pathspec`, as git tracks them (so a new file is scanned once it is added). */
const tracked = (...pathspec: string[]) =>
  execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', ...pathspec], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);

/** A code spelled in a source file, with where. */
interface Spelled {
  file: string;
  line: number;
  code: string;
}

// Codes that name a word of another protocol only (a runner's step, a safetensors rule): short common words ('run',
// 'load') that TypeScript and the torch side use for other things, so only their own contexts are scanned for them.
const WORD_USES: readonly CodeUse[] = ['runner', 'safetensors'];
const isReported = (code: string) => isCode(code) && CODES[code].uses.some((u) => !WORD_USES.includes(u));

/** Each match of a pattern (its first group: the code) in a file's text, comments removed, with its line. */
function spelled(file: string, text: string, patterns: RegExp[]): Spelled[] {
  const out: Spelled[] = [];
  for (const pattern of patterns) {
    for (const m of text.matchAll(pattern)) {
      out.push({ file, line: text.slice(0, m.index).split('\n').length, code: m[1] });
    }
  }
  return out;
}

/** A file's text without its comments (line by line: a comment that starts a line or follows code after a space). */
function withoutComments(text: string, marker: '//' | '#'): string {
  const block = marker === '//' ? text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')) : text;
  const line = marker === '//' ? /(^|\s)\/\/.*$/gm : /(^|\s)#.*$/gm;
  return block.replace(line, '$1');
}

const shown = (found: Spelled[]) =>
  [...found].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line).map((s) => `${s.file}:${s.line} '${s.code}'`);

// --- TypeScript: every tracked source outside the tests and the catalog itself.

// Where a TypeScript source names a code: a `code`, a failure's `type`, a TtdError's first argument.
const TS_CODE_CONTEXTS = [
  /(?<!typeof\s+)\bcode\s*(?::|===|!==|=)\s*'([a-z][a-z0-9_]*)'/g,
  /ApplicationFailure\.create\(\{\s*type:\s*'([a-z][a-z0-9_]*)'/g,
  /new TtdError\(\s*'([a-z][a-z0-9_]*)'/g,
];
// Any string literal, as TypeScript writes it, that is not an object key.
const TS_LITERAL = /['"]([a-z][a-z0-9_]*)['"](?!\s*:)/g;

// Literals that spell a code's name but are not codes: each with why. The test fails when one of them disappears,
// so the list cannot outlive its reason.
const NOT_CODES: { file: string; code: string; why: string }[] = [
  {
    file: 'lib/registry/audit.ts',
    code: 'approval_rejected',
    why: "an audit record's action (docs/trust-audit.md), named like the gate code",
  },
  { file: 'lib/registry/audit.ts', code: 'approval_timeout', why: "an audit record's action, named like the gate code" },
  { file: 'activities/registry-records.ts', code: 'approval_rejected', why: "an audit record's action" },
  { file: 'activities/registry-records.ts', code: 'approval_timeout', why: "an audit record's action" },
  { file: 'workflows/promotion.ts', code: 'approval_rejected', why: "the audit record's action of a rejected approval" },
  { file: 'workflows/promotion.ts', code: 'approval_timeout', why: "the audit record's action of an unanswered approval" },
  { file: 'lib/spec/spec.ts', code: 'approval_timeout', why: "the spec field promote.approval_timeout, in an issue's path" },
];

// Codes of the libraries we use, in their own contexts: zod's issue codes (`ctx.addIssue({ code: 'custom' })`).
const FOREIGN_CODES = new Set(['custom', 'unrecognized_keys', 'invalid_type', 'invalid_value', 'too_small', 'too_big', 'invalid_format']);

function typescriptSources(): string[] {
  const catalog = ['lib/contract/codes.ts', 'lib/contract/code-files.ts'];
  return tracked('*.ts').filter((f) => !f.startsWith('test/') && !f.startsWith('node_modules/') && !catalog.includes(f));
}

/** TypeScript's code literals: in a code's context and not catalogued, or a catalogued code spelled out instead of
 * taken from its view (GateCode, ErrorCode, CliCode, SafetensorsRule), less NOT_CODES. */
export function typescriptFindings(files: { file: string; text: string }[]): {
  unknown: Spelled[];
  literal: Spelled[];
  excused: Spelled[];
} {
  const unknown: Spelled[] = [];
  const literal: Spelled[] = [];
  const excused: Spelled[] = [];
  for (const { file, text } of files) {
    const code = withoutComments(text, '//');
    unknown.push(...spelled(file, code, TS_CODE_CONTEXTS).filter((s) => !isCode(s.code) && !FOREIGN_CODES.has(s.code)));
    for (const s of spelled(file, code, [TS_LITERAL]).filter((x) => isReported(x.code) || /^st_[a-z0-9]/.test(x.code))) {
      (NOT_CODES.some((n) => n.file === file && n.code === s.code) ? excused : literal).push(s);
    }
  }
  return { unknown, literal, excused };
}

// --- Python: the torch side takes every code from its generated codes.py.

// Where the torch side names a code: an error's code, a result's `code`, a (code, message) verdict.
const PY_CODE_CONTEXTS = [
  /(?:ProtocolError|__init__)\(\s*["']([a-z][a-z0-9_]*)["']/g,
  /["']code["']\s*:\s*(?:None if [^\n]* else\s*)?["']([a-z][a-z0-9_]*)["']/g,
  // a (code, message) verdict; a word without an underscore returned first is something else (a form, a kind)
  /\breturn\s+\(?\s*["']([a-z][a-z0-9]*_[a-z0-9_]*)["']\s*,/g,
  /\bcode(?:,\s*\w+)?\s*=\s*\(?\s*["']([a-z][a-z0-9_]*)["']/g, // code = "x", and code, message = ("x", ...)
];
const PY_LITERAL = /["']([a-z][a-z0-9_]*)["'](?!\s*:)/g;

export function torchSideFindings(files: { file: string; text: string }[]): Spelled[] {
  const out: Spelled[] = [];
  for (const { file, text } of files) {
    const code = withoutComments(text, '#');
    // In a context, any literal is a code spelled by hand (catalogued or not); elsewhere, a catalogued one is.
    const inContext = spelled(file, code, PY_CODE_CONTEXTS).filter((s) => isReported(s.code) || !isCode(s.code));
    const loose = spelled(file, code, [PY_LITERAL]).filter((s) => isReported(s.code));
    for (const s of [...inContext, ...loose])
      if (!out.some((o) => o.file === s.file && o.line === s.line && o.code === s.code)) out.push(s);
  }
  return out;
}

// --- The parity runners: ttd_parity_runner.py runs alone (`python -I runner.py` in an empty directory) and the C++
// runner is C++, so both spell their words; each must be catalogued with its use.
const RUNNER_CONTEXTS: { use: CodeUse; patterns: RegExp[] }[] = [
  {
    use: 'runner',
    patterns: [
      /StageError\(\s*"([a-z][a-z0-9_]*)"/g, // C++
      /\bstage\s*=\s*"([a-z][a-z0-9_]*)"/g, // C++: the stage of an untagged error
      /\bstage\(\s*"([a-z][a-z0-9_]*)"/g, // Python: stage("load", ...)
      /^\s*"([a-z][a-z0-9_]*)",\s*$/gm, // Python: stage(\n "write", ...
      /"stage":\s*"([a-z][a-z0-9_]*)"/g, // Python: {"error": {"stage": "args", ...}}
    ],
  },
  {
    use: 'safetensors',
    patterns: [/\breject\(\s*where,\s*"([a-z][a-z0-9_]*)"/g, /\bfail\(\s*"([a-z][a-z0-9_]*)"/g, /^\s*"(st_[a-z0-9_]+)",\s*$/gm],
  },
];

export function runnerFindings(files: { file: string; text: string }[]): { found: Spelled[]; wrong: Spelled[] } {
  const found: Spelled[] = [];
  const wrong: Spelled[] = [];
  for (const { file, text } of files) {
    const code = withoutComments(text, file.endsWith('.py') ? '#' : '//');
    for (const { use, patterns } of RUNNER_CONTEXTS) {
      for (const s of spelled(file, code, patterns)) {
        // A multi-line item pattern sees other strings too: only a runner step or an st_ code counts there.
        if (
          use === 'runner' &&
          /^\s*"/.test(code.split('\n')[s.line - 1]) &&
          !(isCode(s.code) && (CODES[s.code].uses as readonly CodeUse[]).includes('runner'))
        )
          continue;
        found.push(s);
        if (!isCode(s.code) || !(CODES[s.code].uses as readonly CodeUse[]).includes(use)) wrong.push(s);
      }
    }
  }
  return { found, wrong };
}

const sources = (paths: string[]) => paths.map((file) => ({ file, text: read(file) }));

describe('the code catalog', () => {
  it('the committed codes.py and docs/codes.md are what lib/contract/codes.ts generates (run make setup after a change)', () => {
    expect(read(CODE_FILES.python)).toBe(pythonCodes());
    expect(read(CODE_FILES.docs)).toBe(codesTable());
  });

  it('every catalogued code is documented: a line of its own, and a row of docs/codes.md', () => {
    const docs = read('docs/codes.md');
    for (const code of ALL_CODES) {
      expect(CODES[code].doc.length, code).toBeGreaterThan(10);
      expect(docs, code).toContain(`| \`${code}\` |`);
    }
  });

  it('a code is a lowercase word, and its exit code fits its kind: a verdict exits 1, a reported error 2', () => {
    for (const code of ALL_CODES) {
      const e = CODES[code];
      expect(code).toMatch(/^[a-z][a-z0-9_]*$/);
      if (e.kind === 'verdict') expect(e.exit, code).toBe(1);
      else if (e.uses.some((u) => ['gate', 'failure', 'error', 'cli'].includes(u))) expect(e.exit, code).toBe(2);
      if ('as' in e) expect(isCode(e.as), `${code} becomes ${e.as}`).toBe(true);
    }
  });

  it('the views keep their members: a TtdError code, a gate code, the failure types Temporal must not retry', () => {
    expect(ErrorCode.digestMismatch).toBe('digest_mismatch');
    expect(GateCode.nonFiniteLoss).toBe('non_finite_loss');
    expect(ErrorCode.runtimeMismatch).toBe(GateCode.runtimeMismatch); // a code in both views is one code
    expect(NON_RETRYABLE_TYPES).toContain('bad_input');
    expect(NON_RETRYABLE_TYPES).not.toContain('model_crashed');
    expect(NON_RETRYABLE_TYPES).not.toContain('torch_internal');
  });

  it("the torch side's error codes become their failure types: bad_request bad_input, internal torch_internal (retried)", () => {
    expect(torchFailure('bad_request')).toEqual({ type: 'bad_input', retryable: false });
    expect(torchFailure('model_error')).toEqual({ type: 'model_error', retryable: false });
    expect(torchFailure('sandbox_refused')).toEqual({ type: 'sandbox_refused', retryable: false });
    expect(torchFailure('internal')).toEqual({ type: 'torch_internal', retryable: true });
    expect(torchFailure('something_new')).toEqual({ type: 'torch_internal', retryable: true });
    expect(torchFailure('spec_invalid')).toEqual({ type: 'torch_internal', retryable: true }); // not a torch error code
  });

  it('no TypeScript source spells a code: it takes it from a view of the catalog, and names only catalogued ones', () => {
    const files = typescriptSources();
    expect(files).toContain('cli/run.ts');
    const { unknown, literal, excused } = typescriptFindings(sources(files));
    expect(shown(unknown), 'codes the catalog lacks').toEqual([]);
    expect(shown(literal), 'codes spelled out: use GateCode, ErrorCode, CliCode or SafetensorsRule').toEqual([]);
    for (const n of NOT_CODES)
      expect(
        excused.some((s) => s.file === n.file && s.code === n.code),
        `${n.file}: ${n.code}`,
      ).toBe(true);
  });

  it('no Python source of the torch side spells a code: it takes every one from its generated codes.py', () => {
    const files = tracked('runtimes/python/ttd_torch/*.py').filter((f) => f !== CODE_FILES.python);
    expect(files).toContain('runtimes/python/ttd_torch/gate.py');
    expect(shown(torchSideFindings(sources(files)))).toEqual([]);
  });

  it("the parity runners (Python, ONNX Runtime's and C++) name only catalogued steps and safetensors rules", () => {
    const files = [
      ...tracked('runtimes/libtorch/*.cpp', 'runtimes/libtorch/*.hpp'),
      'runtimes/python/ttd_parity_runner.py',
      'runtimes/python/ttd_onnx_runner.py',
    ];
    const { found, wrong } = runnerFindings(sources(files));
    expect(shown(wrong)).toEqual([]);
    // The scan sees every step and every rule of both runners (a pattern that stopped matching would pass vacuously).
    const seen = new Set(found.map((s) => s.code));
    for (const code of ALL_CODES.filter((c) => (CODES[c].uses as readonly CodeUse[]).some((u) => WORD_USES.includes(u)))) {
      expect(seen.has(code), code).toBe(true);
    }
  });

  it('the scans catch a code added by hand in each language', () => {
    const ts = typescriptFindings([
      { file: 'x.ts', text: "throw ApplicationFailure.create({ type: 'made_up', message: 'm' });\nconst c = 'model_error';" },
    ]);
    expect(shown(ts.unknown)).toEqual(["x.ts:1 'made_up'"]);
    expect(shown(ts.literal)).toEqual(["x.ts:2 'model_error'"]);
    const py = torchSideFindings([
      { file: 'x.py', text: 'def f():\n    return "made_up", "why"\n\nraise ProtocolError("bad_request", "m")\n' },
    ]);
    expect(shown(py)).toEqual(["x.py:2 'made_up'", "x.py:4 'bad_request'"]);
    const cpp = runnerFindings([{ file: 'x.cpp', text: 'throw StageError("unpack", "m");\nreject(where, "st_made_up", "m");' }]);
    expect(shown(cpp.wrong)).toEqual(["x.cpp:1 'unpack'", "x.cpp:2 'st_made_up'"]);
  });
});
