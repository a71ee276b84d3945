// Small helpers shared by the run report and the dashboard pages: escaping, formatting, badges, tables, CSS.
// Everything returns strings; the pages they build load nothing from the network and run no script.
import { createHash } from 'node:crypto';
import { terminalText } from './terminal';

/** Escapes text for HTML content and double-quoted attribute values. Control characters and bidi overrides are
 * shown as `\x1b` or `\u202e` first: invisible in a page, they could reorder what it shows, and a report written
 * to stdout would carry them to a terminal. */
export function esc(value: unknown): string {
  return terminalText(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export { sci } from './format';

/** A plain number for axes and losses: 4 significant digits, exponent notation when very small or large. */
export function num(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (!Number.isFinite(n)) return n > 0 ? '∞' : '−∞';
  if (n === 0) return '0';
  const abs = Math.abs(n);
  if (abs < 1e-3 || abs >= 1e6) return n.toExponential(2);
  return String(Number(n.toPrecision(4)));
}

/** Milliseconds as `1234 ms`, or `—` when unknown. */
export function ms(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '—' : `${Math.round(n)} ms`;
}

/** An ISO time as `2024-05-01 12:00:03Z` inside a <time> element; `—` when unknown. */
export function time(iso: string | null | undefined): string {
  if (!iso) return '—';
  const shown = iso.replace('T', ' ').replace(/\.\d+(?=Z$|[+-]\d\d:\d\d$)/, '');
  return `<time datetime="${esc(iso)}">${esc(shown)}</time>`;
}

/** Text or `—` when null or empty, escaped. */
export function orDash(value: string | number | null | undefined): string {
  return value === null || value === undefined || value === '' ? '—' : esc(value);
}

/** The start of a digest (`sha256:` dropped, 12 hex) with the full digest in its title. */
export function shortDigest(digest: string | null | undefined, length = 12): string {
  if (!digest) return '—';
  const hex = digest.startsWith('sha256:') ? digest.slice('sha256:'.length) : digest;
  return `<code class="digest" title="${esc(digest)}">${esc(hex.slice(0, length))}</code>`;
}

/** Colours a badge can have. */
export const Tone = { ok: 'ok', bad: 'bad', neutral: 'neutral', info: 'info' } as const;
export type Tone = (typeof Tone)[keyof typeof Tone];

/** A small coloured label. */
export function badge(text: string, tone: Tone = Tone.neutral, testId?: string): string {
  const id = testId ? ` data-testid="${esc(testId)}"` : '';
  return `<span class="badge ${tone}"${id}>${esc(text)}</span>`;
}

/** The tone of a run or version status: promoted/ready green, rejected/failed red, anything else grey. */
export function statusTone(status: string): Tone {
  if (status === 'promoted' || status === 'ready') return Tone.ok;
  if (status === 'rejected' || status === 'failed') return Tone.bad;
  return Tone.neutral;
}

/** A status as a coloured badge. */
export function statusBadge(status: string, testId?: string): string {
  return badge(status, statusTone(status), testId);
}

/** A link to a path or URL; `href` is escaped, the label is HTML already. */
export function link(href: string, labelHtml: string, testId?: string, title?: string): string {
  const id = testId ? ` data-testid="${esc(testId)}"` : '';
  const t = title ? ` title="${esc(title)}"` : '';
  return `<a href="${esc(href)}"${id}${t}>${labelHtml}</a>`;
}

/** A table; `head` is escaped text, each cell is HTML already. `rowIds` gives rows a data-testid. */
export function table(
  head: string[],
  rows: string[][],
  opts: { testId?: string; rowIds?: (string | null)[]; className?: string } = {},
): string {
  const id = opts.testId ? ` data-testid="${esc(opts.testId)}"` : '';
  const cls = opts.className ? ` class="${esc(opts.className)}"` : '';
  const body = rows
    .map((cells, i) => {
      const rid = opts.rowIds?.[i] ? ` data-testid="${esc(opts.rowIds[i])}"` : '';
      return `<tr${rid}>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
    })
    .join('\n');
  return `<div class="scroll"><table${id}${cls}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

/** A whole HTML document with the shared inline stylesheet; nothing in it is loaded from elsewhere. Its policy
 * (PAGE_POLICY) comes first in <head>, so a file opened from disk is held to it as the dashboard's pages are. */
export function htmlDocument(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(PAGE_POLICY)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

/** The one stylesheet of every page: system fonts, a readable width, bordered tables, monospace for digests and IR. */
export const CSS = `
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg-alt: #f6f8fa; --ok: #1a7f37; --bad: #cf222e; --info: #0969da; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 1.5rem; color: var(--fg); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; padding-bottom: .25rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1.25rem 0 .4rem; }
a { color: var(--info); }
code, pre, .mono, .digest { font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: .9em; }
pre { background: var(--bg-alt); border: 1px solid var(--line); border-radius: 6px; padding: .75rem; overflow: auto; max-height: 40rem; }
pre.msg { background: none; border: 0; padding: 0; margin: 0; white-space: pre-wrap; word-break: break-word; font: inherit; max-height: none; }
div.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; width: 100%; }
table.compact { font-size: .85em; }
time { white-space: nowrap; }
th, td { border: 1px solid var(--line); padding: .35rem .6rem; text-align: left; vertical-align: top; }
th { background: var(--bg-alt); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: .5rem 0 1rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-all; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .85em; font-weight: 600; color: #fff; background: #6e7781; }
.badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); } .badge.info { background: var(--info); }
.muted, .absent { color: var(--muted); }
.absent { font-style: italic; }
.banner { padding: .6rem .9rem; border-radius: 6px; border: 1px solid; margin: .75rem 0; font-weight: 600; }
.banner.ok { color: var(--ok); border-color: var(--ok); background: #dafbe1; }
.banner.bad { color: var(--bad); border-color: var(--bad); background: #ffebe9; }
details { margin: .4rem 0; }
figure { margin: .75rem 0; }
summary { cursor: pointer; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--muted); }
svg .axis { stroke: #8c959f; stroke-width: 1; }
svg .grid { stroke: #eaeef2; stroke-width: 1; }
svg .line { fill: none; stroke: var(--info); stroke-width: 2; }
svg .point { fill: var(--info); }
svg .bar { fill: var(--info); }
svg .bar.cached { fill: #8c959f; }
svg .bar.bad { fill: var(--bad); }
svg text.count { fill: var(--fg); }
nav.top { display: flex; gap: 1.25rem; align-items: baseline; padding-bottom: .75rem; margin-bottom: 1rem; border-bottom: 1px solid var(--line); }
nav.top .brand { font-weight: 700; }
code.check.bad { color: var(--bad); }
ul.warnings { margin: .25rem 0 0; padding-left: 1.2rem; color: #9a6700; }
.runtime { margin: 1rem 0; padding: .5rem .9rem; border: 1px solid var(--line); border-radius: 6px; }
`;

/** The Content-Security-Policy of every page: nothing may load or run but the one stylesheet above, named by its
 * hash; no forms, no <base>. (`frame-ancestors` works only as a header: the dashboard sends it, see DASHBOARD_POLICY.) */
export const PAGE_POLICY = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(CSS).digest('base64')}'`,
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/** The policy the dashboard sends as a header: the page policy, and no framing by any other page (clickjacking). */
export const DASHBOARD_POLICY = `${PAGE_POLICY}; frame-ancestors 'none'`;
