// The run report as one self-contained HTML page: inline CSS and SVG, no scripts, nothing loaded from the network.
// Every string from the data is escaped; gate messages and IR come from users' files.
import { histogramLabels, type ReportData, type StageTiming } from '../lib/parity/report';
import { fuserShown, runtimeVersion, type GateResult, type ParityOutputReport, type ParityRuntimeReport } from '../lib/contract/results';
import { Tone, badge, esc, htmlDocument, link, ms, num, orDash, sci, statusBadge, table, time } from './html';
import type { Divergence } from '../lib/contract/ops';

/** Renders a run report as a whole HTML document. */
export function renderReport(data: ReportData, opts: { cardHref?: string } = {}): string {
  const title = `${data.model} · run ${data.runId} · ${data.status}`;
  const body = [
    header(data),
    section('loss-curve', 'Training loss', lossSection(data.training)),
    section('gates', 'Gates', gatesSection(data.gates)),
    section('timings', 'Stage timings', timingsSection(data.timings)),
    section('ir', 'Optimized graph', irSection(data.optimize)),
    section('fusion-groups', 'Fusion', fusionSection(data.fusion)),
    section('parity-table', 'Parity', paritySection(data.parity)),
    section('stages', 'Stage outputs', stagesSection(data.stages ?? {})),
    section('model-card', 'Model card', cardSection(data, opts.cardHref)),
    `<footer class="muted"><p>Generated ${time(data.generatedAt)} ${esc(sourceText(data.source))}.</p></footer>`,
  ].join('\n');
  return htmlDocument(title, body);
}

const SOURCE_TEXT = { temporal: "from the run's workflow history", store: "from the store's version record" } as const;

function sourceText(source: ReportData['source']): string {
  return SOURCE_TEXT[source] ?? String(source);
}

function section(testId: string, heading: string, content: string): string {
  return `<section data-testid="${esc(testId)}">\n<h2>${esc(heading)}</h2>\n${content}\n</section>`;
}

/** What a null section says, so a reader of a rejected run sees what was not checked. */
function notReached(what: string): string {
  return `<p class="absent">${esc(what)}: not reached in this run</p>`;
}

function facts(rows: [string, string][]): string {
  return `<dl class="facts">${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>`;
}

// ---- header ----

function header(d: ReportData): string {
  const rows: [string, string][] = [
    ['run id', `<code>${esc(d.runId)}</code>`],
    ['status', statusBadge(d.status, 'status')],
    ['version', d.version === null ? '—' : `v${esc(d.version)}`],
    ['alias', orDash(d.alias)],
    ['digest', `<code class="digest" data-testid="digest">${orDash(d.digest)}</code>`],
    ['trigger', orDash(d.trigger)],
    ['commit', d.commit ? `<code>${esc(d.commit)}</code>` : '—'],
    ['actor', orDash(d.actor)],
    ['approved by', d.approval ? `${esc(d.approval.by)}${d.approval.reason ? ` (${esc(d.approval.reason)})` : ''}` : '—'],
    [
      'training attempts',
      d.attempts
        ? `${esc(d.attempts.attempts)}${d.attempts.resumedFromEpoch ? ` (resumed from the checkpoint of epoch ${esc(d.attempts.resumedFromEpoch)})` : ''}`
        : '—',
    ],
    ['started', time(d.startedAt)],
    ['closed', time(d.closedAt)],
    ['duration', duration(d.startedAt, d.closedAt)],
    ['source', esc(sourceText(d.source))],
    ['generated', time(d.generatedAt)],
  ];
  if (d.temporalUrl !== null) rows.push(['Temporal', temporalLink(d.temporalUrl)]);
  return `<header data-testid="header">
<h1>${esc(d.model)} ${statusBadge(d.status)}</h1>
${facts(rows)}
</header>`;
}

/** A link to the run in the Temporal UI; only http(s) addresses become links, anything else is shown as text. */
function temporalLink(url: string): string {
  if (!/^https?:\/\//i.test(url)) return `<span data-testid="temporal-link">${esc(url)}</span>`;
  return `<a data-testid="temporal-link" href="${esc(url)}" rel="noreferrer">open this run in the Temporal UI</a>`;
}

function duration(start: string | null, end: string | null): string {
  if (!start || !end) return '—';
  const d = Date.parse(end) - Date.parse(start);
  return Number.isFinite(d) && d >= 0 ? esc(`${(d / 1000).toFixed(1)} s`) : '—';
}

// ---- model card ----

/** The card of the run's version in brief: what its author says, its data, who promoted it, and where the whole card is
 * (the dashboard's card page when served there; `ttd card` always). */
function cardSection(d: ReportData, href: string | undefined): string {
  const card = d.card;
  if (!card)
    return `<p class="absent">${d.version === null ? 'this run registered no version, so it has no model card' : 'the model card of this version could not be read from the store; ttd card names the problem'}</p>`;
  const a = card.author;
  const command = `ttd card ${card.model}:${card.version}`;
  const concerning = card.audit.records;
  return `${facts([
    ['card', `${href ? `${link(href, `the model card of v${esc(card.version)}`, 'card-link')} · ` : ''}<code>${esc(command)}</code>`],
    ['intended use', a?.intendedUse ? `<pre class="msg">${esc(a.intendedUse)}</pre>` : '<span class="absent">not stated</span>'],
    [
      'limitations',
      a?.limitations.length
        ? `<ul>${a.limitations.map((l) => `<li><pre class="msg">${esc(l)}</pre></li>`).join('')}</ul>`
        : '<span class="absent">not stated</span>',
    ],
    ['owners', a?.owners.length ? a.owners.map((o) => esc(o)).join(', ') : '<span class="absent">not stated</span>'],
    [
      'training data',
      card.data.source === 'foreign'
        ? 'trained elsewhere (a foreign artifact)'
        : `made by the model file's dataset()${card.data.trainingRows === null ? '' : `, ${esc(card.data.trainingRows)} training rows`}`,
    ],
    [
      'approvals and promotions',
      `${concerning.length ? concerning.map((r) => `${esc(r.seq)}: ${esc(r.action)}${r.alias ? ` <code>${esc(r.alias)}</code>` : ''} by ${esc(r.approvedBy ?? r.actor)}`).join('<br>') : '—'}${card.audit.verified ? '' : ` ${badge('audit chain does not verify', Tone.bad)}`}`,
    ],
  ])}`;
}

// ---- loss curve ----

const CHART = { width: 640, height: 280, left: 64, right: 20, top: 16, bottom: 48 } as const;

function lossSection(training: ReportData['training']): string {
  if (training === null) return notReached('training');
  const losses = training.losses ?? [];
  const summary = facts([
    ['epochs', orDash(training.epochs ?? losses.length)],
    ['rows', orDash(training.rows)],
    ['final loss', losses.length ? esc(num(losses[losses.length - 1])) : '—'],
  ]);
  if (losses.length === 0) return `${summary}<p class="absent">no training in this run (no losses recorded)</p>`;
  return `${summary}\n${lossChart(losses)}`;
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** A line chart of loss by epoch (1-based); non-finite entries are skipped and the line breaks there. */
export function lossChart(losses: (number | null)[]): string {
  const points = losses.map((v, i) => ({ epoch: i + 1, v })).filter((p): p is { epoch: number; v: number } => isFiniteNumber(p.v));
  const skipped = losses.map((v, i) => (isFiniteNumber(v) ? 0 : i + 1)).filter((e) => e > 0);
  const skippedNote = skipped.length
    ? `<p class="muted">${skipped.length} non-finite loss${skipped.length === 1 ? '' : 'es'} not plotted (epoch ${skipped.join(', ')})</p>`
    : '';
  if (points.length === 0) return `<p class="absent">no finite loss to plot</p>${skippedNote}`;

  const n = losses.length;
  const { width: W, height: H, left: L, right: R, top: T, bottom: B } = CHART;
  const plotW = W - L - R;
  const plotH = H - T - B;
  // reduce, not Math.min(...): a long run's thousands of epochs would overflow the argument list.
  const ticks = niceTicks(
    points.reduce((m, p) => Math.min(m, p.v), Infinity),
    points.reduce((m, p) => Math.max(m, p.v), -Infinity),
  );
  const lo = ticks.values[0];
  const hi = ticks.values[ticks.values.length - 1];
  const x = (epoch: number) => L + (n === 1 ? plotW / 2 : ((epoch - 1) / (n - 1)) * plotW);
  const y = (v: number) => T + ((hi - v) / (hi - lo)) * plotH;
  const f = (v: number) => v.toFixed(1);

  const yTicks = ticks.values
    .map(
      (v) =>
        `<line class="grid" x1="${L}" x2="${W - R}" y1="${f(y(v))}" y2="${f(y(v))}"/>` +
        `<text x="${L - 6}" y="${f(y(v) + 4)}" text-anchor="end">${esc(ticks.label(v))}</text>`,
    )
    .join('');
  const xStep = Math.max(1, Math.ceil(n / 12));
  const xEpochs = [...new Set([...Array.from({ length: Math.ceil(n / xStep) }, (_, i) => 1 + i * xStep), n])].filter((e) => e <= n);
  const xTicks = xEpochs
    .map(
      (e) =>
        `<line class="axis" x1="${f(x(e))}" x2="${f(x(e))}" y1="${H - B}" y2="${H - B + 4}"/>` +
        `<text x="${f(x(e))}" y="${H - B + 16}" text-anchor="middle">${e}</text>`,
    )
    .join('');

  // Consecutive finite points form one polyline; a skipped epoch breaks the line.
  const runs: { epoch: number; v: number }[][] = [];
  for (const p of points) {
    const last = runs[runs.length - 1];
    if (last && last[last.length - 1].epoch === p.epoch - 1) last.push(p);
    else runs.push([p]);
  }
  const lines = runs
    .filter((r) => r.length > 1)
    .map((r) => `<polyline class="line" points="${r.map((p) => `${f(x(p.epoch))},${f(y(p.v))}`).join(' ')}"/>`)
    .join('');
  const dots = points
    .map(
      (p) =>
        `<circle class="point" cx="${f(x(p.epoch))}" cy="${f(y(p.v))}" r="3"><title>epoch ${p.epoch}: ${esc(precise(p.v))}</title></circle>`,
    )
    .join('');

  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="training loss by epoch">
${yTicks}
<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${H - B}"/>
<line class="axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/>
${xTicks}
<text x="${L + plotW / 2}" y="${H - 8}" text-anchor="middle">epoch</text>
<text x="14" y="${T + plotH / 2}" text-anchor="middle" transform="rotate(-90 14 ${T + plotH / 2})">loss</text>
${lines}
${dots}
</svg>${skippedNote}`;
}

/** A loss with enough digits to tell epochs apart. */
function precise(v: number): string {
  return Math.abs(v) < 1e-4 && v !== 0 ? v.toExponential(4) : String(Number(v.toPrecision(6)));
}

/** Round tick values covering [min, max]; a flat range gets a band around its value so nothing divides by zero. */
function niceTicks(min: number, max: number): { values: number[]; label: (v: number) => string } {
  if (!(max > min)) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / 4;
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const lo = Math.floor(min / step) * step;
  const count = Math.min(20, Math.ceil((max - lo) / step - 1e-9));
  const values = Array.from({ length: count + 1 }, (_, i) => Number((lo + i * step).toPrecision(12)));
  if (!(values[values.length - 1] > values[0])) values.push(values[0] + step);
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + (step / pow === 2.5 ? 1 : 0));
  const small = step < 1e-4 || Math.max(Math.abs(lo), Math.abs(max)) >= 1e6;
  const label = (v: number) => {
    if (!small) return v.toFixed(decimals);
    if (v === 0) return '0';
    const digits = Math.min(6, Math.max(1, Math.floor(Math.log10(Math.abs(v))) - Math.floor(Math.log10(step)) + 1));
    return v.toExponential(digits);
  };
  return { values, label };
}

// ---- gates ----

function gatesSection(gates: GateResult[]): string {
  if (!gates.length) return '<p class="absent">no gate reached a verdict in this run</p>';
  return `${table(
    ['gate', 'result', 'code', 'message', 'warnings'],
    gates.map((g) => [
      esc(g.gate),
      g.passed ? badge('passed', Tone.ok) : badge('FAILED', Tone.bad),
      g.code ? `<code>${esc(g.code)}</code>` : '—',
      `<pre class="msg">${esc(g.message)}</pre>`,
      g.warnings?.length ? `<ul class="warnings">${g.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>` : '—',
    ]),
    { rowIds: gates.map((g) => `gate-${g.gate}`) },
  )}
${gates.map((g) => (g.divergence ? divergenceBlock(g.gate, g.divergence) : '')).join('')}`;
}

// The first operator out of tolerance of a failed gate: where the graph keeps it, and both sides' values.
function divergenceBlock(gate: string, d: Divergence): string {
  const values = (v: (number | null)[]) => esc(v.map((x) => (x === null ? 'nan/inf' : String(Number(x.toPrecision(6))))).join(', '));
  return `<div class="divergence" data-testid="divergence-${esc(gate)}">
<h3>${esc(gate)}: first diverging operator</h3>
${facts([
  ['operator', `<code>${esc(d.op)}</code>`],
  ['node', `<code>${esc(d.node)}</code>`],
  ['module', d.module ? `<code>${esc(d.module)}</code>` : '—'],
  ['location', d.location ? `<code>${esc(d.location)}</code>` : '—'],
  ['case', esc(d.case)],
  ['agreeing before it', esc(d.compared)],
  ['max abs error', esc(sci(d.max_abs_error))],
  ['eager', `<code>${values(d.eager)}</code>`],
  ['artifact', `<code>${values(d.artifact)}</code>`],
])}
</div>`;
}

// ---- stage outputs ----

// Every build stage's output as the stage returned it (lib/contract/ops.ts), so that a stage without a section of its own
// (a new one, say) is still shown: its scalar facts, the size of its lists and maps, and the files it stored.
function stagesSection(stages: Record<string, Record<string, unknown>>): string {
  const names = Object.keys(stages);
  if (!names.length) return '<p class="absent">no stage outputs recorded</p>';
  return names
    .map((name) => {
      const out = stages[name];
      const rows: [string, string][] = [];
      for (const [key, value] of Object.entries(out)) {
        if (key === 'files' && value && typeof value === 'object') {
          for (const [role, digest] of Object.entries(value)) rows.push([`file ${role}`, `<code>${esc(String(digest))}</code>`]);
        } else if (Array.isArray(value)) rows.push([key, `${value.length} ${value.length === 1 ? 'entry' : 'entries'}`]);
        else if (value && typeof value === 'object') rows.push([key, `${Object.keys(value).length} keys`]);
        else rows.push([key, `<code>${esc(value === null ? 'null' : String(value))}</code>`]);
      }
      return `<details data-testid="stage-${esc(name)}"><summary>${esc(name)}</summary>${facts(rows)}</details>`;
    })
    .join('\n');
}

// ---- timings ----

const BAR = { width: 260, height: 14 } as const;

function timingsSection(timings: StageTiming[]): string {
  if (!timings.length) return '<p class="absent">no stage timings recorded</p>';
  const max = Math.max(0, ...timings.map((t) => (isFiniteNumber(t.ms) ? t.ms : 0)));
  const bar = (t: StageTiming) => {
    const w = max > 0 && isFiniteNumber(t.ms) ? Math.max(0, (t.ms / max) * BAR.width) : 0;
    return (
      `<svg viewBox="0 0 ${BAR.width} ${BAR.height}" width="${BAR.width}" height="${BAR.height}" role="img" aria-label="${esc(t.stage)}: ${esc(ms(t.ms))}">` +
      `<rect class="bar${t.cached ? ' cached' : ''}" x="0" y="0" width="${w.toFixed(1)}" height="${BAR.height}"><title>${esc(t.stage)}: ${esc(ms(t.ms))}</title></rect></svg>`
    );
  };
  return table(
    ['stage', 'ms', 's', '', 'share'],
    timings.map((t) => [
      esc(t.stage),
      esc(isFiniteNumber(t.ms) ? Math.round(t.ms) : '—'),
      esc(isFiniteNumber(t.ms) ? (t.ms / 1000).toFixed(2) : '—'),
      t.cached ? badge('cached', Tone.info) : '',
      bar(t),
    ]),
    { rowIds: timings.map((t) => `timing-${t.stage}`) },
  );
}

// ---- optimize / IR ----

function irSection(opt: ReportData['optimize']): string {
  if (opt === null) return notReached('optimize');
  const delta = opt.nodeTotalBefore !== null && opt.nodeTotalAfter !== null ? ` (${signed(opt.nodeTotalAfter - opt.nodeTotalBefore)})` : '';
  const ir = (testId: string, label: string, text: string | null) =>
    `<details data-testid="${testId}"><summary>${esc(label)}</summary>${
      text === null ? '<p class="absent">not stored</p>' : `<pre>${esc(text)}</pre>`
    }</details>`;
  return `${facts([
    ['method', `<code>${esc(opt.method)}</code>`],
    ['nodes', `${orDash(opt.nodeTotalBefore)} → ${orDash(opt.nodeTotalAfter)}${esc(delta)}`],
    ['max abs error', esc(sci(opt.maxAbsError))],
  ])}
${ir('ir-before', 'IR before optimization', opt.irBefore)}
${ir('ir-after', 'IR after optimization', opt.irAfter)}`;
}

function signed(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}

// ---- fusion ----

function fusionSection(fusion: ReportData['fusion']): string {
  if (fusion === null) return notReached('fusion check');
  const groups = fusion.groups.length
    ? `<ul>${fusion.groups.map((g) => `<li><code>${esc(g.kind)}</code>: ${g.ops.map((op) => `<code>${esc(op)}</code>`).join(', ')}</li>`).join('')}</ul>`
    : '<p class="absent">no fusion group</p>';
  const flags = Object.entries(fusion.flags ?? {});
  return `${facts([
    ['require', `<code>${esc(fusion.require)}</code>`],
    ['torch', orDash(fusion.torchVersion)],
    ...(fusion.fuses !== undefined
      ? ([
          [
            'this build',
            fusion.fuses
              ? 'fuses: its servers run the groups fused'
              : 'does not fuse (no LLVM on the CPU, or no usable CUDA): its servers run the groups unfused',
          ],
          ['fused vs unfused', fusion.compared ? 'compared on every reference case' : 'not compared (nothing a server runs would differ)'],
        ] as [string, string][])
      : []),
    ['max abs error', esc(sci(fusion.maxAbsError))],
    ['flags', flags.length ? flags.map(([k, v]) => `<code>${esc(k)}=${esc(JSON.stringify(v) ?? String(v))}</code>`).join(' ') : '—'],
    [
      'unfused pointwise',
      fusion.unfusedPointwise.length ? fusion.unfusedPointwise.map((op) => `<code>${esc(op)}</code>`).join(', ') : 'none',
    ],
  ])}
<h3>Fusion groups (${fusion.groups.length})</h3>
${groups}`;
}

// ---- parity ----

// A line's id: its runtime and fuser mode, after its format when not TorchScript, and with its environment when the
// report has lines of more than one (a deploy target of another torch).
function runtimeKey(r: ParityRuntimeReport, all: ParityRuntimeReport[]): string {
  const format = r.format && r.format !== 'torchscript' ? `${r.format}-` : '';
  const envs = new Set(all.map((x) => x.environment));
  const env = envs.size > 1 && r.environment ? `@${r.environment}` : '';
  const mode = r.flags?.graph_optimization ? `graph-opt-${r.flags.graph_optimization}` : `fuser-${r.flags?.fuser ? 'on' : 'off'}`;
  return `${format}${r.runtime}${env}-${mode}`;
}

function paritySection(parity: ReportData['parity']): string {
  if (parity === null) return notReached('parity');
  const tolerances = facts([
    ['atol', esc(sci(parity.atol))],
    ['rtol', esc(sci(parity.rtol))],
  ]);
  if (!parity.runtimes.length) return `${tolerances}<p class="absent">no runtime was compared</p>`;
  const summary = table(
    ['format', 'runtime', 'environment', 'fuser', 'max abs err', 'max rel err', 'torch', 'threads', 'ms', 'result', 'message'],
    parity.runtimes.map((r) => [
      esc(r.format ?? 'torchscript'),
      esc(r.runtime),
      orDash(r.environment),
      fuserShown(r),
      esc(sci(r.max_abs_error)),
      esc(sci(r.max_rel_error)),
      orDash(runtimeVersion(r)),
      orDash(r.threads),
      esc(isFiniteNumber(r.ms) ? Math.round(r.ms) : '—'),
      r.passed ? badge('agrees', Tone.ok) : `${badge('FAILED', Tone.bad)} <code>${orDash(r.code)}</code>`,
      `<pre class="msg">${esc(r.message)}</pre>`,
    ]),
    { rowIds: parity.runtimes.map((r) => `parity-${runtimeKey(r, parity.runtimes)}`) },
  );
  return `${tolerances}\n${summary}\n${parity.runtimes.map((r) => runtimeDetail(r, parity.runtimes)).join('\n')}`;
}

function runtimeDetail(r: ParityRuntimeReport, all: ParityRuntimeReport[]): string {
  const key = runtimeKey(r, all);
  const where = [r.format && r.format !== 'torchscript' ? r.format : null, r.environment].filter(Boolean).join(' · ');
  return `<div class="runtime" data-testid="runtime-${esc(key)}">
<h3>${esc(r.runtime)}${where ? ` · ${esc(where)}` : ''} · fuser ${fuserShown(r)} ${r.passed ? badge('agrees', Tone.ok) : badge('FAILED', Tone.bad)}</h3>
${outputsTable(key, r.outputs, r.outputs_total, r.outputs_digest)}
${histogramChart(key, r.histogram)}
</div>`;
}

function outputsTable(key: string, outputs: ParityOutputReport[] | undefined, total?: number, digest?: string): string {
  if (!outputs) return '<p class="absent">per-output results not recorded (older record)</p>';
  if (!outputs.length) return '<p class="absent">no outputs compared</p>';
  const failed = outputs.filter((o) => !o.passed).length;
  const rows = table(
    ['output', 'result', 'code', 'max abs', 'max rel', 'elements'],
    outputs.map((o) => [
      `<code>${esc(o.name)}</code>`,
      o.passed ? badge('passed', Tone.ok) : badge('FAILED', Tone.bad),
      o.code ? `<code>${esc(o.code)}</code>` : '—',
      esc(sci(o.max_abs_error)),
      esc(sci(o.max_rel_error)),
      esc(isFiniteNumber(o.elements) ? o.elements : '—'),
    ]),
  );
  const shown = total !== undefined && total > outputs.length;
  const label = shown
    ? `${total} outputs, ${outputs.length} shown${failed ? ` (${failed} of them failed)` : ', all passed'}`
    : `${outputs.length} output${outputs.length === 1 ? '' : 's'}${failed ? `, ${failed} failed` : ', all passed'}`;
  const rest = shown && digest ? `<p class="absent">every output's result: store blob <code>${esc(digest)}</code></p>` : '';
  return `<details data-testid="outputs-${esc(key)}"${failed ? ' open' : ''}><summary>${esc(label)}</summary>${rows}${rest}</details>`;
}

const HIST = { width: 560, row: 18, label: 96, countSpace: 90 } as const;

/** Horizontal bars, one per bin of HISTOGRAM_EDGES, with the count at the end of each bar. */
function histogramChart(key: string, histogram: number[] | undefined): string {
  const testId = `histogram-${key}`;
  if (!histogram) return `<p class="absent" data-testid="${esc(testId)}">error histogram not recorded (older record)</p>`;
  const labels = histogramLabels();
  const bins = Math.max(labels.length, histogram.length);
  const counts = Array.from({ length: bins }, (_, i) => (isFiniteNumber(histogram[i]) ? histogram[i] : 0));
  const max = Math.max(0, ...counts);
  const total = counts.reduce((a, b) => a + b, 0);
  const barMax = HIST.width - HIST.label - HIST.countSpace;
  const height = bins * HIST.row + 4;
  const rows = counts
    .map((c, i) => {
      const label = labels[i] ?? `bin ${i}`;
      const top = 2 + i * HIST.row;
      const w = max > 0 ? Math.max(c > 0 ? 1 : 0, (c / max) * barMax) : 0;
      return (
        `<text x="${HIST.label - 6}" y="${top + 12}" text-anchor="end">${esc(label)}</text>` +
        `<rect class="bar" data-bin="${i}" x="${HIST.label}" y="${top + 2}" width="${w.toFixed(1)}" height="${HIST.row - 4}"><title>${esc(label)}: ${c}</title></rect>` +
        `<text class="count" x="${(HIST.label + w + 4).toFixed(1)}" y="${top + 12}">${c}</text>`
      );
    })
    .join('');
  const note = total === 0 ? '<p class="absent">no element differences counted (all bins are zero)</p>' : '';
  return `<figure data-testid="${esc(testId)}">
<figcaption class="muted">|a − b| over ${total} compared element${total === 1 ? '' : 's'}</figcaption>
<svg viewBox="0 0 ${HIST.width} ${height}" width="${HIST.width}" height="${height}" role="img" aria-label="error histogram">${rows}</svg>
${note}</figure>`;
}
