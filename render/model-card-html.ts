// A model card as HTML sections, for the dashboard's card page (render/ui-html.ts). Every string is escaped (esc);
// no script, nothing loaded: the loss curve is inline SVG styled by the one stylesheet.
import type { CardEvidence, ModelCard } from '../lib/registry/model-card';
import { Tone, badge, esc, num, orDash, sci, table, time } from './html';
import { lossChart } from './report-html';

const codeOrDash = (v: string | null | undefined) => (v ? `<code>${esc(v)}</code>` : '—');
const bytes = (n: number | null) => (n === null ? 'not recorded' : `${esc(n)} bytes`);
const verdict = (passed: boolean) => (passed ? badge('passed', Tone.ok) : badge('FAILED', Tone.bad));

function facts(rows: [string, string][], testId?: string): string {
  const id = testId ? ` data-testid="${esc(testId)}"` : '';
  return `<dl class="facts"${id}>${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>`;
}

function section(testId: string, heading: string, content: string): string {
  return `<section data-testid="${esc(testId)}">\n<h2>${esc(heading)}</h2>\n${content}\n</section>`;
}

function evidence(e: CardEvidence): string {
  const shown = Object.entries(e.facts).map(
    ([k, v]) =>
      `${esc(k.replace(/_/g, ' '))} ${v === null ? '—' : typeof v === 'number' ? esc(/error|atol|rtol/.test(k) ? sci(v) : Number.isInteger(v) ? v : num(v)) : esc(v)}`,
  );
  return `<code>${esc(e.stage)}</code>: ${shown.length ? shown.join(', ') : 'no facts recorded'}`;
}

/** The card's sections, each with a data-testid (`card-identity`, `card-author`, …, rows `card-gate-N`, `card-parity-N`). */
export function cardSections(card: ModelCard): string {
  const identity = facts([
    ['model', `<code>${esc(card.model)}</code>`],
    ['version', `v${esc(card.version)}`],
    ['aliases', card.aliases.length ? card.aliases.map((a) => badge(a, Tone.info)).join(' ') : '—'],
    ['digest', `<code class="digest" data-testid="card-digest">${esc(card.digest)}</code>`],
    ['created', time(card.createdAt)],
    ...(card.kept ? [['kept', `<code>${esc(card.kept)}</code>`] as [string, string]] : []),
    ['spec digest', `<code class="digest">${esc(card.spec.digest)}</code>`],
    [card.spec.foreign ? 'artifact (as the spec names it)' : 'model file (as the spec names it)', codeOrDash(card.spec.model)],
    [
      'model file digest',
      card.spec.modelFile ? `<code class="digest">${esc(card.spec.modelFile.digest)}</code> (${bytes(card.spec.modelFile.bytes)})` : '—',
    ],
    ['environment', codeOrDash(card.environment.name)],
    ['torch', codeOrDash(card.environment.torchVersion)],
    ...(card.environment.base
      ? [
          [
            'declared environment',
            `base <code>${esc(card.environment.base)}</code>, ${codeOrDash(card.environment.digest)}: ${card.environment.resolved.map((p) => `<code>${esc(p)}</code>`).join(' ') || 'no packages'}`,
          ] as [string, string],
        ]
      : []),
    ['run id', `<code>${esc(card.run.runId)}</code>`],
    ['actor', orDash(card.run.actor)],
    ['trigger', orDash(card.run.trigger)],
    ['commit', codeOrDash(card.run.commit)],
  ]);
  const artifacts = table(
    ['format', 'digest', 'size', 'references'],
    card.artifacts.map((a) => [
      `<code>${esc(a.format)}</code>`,
      `<code class="digest">${esc(a.digest)}</code>`,
      bytes(a.bytes),
      codeOrDash(a.references),
    ]),
  );

  const a = card.author;
  const author = a
    ? facts(
        [
          [
            'intended use',
            a.intendedUse === null ? '<span class="absent">not stated</span>' : `<pre class="msg">${esc(a.intendedUse)}</pre>`,
          ],
          ['owners', a.owners.length ? a.owners.map((o) => esc(o)).join(', ') : '<span class="absent">not stated</span>'],
          [
            'limitations',
            a.limitations.length
              ? `<ul>${a.limitations.map((l) => `<li><pre class="msg">${esc(l)}</pre></li>`).join('')}</ul>`
              : '<span class="absent">not stated</span>',
          ],
        ],
        'card-author-facts',
      )
    : `<p class="absent">the spec's author wrote no <code>card:</code> section: no intended use, limitations or owners are stated</p>`;

  const data = `<p>${
    card.data.source === 'foreign'
      ? 'A foreign artifact: trained elsewhere, checked against the reference inputs and outputs its spec names.'
      : `Made by the model file's <code>dataset(params, split)</code>${card.data.trainingRows === null ? '' : `: ${esc(card.data.trainingRows)} training rows`}.`
  }</p>
${table(
  ['role', 'formats', 'digest', 'size'],
  card.data.files.map((f) => [
    esc(f.role.replace(/_/g, ' ')),
    f.formats.map((x) => `<code>${esc(x)}</code>`).join(' ') || '—',
    `<code class="digest">${esc(f.digest)}</code>`,
    bytes(f.bytes),
  ]),
)}
<p class="muted">Not recorded: ${esc(card.data.notRecorded)}.</p>`;

  const params = `${Object.keys(card.parameters).length ? `<pre>${esc(JSON.stringify(card.parameters, null, 2))}</pre>` : '<p class="absent">the spec sets no params</p>'}
${
  card.training
    ? table(
        ['setting', 'value'],
        Object.entries(card.training).map(([k, v]) => [`<code>${esc(k)}</code>`, `<code>${esc(JSON.stringify(v))}</code>`]),
      )
    : ''
}`;

  const m = card.metrics;
  const metrics = m
    ? `${facts([
        ['epochs', orDash(m.epochs)],
        ['rows', orDash(m.rows)],
        ['final loss', m.finalLoss === null ? '—' : esc(num(m.finalLoss))],
      ])}
${m.losses.length ? lossChart(m.losses) : '<p class="absent">no losses recorded</p>'}`
    : '<p class="absent">no training metrics: nothing was trained</p>';

  const gates = table(
    ['gate', 'result', 'code', 'message', 'evidence'],
    card.gates.map((g) => [
      `<code>${esc(g.gate)}</code>`,
      verdict(g.passed),
      codeOrDash(g.code),
      `<pre class="msg">${esc(g.message)}</pre>${g.warnings.length ? `<ul class="warnings">${g.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>` : ''}`,
      g.evidence.length
        ? `<ul>${g.evidence.map((e) => `<li>${evidence(e)}</li>`).join('')}</ul>`
        : '<span class="absent">no stage output backs this gate in the store</span>',
    ]),
    { rowIds: card.gates.map((_, i) => `card-gate-${i}`) },
  );

  const p = card.parity;
  const parity = p
    ? `<p>Every runtime × format run against the eager references, within atol ${esc(sci(p.atol))} and rtol ${esc(sci(p.rtol))}: ${verdict(p.passed)}</p>
${table(
  ['format', 'runtime', 'environment', 'mode', 'version', 'max abs error', 'max rel error', 'atol', 'rtol', 'result'],
  p.rows.map((r) => [
    `<code>${esc(r.format)}</code>`,
    `<code>${esc(r.runtime)}</code>`,
    codeOrDash(r.environment),
    esc(r.mode),
    codeOrDash(r.version),
    esc(sci(r.maxAbsError)),
    esc(sci(r.maxRelError)),
    esc(sci(r.atol)),
    esc(sci(r.rtol)),
    r.passed ? badge('agrees', Tone.ok) : `${badge('FAILED', Tone.bad)} ${codeOrDash(r.code)}`,
  ]),
  { rowIds: p.rows.map((_, i) => `card-parity-${i}`) },
)}`
    : '<p class="absent">no parity check is recorded for this version</p>';

  const audit = `${
    card.audit.verified
      ? '<div class="banner ok" data-testid="card-audit-verdict">the audit chain verifies (links, signatures and anchor)</div>'
      : `<div class="banner bad" data-testid="card-audit-verdict">the audit chain does not verify at <code>${esc(card.audit.problem?.key)}</code>: ${esc(card.audit.problem?.reason)}; only the records before it are listed</div>`
  }
${card.approval ? `<p>Approved by ${esc(card.approval.by)}${card.approval.reason ? `: ${esc(card.approval.reason)}` : ''}</p>` : ''}
${
  card.audit.records.length
    ? table(
        ['seq', 'at', 'action', 'alias', 'version', 'actor', 'approved by', 'reason', 'run id'],
        card.audit.records.map((r) => [
          esc(r.seq),
          time(r.at),
          `${esc(r.action)}${r.concerns === 'moved_away' ? ' <span class="muted">(moved the alias away)</span>' : ''}`,
          codeOrDash(r.alias),
          r.version === null ? '—' : `${r.previousVersion === null ? '—' : `v${esc(r.previousVersion)}`} → v${esc(r.version)}`,
          orDash(r.actor),
          orDash(r.approvedBy),
          orDash(r.reason),
          codeOrDash(r.runId),
        ]),
        { rowIds: card.audit.records.map((r) => `card-audit-${r.seq}`) },
      )
    : '<p class="absent">no audit record concerns this version</p>'
}`;

  const signatures = card.signatures.length
    ? `<ul>${card.signatures
        .map(
          (s) =>
            `<li>${esc(s.kind)}: <code class="digest">${esc(s.digest)}</code>${s.keyId ? `, key <code class="digest">${esc(s.keyId)}</code>` : ''} (<code>${esc(s.fetch)}</code>)</li>`,
        )
        .join('')}</ul>`
    : '<p class="absent">no signature or provenance is stored with this version</p>';

  return [
    section('card-identity', 'What it is', `${identity}\n${artifacts}`),
    section('card-author', "Intended use, limitations and owners (the spec's author)", author),
    section('card-data', 'Training data', data),
    section('card-params', 'Parameters', params),
    section('card-metrics', 'Metrics and loss curve', metrics),
    section('card-gates', 'Gates and their evidence', gates),
    section('card-parity', 'Parity', parity),
    section('card-audit', 'Approvals and promotions', audit),
    section('card-signatures', 'Signatures', signatures),
  ].join('\n');
}
