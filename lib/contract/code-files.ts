// The files generated from the code catalog (./codes.ts): the torch side's list of codes and the table of
// docs/codes.md. infra/gen-contract.js writes them at build time (make setup); test/unit/codes.unit.test.ts fails when
// a committed copy differs from what these give.
import { ALL_CODES, CODES, type CodeEntry, type CodeUse } from './codes';

/** Where each generated file lives, relative to the repository's root. */
export const CODE_FILES = { python: 'runtimes/python/ttd_torch/codes.py', docs: 'docs/codes.md' } as const;

const WIDTH = 120; // ruff.toml's line length

// Words of a comment, wrapped to ruff's width after `# `.
function comment(text: string, indent = ''): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent.length + 2 + line.length + 1 + word.length > WIDTH) {
      lines.push(`${indent}# ${line}`);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(`${indent}# ${line}`);
  return lines;
}

/** runtimes/python/ttd_torch/codes.py: one constant per code, named after it in capitals, with its line of doc. */
export function pythonCodes(): string {
  const out = [
    '"""Every code ttd reports, as constants: generated from lib/contract/codes.ts by infra/gen-contract.js (make setup).',
    '',
    'Do not edit: add or change a code in the catalog and run make setup. docs/codes.md says what each means, its kind,',
    'whether it is retried and the exit code of the command that reports it. The torch side spells no code itself."""',
    '',
    'from typing import Final',
  ];
  for (const code of ALL_CODES) {
    out.push('', ...comment(`${CODES[code].kind}: ${CODES[code].doc}`), `${code.toUpperCase()}: Final = ${JSON.stringify(code)}`);
  }
  return `${out.join('\n')}\n`;
}

const KIND_WORDS: Record<CodeEntry['kind'], string> = {
  verdict: 'gate verdict',
  user: 'user error',
  protocol: 'protocol',
  internal: 'internal',
};

const USE_WORDS: Record<CodeUse, string> = {
  gate: 'gate',
  failure: 'failure type',
  error: 'error.code',
  torch: 'torch error',
  cli: 'ttd run',
  runner: 'runner step',
  safetensors: 'safetensors rule',
};

// A verdict that is also a TtdError's code (a foreign artifact checked when the spec is read) exits 2 as that.
const exitWords = (e: CodeEntry) =>
  e.exit === null ? '—' : e.kind === 'verdict' && e.uses.includes('error') ? `${e.exit} (2 as error.code)` : String(e.exit);

/** docs/codes.md: the catalog as a table. */
export function codesTable(): string {
  const rows = ALL_CODES.map((code) => {
    const e: CodeEntry = CODES[code];
    const meaning = e.doc.replace(/\|/g, '\\|');
    return `| \`${code}\` | ${KIND_WORDS[e.kind]} | ${e.uses.map((u) => USE_WORDS[u]).join(', ')} | ${e.retryable ? 'yes' : 'no'} | ${exitWords(e)} | ${meaning} |`;
  });
  return `${[
    '# Codes',
    '',
    '<!-- Generated from lib/contract/codes.ts by infra/gen-contract.js (make setup); do not edit. -->',
    '',
    "Every code ttd, its torch side, its parity runners and its CLI report, once. A run's gates carry one as `code`",
    '(`ttd run --json`: `gates[].code`, and `parity[].code` per runtime); a command that fails prints one as',
    '`error.code` with `--json` and in brackets without it. The catalog is `lib/contract/codes.ts`; the torch side',
    'imports its codes from `runtimes/python/ttd_torch/codes.py`, generated from it with this page, and a unit test',
    'fails on a code spelled anywhere in the sources that the catalog lacks.',
    '',
    '- **kind**: a *gate verdict* is a finding about the model (the run ends `rejected`); a *user error* is something',
    '  the user can change (a spec, a file, an environment, a model that fails or crashes); a *protocol* word belongs',
    '  to a process protocol (docs/protocol.md; the parity runners\' `{"error": {"stage", "message"}}`); *internal*',
    '  is a fault of ttd or its host.',
    "- **where**: `gate` in a run's gates; `failure type` a stage's failure (Temporal's ApplicationFailure type), which",
    "  becomes its gate's code; `error.code` a command's error; `torch error` the torch side's error response;",
    '  `ttd run` how a followed run ended without a result; `runner step` and `safetensors rule` words inside another',
    "  code's message (docs/trust-safetensors.md).",
    '- **retried**: whether Temporal tries a stage that failed with it again (the same input may succeed).',
    '- **exit**: the exit status of the command that reports it (`ttd run`: 0 promoted, 1 rejected, 2 failed or bad',
    '  input; 130 and 143 when Ctrl-C or SIGTERM ended it); — for a word that is never reported on its own.',
    '',
    '| code | kind | where | retried | exit | meaning |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n')}\n`;
}
