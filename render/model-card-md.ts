// A model card as Markdown (`ttd card`). Every string from a spec or a store record is escaped so that it reads as the
// text it is: no raw HTML, no link, emphasis, heading or table cell a spec's author (or a store writer) did not get
// from us; control characters are shown as `\x1b` as on the terminal (render/terminal.ts).
import type { CardEvidence, CardFactValue, ModelCard } from '../lib/registry/model-card';
import { sci } from './format';
import { num } from './html';
import { terminalJson, terminalLine } from './terminal';

/** Characters Markdown (CommonMark with GitHub's tables, strikethrough and math) acts on anywhere in a line. */
const INLINE = /[\\`*_[\]<>|~&$]/g;
/** ASCII punctuation: any of it may be backslash-escaped, and at the start of a line some of it starts a block. */
const PUNCTUATION = /^[!"#%'()+,\-./:;=?@^{}]/;

/** Untrusted text as one line of Markdown that renders as exactly that text: newlines and tabs become spaces, control
 * characters are shown escaped, every character with a meaning inline is backslash-escaped, and leading spaces are
 * dropped. `atLineStart`: the text begins a line's content (a list item), so what would start a block there (`# `,
 * `- `, `1. `, `=`) is escaped too. */
export function mdText(value: unknown, atLineStart = false): string {
  let s = terminalLine(String(value ?? '').replace(/\r\n|[\r\n\t]/g, ' ')).trim();
  let lead = '';
  const ordered = /^(\d{1,9})([.)])/.exec(s);
  if (!atLineStart) {
    // Mid-line (a table cell, after a label) nothing starts a block; a leading `#` or `1.` is plain text there.
  } else if (ordered) {
    lead = `${ordered[1]}\\${ordered[2]}`;
    s = s.slice(ordered[0].length);
  } else if (PUNCTUATION.test(s)) {
    lead = `\\${s[0]}`;
    s = s.slice(1);
  }
  return lead + s.replace(INLINE, '\\$&');
}

/** Untrusted text as an inline code span on one line (digests, names, versions): a fence longer than any run of
 * backticks inside, control characters shown escaped; in a table cell, `|` escaped so it cannot end the cell. */
export function mdCode(value: unknown, inTable = false): string {
  let s = terminalLine(String(value ?? '').replace(/\r\n|[\r\n\t]/g, ' '));
  if (inTable) s = s.replace(/\|/g, '\\|');
  if (s === '') return '—';
  const longest = Math.max(0, ...(s.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  const pad = s.startsWith('`') || s.endsWith('`') || /^ .* $/.test(s) ? ' ' : '';
  return `${fence}${pad}${s}${pad}${fence}`;
}

/** A fenced block of JSON (the spec's params): exact JSON, DEL, C1 and bidi controls as \u escapes. */
export function mdJson(value: unknown): string {
  const text = terminalJson(JSON.stringify(value, null, 2) ?? 'null');
  const longest = Math.max(2, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}json\n${text}\n${fence}`;
}

/** A GitHub table; the head is ours, each cell is Markdown already (one line, `|` escaped). */
export function mdTable(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => (c === '' ? ' ' : c)).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

const code = (v: unknown) => mdCode(v, true);
const orDash = (v: string | number | null | undefined, shown: (x: string | number) => string = (x) => mdText(x)) =>
  v === null || v === undefined || v === '' ? '—' : shown(v);
const bytes = (n: number | null) => (n === null ? 'not recorded' : `${n} bytes`);
const verdict = (passed: boolean) => (passed ? 'passed' : '**FAILED**');

/** One fact's value for a sentence: numbers in their shortest honest form, errors in exponent notation. */
function factValue(name: string, value: CardFactValue): string {
  if (value === null) return '—';
  if (typeof value === 'number') return /error|atol|rtol/.test(name) ? sci(value) : Number.isInteger(value) ? String(value) : num(value);
  return mdText(String(value));
}

/** A stage's evidence as one line: `verify: cases 9, cases_agreeing 9, max_abs_error 0`. */
export function evidenceLine(e: CardEvidence): string {
  const facts = Object.entries(e.facts).map(([k, v]) => `${mdText(k.replace(/_/g, ' '))} ${factValue(k, v)}`);
  return `${code(e.stage)}: ${facts.length ? facts.join(', ') : 'no facts recorded'}`;
}

/** Losses as a row of block characters, lowest ▁ to highest █ (a gap for a non-finite loss). */
export function sparkline(losses: (number | null)[]): string {
  const finite = losses.filter((l): l is number => l !== null && Number.isFinite(l));
  if (!finite.length) return '';
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const blocks = '▁▂▃▄▅▆▇█';
  return losses
    .map((l) => (l === null || !Number.isFinite(l) ? ' ' : blocks[hi === lo ? 3 : Math.round(((l - lo) / (hi - lo)) * 7)]))
    .join('');
}

/** Renders a card as a Markdown document. */
export function renderCardMarkdown(card: ModelCard): string {
  const out: string[] = [];
  const push = (...blocks: string[]) => out.push(...blocks);

  push(`# Model card: ${mdCode(card.model)} version ${card.version}`);
  const aliases = card.aliases.length ? card.aliases.map((a) => mdCode(a)).join(', ') : 'none';
  push(
    `Aliases: ${aliases}. Created ${mdText(card.createdAt)}.${card.kept ? ` Registered without moving an alias: ${mdCode(card.kept)}.` : ''}`,
  );

  push('## What it is');
  push(
    mdTable(
      ['', ''],
      [
        ['model', code(card.model)],
        ['version', String(card.version)],
        ['digest', code(card.digest)],
        ['spec digest', code(card.spec.digest)],
        [card.spec.foreign ? 'artifact (as the spec names it)' : 'model file (as the spec names it)', orDash(card.spec.model, code)],
        ['model file digest', card.spec.modelFile ? `${code(card.spec.modelFile.digest)} (${bytes(card.spec.modelFile.bytes)})` : '—'],
        ['environment', orDash(card.environment.name, code)],
        ['torch', orDash(card.environment.torchVersion, code)],
        ['run id', code(card.run.runId)],
        ['actor', mdText(card.run.actor)],
        ['trigger', orDash(card.run.trigger)],
        ['commit', orDash(card.run.commit, code)],
      ],
    ),
  );
  push('### Artifacts');
  push(
    mdTable(
      ['format', 'digest', 'size', 'references'],
      card.artifacts.map((a) => [code(a.format), code(a.digest), bytes(a.bytes), orDash(a.references, code)]),
    ),
  );
  if (card.environment.base) {
    push('### Declared environment');
    push(
      `Base ${code(card.environment.base)}, digest ${orDash(card.environment.digest, code)}; ${card.environment.resolved.length} resolved packages:`,
      card.environment.resolved.length ? card.environment.resolved.map((p) => `- ${code(p)}`).join('\n') : '- none',
    );
  }

  push("## Intended use, limitations and owners (the spec's author)");
  if (!card.author) push("The spec's author wrote no `card:` section: no intended use, limitations or owners are stated.");
  else {
    const a = card.author;
    push(
      [
        `- **Intended use:** ${a.intendedUse === null ? 'not stated' : mdText(a.intendedUse)}`,
        `- **Owners:** ${a.owners.length ? a.owners.map((o) => mdText(o)).join(', ') : 'not stated'}`,
        `- **Limitations:**${a.limitations.length ? '' : ' not stated'}`,
        ...a.limitations.map((l) => `  - ${mdText(l, true)}`),
      ].join('\n'),
    );
  }

  push('## Training data');
  push(
    card.data.source === 'foreign'
      ? 'A foreign artifact: trained elsewhere, checked against the reference inputs and outputs its spec names.'
      : `Made by the model file's \`dataset(params, split)\`${card.data.trainingRows === null ? '' : `: ${card.data.trainingRows} training rows`}.`,
  );
  push(
    mdTable(
      ['role', 'formats', 'digest', 'size'],
      card.data.files.map((f) => [
        mdText(f.role.replace(/_/g, ' ')),
        f.formats.length ? f.formats.map(code).join(', ') : '—',
        code(f.digest),
        bytes(f.bytes),
      ]),
    ),
  );
  push(`Not recorded: ${mdText(card.data.notRecorded)}.`);

  push('## Parameters');
  push(Object.keys(card.parameters).length ? mdJson(card.parameters) : 'The spec sets no `params`.');
  if (card.training) {
    push('### Training settings');
    push(
      mdTable(
        ['setting', 'value'],
        Object.entries(card.training).map(([k, v]) => [code(k), code(JSON.stringify(v))]),
      ),
    );
  }

  push('## Metrics and loss curve');
  if (!card.metrics) push('No training metrics: nothing was trained.');
  else {
    const m = card.metrics;
    push(
      `${m.epochs ?? '—'} epochs on ${m.rows ?? '—'} rows; final training loss ${m.finalLoss === null ? '—' : num(m.finalLoss)}.`,
      m.losses.length ? `Loss by epoch: \`${sparkline(m.losses)}\`` : 'No losses recorded.',
      mdTable(
        ['epoch', 'loss'],
        m.losses.map((l, i) => [String(i + 1), l === null ? 'not finite' : String(l)]),
      ),
    );
  }

  push('## Gates');
  push(
    mdTable(
      ['gate', 'verdict', 'code', 'message'],
      card.gates.map((g) => [code(g.gate), verdict(g.passed), orDash(g.code, code), mdText(g.message)]),
    ),
  );
  push('### Evidence');
  push(
    card.gates
      .map((g, i) =>
        [
          `${i + 1}. ${code(g.gate)} ${g.passed ? 'passed' : `**FAILED** (${orDash(g.code, code)})`}`,
          ...g.evidence.map((e) => `   - ${evidenceLine(e)}`),
          ...(g.evidence.length ? [] : ['   - no stage output backs this gate in the store']),
          ...g.warnings.map((w) => `   - warning: ${mdText(w)}`),
        ].join('\n'),
      )
      .join('\n'),
  );

  push('## Parity');
  if (!card.parity) push('No parity check is recorded for this version.');
  else {
    const p = card.parity;
    push(
      `Every runtime × format run against the eager references, within atol ${sci(p.atol)} and rtol ${sci(p.rtol)}: ${verdict(p.passed)}.`,
    );
    push(
      mdTable(
        ['format', 'runtime', 'environment', 'mode', 'version', 'max abs error', 'max rel error', 'atol', 'rtol', 'verdict'],
        p.rows.map((r) => [
          code(r.format),
          code(r.runtime),
          orDash(r.environment, code),
          mdText(r.mode),
          orDash(r.version, code),
          sci(r.maxAbsError),
          sci(r.maxRelError),
          sci(r.atol),
          sci(r.rtol),
          r.passed ? 'agrees' : `**FAILED** ${orDash(r.code, code)}`,
        ]),
      ),
    );
  }

  push('## Approvals and promotions');
  push(
    card.audit.verified
      ? 'The audit chain verifies (links, signatures and anchor, as `ttd pull` checks them).'
      : `**The audit chain does not verify** at ${code(card.audit.problem?.key)}: ${mdText(card.audit.problem?.reason)} (${code(card.audit.problem?.code)}); only the records before it are listed. See ${mdCode(`ttd audit verify ${card.model}`)}.`,
  );
  if (card.approval) push(`Approved by ${mdText(card.approval.by)}${card.approval.reason ? `: ${mdText(card.approval.reason)}` : ''}.`);
  push(
    card.audit.records.length
      ? mdTable(
          ['seq', 'at', 'action', 'alias', 'version', 'actor', 'approved by', 'reason', 'run id'],
          card.audit.records.map((r) => [
            String(r.seq),
            mdText(r.at),
            `${code(r.action)}${r.concerns === 'moved_away' ? ' (moved the alias away)' : ''}`,
            orDash(r.alias, code),
            r.version === null ? '—' : `${r.previousVersion ?? '—'} → ${r.version}`,
            mdText(r.actor),
            orDash(r.approvedBy),
            orDash(r.reason),
            orDash(r.runId, code),
          ]),
        )
      : 'No audit record concerns this version.',
  );

  push('## Signatures');
  push(
    card.signatures.length
      ? card.signatures
          .map((s) => `- ${mdText(s.kind)}: ${code(s.digest)}${s.keyId ? `, key ${code(s.keyId)}` : ''} (${code(s.fetch)})`)
          .join('\n')
      : 'No signature or provenance is stored with this version.',
  );

  push(`---\nBuilt by ttd from the version record, the manifest and the audit chain in the store (${mdCode(card.format)}).`);
  return `${out.join('\n\n')}\n`;
}
