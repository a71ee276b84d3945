// Pages of the read-only dashboard (`ttd ui`): plain data in, a self-contained HTML document out.
// No scripts and nothing loaded from elsewhere; every string from the registry or Temporal is escaped.
import type { AuditRecord, TrailVerdict } from '../lib/registry/audit';
import type { ModelCard } from '../lib/registry/model-card';
import { Tone, badge, esc, htmlDocument, link, orDash, shortDigest, statusBadge, table, time } from './html';
import { cardSections } from './model-card-html';

/** One model in the models list. */
export interface ModelSummary {
  name: string;
  versions: number;
  latestVersion: number | null;
  aliases: Record<string, number>;
  updatedAt: string | null;
}

/** One version of a model, as its page lists it. */
export interface VersionRow {
  version: number;
  digest: string;
  status: string;
  aliases: string[];
  createdAt: string;
  runId: string;
  trigger: string | null;
  commit: string | null;
  actor: string | null;
  /** The version's formats (torchscript, aoti, onnx), each pulled with `ttd pull --format`. */
  formats: string[];
}

/** A model's page: its versions, where its aliases point now, and every alias move. */
export interface ModelDetail {
  name: string;
  versions: VersionRow[];
  aliases: Record<string, { version: number; digest: string; updatedAt: string }>;
  aliasHistory: {
    alias: string;
    version: number;
    digest: string;
    previousVersion: number | null;
    at: string;
    runId: string;
    actor: string;
  }[];
}

/** One workflow run in the runs list. */
export interface RunRow {
  runId: string;
  model: string | null;
  status: string;
  startedAt: string | null;
  closedAt: string | null;
  trigger: string | null;
  commit: string | null;
}

/** Paths of the dashboard, built in one place so every link encodes its parts the same way. */
export const paths = {
  models: () => '/',
  runs: () => '/runs',
  model: (name: string) => `/models/${encodeURIComponent(name)}`,
  audit: (name: string) => `/models/${encodeURIComponent(name)}/audit`,
  versionReport: (name: string, version: number) =>
    `/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(String(version))}/report`,
  versionCard: (name: string, version: number) =>
    `/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(String(version))}/card`,
  runReport: (runId: string) => `/runs/${encodeURIComponent(runId)}/report`,
} as const;

/** A whole dashboard page: the top nav (Models, Runs) and the body. */
export function layout(title: string, body: string): string {
  const nav = `<nav class="top"><span class="brand">ttd</span>${link(paths.models(), 'Models', 'nav-models')}${link(paths.runs(), 'Runs', 'nav-runs')}</nav>`;
  return htmlDocument(`${title} · ttd`, `${nav}\n<main>\n${body}\n</main>`);
}

/** The models list. */
export function modelsPage(models: ModelSummary[]): string {
  const content = models.length
    ? table(
        ['model', 'versions', 'latest', 'aliases', 'updated'],
        models.map((m) => [
          link(paths.model(m.name), esc(m.name), `model-link-${m.name}`),
          esc(m.versions),
          m.latestVersion === null ? '—' : `v${esc(m.latestVersion)}`,
          aliasList(m.aliases),
          time(m.updatedAt),
        ]),
        { rowIds: models.map((m) => `model-${m.name}`) },
      )
    : '<p class="absent">no models registered yet; ttd run a pipeline</p>';
  return layout('Models', `<h1>Models</h1>\n<section data-testid="models">\n${content}\n</section>`);
}

function aliasList(aliases: Record<string, number>): string {
  const entries = Object.entries(aliases).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? entries.map(([alias, v]) => `<code>${esc(alias)}</code> → v${esc(v)}`).join('<br>') : '—';
}

/** A model's versions, current aliases and alias history. */
export function modelPage(m: ModelDetail): string {
  const versions = [...m.versions].sort((a, b) => b.version - a.version);
  const versionsHtml = versions.length
    ? table(
        ['version', 'status', 'digest', 'formats', 'created', 'trigger', 'commit', 'actor', 'run id', ''],
        versions.map((v) => [
          `v${esc(v.version)}${v.aliases.map((a) => ` ${badge(a, Tone.info)}`).join('')}`,
          statusBadge(v.status),
          shortDigest(v.digest),
          v.formats.map((f) => `<code>${esc(f)}</code>`).join(' '),
          time(v.createdAt),
          orDash(v.trigger),
          commitCell(v.commit),
          orDash(v.actor),
          runLink(v.runId),
          `${link(paths.versionReport(m.name, v.version), 'report', `version-report-${v.version}`)} · ${link(paths.versionCard(m.name, v.version), 'card', `version-card-${v.version}`)}`,
        ]),
        { rowIds: versions.map((v) => `version-${v.version}`) },
      )
    : '<p class="absent">no versions registered</p>';

  const aliases = Object.entries(m.aliases).sort(([a], [b]) => a.localeCompare(b));
  const aliasesHtml = aliases.length
    ? table(
        ['alias', 'version', 'digest', 'updated'],
        aliases.map(([alias, a]) => [`<code>${esc(alias)}</code>`, `v${esc(a.version)}`, shortDigest(a.digest), time(a.updatedAt)]),
        { rowIds: aliases.map(([alias]) => `alias-${alias}`) },
      )
    : '<p class="absent">no aliases set</p>';

  const historyHtml = m.aliasHistory.length
    ? table(
        ['at', 'alias', 'version', 'previous version', 'digest', 'run id', 'actor'],
        m.aliasHistory.map((h) => [
          time(h.at),
          `<code>${esc(h.alias)}</code>`,
          `v${esc(h.version)}`,
          h.previousVersion === null ? '—' : `v${esc(h.previousVersion)}`,
          shortDigest(h.digest),
          runLink(h.runId),
          orDash(h.actor),
        ]),
      )
    : '<p class="absent">no alias has moved yet</p>';

  const body = `<h1>${esc(m.name)}</h1>
<p>${link(paths.audit(m.name), 'audit trail', 'audit-link')}</p>
<h2>Aliases</h2>
<section data-testid="aliases">
${aliasesHtml}
</section>
<h2>Versions</h2>
<section data-testid="versions">
${versionsHtml}
</section>
<h2>Alias history</h2>
<section data-testid="alias-history">
${historyHtml}
</section>`;
  return layout(m.name, body);
}

/** A version's model card (`ttd card`), with links back to its model and to its report. */
export function cardPage(card: ModelCard): string {
  const body = `<h1 data-testid="card-title">Model card: ${esc(card.model)} v${esc(card.version)}</h1>
<p>${link(paths.model(card.model), `all versions of ${esc(card.model)}`, 'card-model-link')} · ${link(paths.versionReport(card.model, card.version), 'report', 'card-report-link')} · <span class="muted">the same card as Markdown or JSON: <code>ttd card ${esc(card.model)}:${esc(card.version)} [--json]</code></span></p>
${cardSections(card)}`;
  return layout(`card · ${card.model} v${card.version}`, body);
}

/** A model's audit trail and the verdict of checking its hash chain. */
export function auditPage(model: string, records: AuditRecord[], verdict: TrailVerdict): string {
  const n = verdict.records;
  const banner = verdict.problem
    ? `<div class="banner bad" data-testid="audit-verdict">trail broken: first bad record <code>${esc(verdict.problem.key)}</code>: ${esc(verdict.problem.reason)}</div>`
    : `<div class="banner ok" data-testid="audit-verdict">chain intact (${esc(n)} record${n === 1 ? '' : 's'})</div>`;
  const content = records.length
    ? table(
        [
          'seq',
          'at',
          'action',
          'version',
          'alias',
          'previous version',
          'actor',
          'approved by',
          'trigger',
          'commit',
          'run id',
          'checks',
          'hash',
        ],
        records.map((r) => [
          esc(r.seq),
          time(r.at),
          `${esc(r.action)}${r.reason ? `<br><span class="muted">${esc(r.reason)}</span>` : ''}`,
          r.version === null ? '—' : `v${esc(r.version)}`,
          r.alias ? `<code>${esc(r.alias)}</code>` : '—',
          r.previousVersion === null ? '—' : `v${esc(r.previousVersion)}`,
          orDash(r.actor),
          orDash(r.approvedBy),
          orDash(r.trigger),
          commitCell(r.commit),
          r.runId ? runLink(r.runId) : '—',
          checks(r.checks),
          shortDigest(r.hash),
        ]),
        { rowIds: records.map((r) => `audit-${r.seq}`), className: 'compact' },
      )
    : '<p class="absent">no audit records</p>';
  const body = `<h1>Audit trail of ${link(paths.model(model), esc(model))}</h1>
${banner}
<section data-testid="audit">
${content}
</section>`;
  return layout(`audit · ${model}`, body);
}

/** A record's gate checks, compactly: `training:passed parity:tolerance_exceeded`. */
function checks(list: AuditRecord['checks']): string {
  if (!list?.length) return '—';
  return list
    .map((c) =>
      c.passed
        ? `<code class="check">${esc(c.gate)}:passed</code>`
        : `<code class="check bad">${esc(c.gate)}:${esc(c.code ?? 'failed')}</code>`,
    )
    .join(' ');
}

/** Workflow runs, newest first as given. */
export function runsPage(runs: RunRow[] | null): string {
  const content =
    runs === null
      ? '<p class="absent">Temporal is not reachable: runs cannot be listed</p>'
      : runs.length
        ? table(
            ['run id', 'model', 'status', 'started', 'closed', 'trigger', 'commit'],
            runs.map((r) => [
              runLink(r.runId),
              r.model ? link(paths.model(r.model), esc(r.model)) : '—',
              statusBadge(r.status),
              time(r.startedAt),
              time(r.closedAt),
              orDash(r.trigger),
              commitCell(r.commit),
            ]),
            { rowIds: runs.map((r) => `run-${r.runId}`) },
          )
        : '<p class="absent">no runs yet; ttd run a pipeline</p>';
  return layout('Runs', `<h1>Runs</h1>\n<section data-testid="runs">\n${content}\n</section>`);
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** An error page: the HTTP status and the message. */
export function errorPage(status: number, message: string): string {
  const heading = `${status} ${STATUS_TEXT[status] ?? 'Error'}`;
  const body = `<h1 data-testid="error-status">${esc(heading)}</h1>
<pre class="msg" data-testid="error-message">${esc(message)}</pre>
<p>${link(paths.models(), 'back to models')}</p>`;
  return layout(heading, body);
}

function runLink(runId: string): string {
  return link(paths.runReport(runId), `<code>${esc(runId)}</code>`);
}

function commitCell(commit: string | null): string {
  return commit ? `<code title="${esc(commit)}">${esc(commit.slice(0, 12))}</code>` : '—';
}
